export * from './phi.ts';
export * from './score.ts';
