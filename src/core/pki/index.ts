/**
 * Certificate administration as a core service, one module per operation family: the local
 * certificates directory (create; list and inspect) and the certificate RPCs of running
 * nodes (node rotation, CA rotation, revocation, verification). Typed inputs and outputs;
 * the `certs` commands, and later the HTTP API, are thin faces over these.
 */
export * from './ca-rotation.ts';
export * from './local-create.ts';
export * from './local-inventory.ts';
export * from './node-rotation.ts';
export * from './operator.ts';
export * from './revocation.ts';
export * from './verification.ts';
