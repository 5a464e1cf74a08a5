export * from './address.ts';
export * from './connection.ts';
export * from './dial.ts';
export * from './options.ts';
export * from './reconnecting.ts';
export * from './server.ts';
