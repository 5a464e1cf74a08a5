export * from './provider.ts';
export * from './registry.ts';
export * from './spec.ts';
