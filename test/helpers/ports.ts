/** Free loopback ports for tests that must name their ports up front (configs, --base-port). */
import { createServer, type Server } from 'node:net';

/** Listens on 127.0.0.1:port; null when the port is taken. */
export function listenOn(port: number): Promise<Server | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(null));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(server));
  });
}

/** A port p where p … p+count-1 are all free now (another process may still take one). */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const held = await Promise.all(Array.from({ length: count }, (_, i) => listenOn(base + i)));
    await Promise.all(held.map((s) => s && new Promise((done) => s.close(done))));
    if (held.every((s) => s !== null)) return base;
  }
  throw new Error(`no ${count} consecutive free ports on 127.0.0.1 in 50 tries`);
}
