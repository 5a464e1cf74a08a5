export * from './datagram.ts';
export * from './driver.ts';
export * from './udp.ts';
