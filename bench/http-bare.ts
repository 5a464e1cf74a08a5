/**
 * bench:http's ceiling, in a process of its own as the node is: fastify over the same TLS
 * settings as the node's HTTP face (its certificate, the cluster CA, TLS 1.3, client
 * certificates asked for), one route GET /api/v1/network/health answering fixed bytes — the
 * node's own answer, handed over in BARE_BODY_FILE. No authentication, no admin handler, no
 * rate limit: what the library costs alone. Prints {"port"} once listening; SIGTERM stops it.
 *
 * Env: BARE_CERTS_DIR (ca.crt and the node's certificate), BARE_NODE_ID, BARE_BODY_FILE.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';

const certs = process.env['BARE_CERTS_DIR']!;
const nodeId = process.env['BARE_NODE_ID']!;
const body = readFileSync(process.env['BARE_BODY_FILE']!);
const app = Fastify({
  logger: false,
  https: {
    ca: readFileSync(join(certs, 'ca.crt'), 'utf8'),
    cert: readFileSync(join(certs, `node.${nodeId}.crt`), 'utf8'),
    key: readFileSync(join(certs, `node.${nodeId}.key`), 'utf8'),
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    requestCert: true,
    rejectUnauthorized: false,
  },
});
app.get('/api/v1/network/health', (_request, reply) => {
  reply.type('application/json; charset=utf-8').send(body);
});
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address() as { port: number };
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
process.on('SIGTERM', () => {
  app.close().then(() => process.exit(0));
});
