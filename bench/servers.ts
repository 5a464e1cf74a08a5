/**
 * The server side of bench:protocol, one process per contender so that client and server
 * each get a core, as they would across two machines. Prints its port on stdout when ready.
 *
 *   node bench/servers.ts rdbnet <certsDir> <home>   a real rdbnet node (TLS 1.3, mutual)
 *   node bench/servers.ts grpc <certsDir> [plain]    @grpc/grpc-js unary Echo (mutual TLS, or h2c)
 *   node bench/servers.ts raw                        node:net length-prefixed echo, per-turn batching
 *   node bench/servers.ts rawtls <certsDir>          the same echo over TLS 1.3, client certificates required
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { resolveNodeConfig } from '../src/core/config/node-config.ts';
import { RdbnetNode } from '../src/core/node/node.ts';
import { createLogger } from '../src/core/runtime/log.ts';

const [mode, certsDir, extra] = process.argv.slice(2);
// Exit cleanly on SIGTERM so that --cpu-prof runs can write their profile.
process.on('SIGTERM', () => process.exit(0));

if (mode === 'rdbnet') {
  const batch = process.env['BENCH_WRITE_BATCH_BYTES'];
  const config = resolveNodeConfig({
    id: 'bench',
    listen: '127.0.0.1:0',
    certsDir,
    dataDir: join(extra!, 'node'),
    ...(batch ? { connection: { writeBatchBytesMax: Number(batch) } } : {}),
  });
  const node = await RdbnetNode.start(config, createLogger({ level: 'warn' }));
  console.log(node.boundAddress.split(':').pop());
} else if (mode === 'grpc') {
  const grpc = await import('@grpc/grpc-js');
  const loader = await import('@grpc/proto-loader');
  const definition = loader.loadSync(new URL('proto/echo.proto', import.meta.url).pathname);
  const proto = grpc.loadPackageDefinition(definition) as unknown as {
    bench: { Echo: { service: import('@grpc/grpc-js').ServiceDefinition } };
  };
  const server = new grpc.Server();
  server.addService(proto.bench.Echo.service, {
    Echo: (call: { request: unknown }, callback: (error: null, reply: unknown) => void) =>
      callback(null, call.request),
  });
  const credentials =
    extra === 'plain'
      ? grpc.ServerCredentials.createInsecure()
      : grpc.ServerCredentials.createSsl(
          readFileSync(join(certsDir!, 'ca.crt')),
          [
            {
              cert_chain: readFileSync(join(certsDir!, 'node.bench.crt')),
              private_key: readFileSync(join(certsDir!, 'node.bench.key')),
            },
          ],
          true,
        );
  server.bindAsync('127.0.0.1:0', credentials, (error, port) => {
    if (error) throw error;
    console.log(port);
  });
} else if (mode === 'raw' || mode === 'rawtls') {
  // The Node ceiling: u32 length-prefixed frames echoed back, replies of one turn in one write;
  // over TLS, the ceiling for any protocol on TLS.
  const onSocket = (socket: import('node:net').Socket) => {
    socket.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      let data = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let offset = 0;
      let out = 0;
      while (data.length - offset >= 4) {
        const total = 4 + data.readUInt32BE(offset);
        if (data.length - offset < total) break;
        offset += total;
        out = offset;
      }
      // Echo every complete frame in one write: the bytes are already length-prefixed.
      if (out > 0) socket.write(data.subarray(0, out));
      pending = data.subarray(offset);
      data = pending;
    });
  };
  const server =
    mode === 'raw'
      ? createServer(onSocket)
      : (await import('node:tls')).createServer(
          {
            ca: readFileSync(join(certsDir!, 'ca.crt')),
            cert: readFileSync(join(certsDir!, 'node.bench.crt')),
            key: readFileSync(join(certsDir!, 'node.bench.key')),
            requestCert: true,
            rejectUnauthorized: true,
            minVersion: 'TLSv1.3',
          },
          onSocket,
        );
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    console.log(typeof address === 'object' && address ? address.port : 0);
  });
} else {
  console.error('usage: servers.ts rdbnet|grpc|raw|rawtls ...');
  process.exit(64);
}
