export * from './codec.ts';
export * from './config.ts';
export * from './messages.ts';
export * from './suspicion.ts';
export * from './swim.ts';
