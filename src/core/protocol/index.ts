export * from './compression.ts';
export * from './frame.ts';
export * from './handshake.ts';
export * from './messages.ts';
