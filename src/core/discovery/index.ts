export * from './provider.ts';
export * from './registry.ts';
export * from './resolve.ts';
export * from './retry-join.ts';
export * from './self-registration.ts';
export * from './spec.ts';
export * from './values.ts';
