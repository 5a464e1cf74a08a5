export * from './dataplane.ts';
export * from './dedup-store.ts';
export * from './delivery.ts';
export * from './encoding.ts';
export * from './limits.ts';
export * from './topics.ts';
