export * from './cluster-health.ts';
export * from './phi.ts';
export * from './score.ts';
