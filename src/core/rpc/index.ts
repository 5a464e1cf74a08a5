export * from './call.ts';
export * from './request.ts';
