export * from './credentials.ts';
export * from './data-dir.ts';
export * from './node.ts';
