/**
 * The backends of bench:lb's live comparison, in their own process so that the client, the
 * backends and haproxy do not share an event loop: one node:http server per delay given
 * (`node bench/lb-backends.ts 10 1 1 1 1` → five servers, the first answering after 10 ms,
 * the others after 1 ms), on 127.0.0.1 with ports from the kernel. Each answers every request
 * with its own name (b1, b2, …). Prints {"ports": [...]} once listening; exits when stdin
 * closes or on SIGTERM.
 */
import { createServer, type Server } from 'node:http';

const delaysMs = process.argv.slice(2).map(Number);
if (delaysMs.length === 0 || delaysMs.some((ms) => !Number.isFinite(ms) || ms < 0)) {
  console.error('usage: node bench/lb-backends.ts DELAY_MS...');
  process.exit(64);
}
const servers: Server[] = [];
const ports: number[] = [];
for (const [index, delayMs] of delaysMs.entries()) {
  const name = `b${index + 1}`;
  const server = createServer((request, response) => {
    request.resume();
    const answer = () => {
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': name.length });
      response.end(name);
    };
    if (delayMs === 0) answer();
    else setTimeout(answer, delayMs);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  ports.push((server.address() as { port: number }).port);
}
const stop = () => {
  for (const server of servers) server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
process.stdout.write(`${JSON.stringify({ ports })}\n`);
