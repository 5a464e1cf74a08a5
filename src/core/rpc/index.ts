export * from './peer.ts';
export * from './request.ts';
