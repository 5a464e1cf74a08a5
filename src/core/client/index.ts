export * from './node-client.ts';
