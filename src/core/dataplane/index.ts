export * from './dataplane.ts';
export * from './limits.ts';
export * from './topics.ts';
