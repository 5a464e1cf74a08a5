export * from './address.ts';
export * from './admission.ts';
export * from './connection.ts';
export * from './dial.ts';
export * from './memory-budget.ts';
export * from './options.ts';
export * from './reconnecting.ts';
export * from './server.ts';
