export * from './driver.ts';
export * from './udp.ts';
