/**
 * Transport over real sockets on 127.0.0.1 (port 0): TLS 1.3 with mutual authentication
 * using certificates from the PKI helpers, and plaintext (`tls: null`) variants.
 */
import assert from 'node:assert/strict';
import { connect as connectTcp, createServer as createTcpServer, type Socket } from 'node:net';
import { afterEach, describe, mock, test } from 'node:test';
import { connect as connectTls, createServer as createTlsServer } from 'node:tls';
import forge from 'node-forge';
import { adminHandler } from '../../src/core/api/admin.ts';
import { ErrorCode, isRdbnetError, RdbnetError } from '../../src/core/errors.ts';
import {
  Codec,
  compressPayload,
  type DecodedEnvelope,
  decodeEnvelope,
  decompressPayload,
  type EchoMessage,
  type Envelope,
  type ErrorReply,
  encodeEnvelope,
  encodeFrame,
  FrameDecoder,
  FrameKind,
  flagsChecksum,
  flagsCodec,
  flagsKind,
  type LocalEndpoint,
  makeFlags,
  makeHello,
} from '../../src/core/protocol/index.ts';
import { backoffDelayMs, type Random, seededRandom } from '../../src/core/runtime/index.ts';
import {
  createCertificateAuthority,
  generateRsaKey,
  issueClientCertificate,
  issueNodeCertificate,
  type KeyPairPem,
} from '../../src/core/security/index.ts';
import {
  clientTlsOptions,
  serverTlsOptions,
  type TlsMaterial,
} from '../../src/core/security/tls.ts';
import {
  Connection,
  type ConnectionOptions,
  connectionOptions,
  type DialInit,
  dial,
  type LinkState,
  MemoryBudget,
  ReconnectingLink,
  type RequestHandler,
  TransportServer,
  type TransportServerEvents,
  type TransportServerInit,
} from '../../src/core/transport/index.ts';

const HOST = '127.0.0.1';
const CLUSTER = 'c1';
const MiB = 1024 * 1024;

// ---- certificates ---------------------------------------------------------------------

const ca = createCertificateAuthority({ cluster: CLUSTER });
const nodeCert = issueNodeCertificate({ ca, cluster: CLUSTER, nodeId: 'n1', hosts: [HOST] });
const clientCert = issueClientCertificate({ ca, cluster: CLUSTER, name: 'admin' });
const otherCa = createCertificateAuthority({ cluster: CLUSTER });
const rogueCert = issueClientCertificate({ ca: otherCa, cluster: CLUSTER, name: 'admin' });

const serverTls: TlsMaterial = { ca: ca.certPem, cert: nodeCert.certPem, key: nodeCert.keyPem };
const clientTls: TlsMaterial = { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem };
/** Signed by a CA the node does not trust; trusts the node's CA itself. */
const rogueTls: TlsMaterial = { ca: ca.certPem, cert: rogueCert.certPem, key: rogueCert.keyPem };

const nodeLocal: LocalEndpoint = {
  id: 'n1',
  clusterId: CLUSTER,
  role: 'node',
  softwareVersion: 't',
};
const clientLocal: LocalEndpoint = {
  id: 'admin',
  clusterId: CLUSTER,
  role: 'client',
  softwareVersion: 't',
};

/** A leaf signed by our CA that is valid for TLS but carries no rdbnet:// identity. */
function anonymousLeaf(signer: KeyPairPem): KeyPairPem {
  const { keyPem, publicKeyPem } = generateRsaKey(2048);
  const caCert = forge.pki.certificateFromPem(signer.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = '01a2b3c4';
  cert.validity.notBefore = new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: 'commonName', value: 'no-identity' }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    {
      name: 'subjectAltName',
      altNames: [
        { type: 7, ip: HOST },
        { type: 2, value: 'localhost' },
      ],
    },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(signer.keyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}
const noIdentity = anonymousLeaf(ca);
const noIdentityTls: TlsMaterial = {
  ca: ca.certPem,
  cert: noIdentity.certPem,
  key: noIdentity.keyPem,
};

const VARIANTS = [
  { name: 'tls', server: serverTls, client: clientTls },
  { name: 'insecure', server: null, client: null },
] as const;

// ---- fixtures -------------------------------------------------------------------------

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function text(message: DecodedEnvelope): string {
  assert.equal(message.kind, 'echoReply');
  return Buffer.from((message.body as EchoMessage).data).toString();
}

function echo(data: string | Uint8Array): Envelope {
  return { echoRequest: { data: typeof data === 'string' ? Buffer.from(data) : data } };
}

function expectCode(code: ErrorCode | readonly ErrorCode[]): (error: unknown) => boolean {
  const codes: readonly ErrorCode[] = typeof code === 'string' ? [code] : code;
  return (error) => {
    assert.ok(
      isRdbnetError(error) && codes.includes(error.code),
      `expected ${codes.join(' or ')}, got ${String(error)}`,
    );
    return true;
  };
}

const admin = adminHandler({
  status: () => ({
    id: 'n1',
    address: HOST,
    version: 't',
    protocolVersion: 1,
    uptimeMs: 1,
    state: 'running',
    clusterId: CLUSTER,
    startedAtMs: 0,
    pid: process.pid,
    tls: true,
    connections: 0,
    counters: {},
  }),
  health: () => ({ status: 'ok', nodes: [], quorum: true }),
  healthDiagnosed: async () => ({ status: 'ok', nodes: [], quorum: true }),
  certificates: null,
  cluster: null,
  membership: null,
});

/**
 * The admin API plus a few behaviours chosen by the echo text: `hang` never answers,
 * `later` answers on the next turn, `throw:<code>` / `reject:<code>` fail with that code,
 * `crash` throws a plain Error, `big:<bytes>` answers with that many bytes.
 */
const handler: RequestHandler = (request, connection) => {
  if (request.kind === 'echoRequest') {
    const data = (request.body as EchoMessage).data;
    const head = Buffer.from(data.subarray(0, 64)).toString();
    if (head.startsWith('hang')) return new Promise<Envelope>(() => {});
    if (head.startsWith('later')) {
      return new Promise<Envelope>((resolve) =>
        setImmediate(() => resolve({ echoReply: { data } })),
      );
    }
    if (head.startsWith('throw:')) {
      throw new RdbnetError(head.slice(6) as ErrorCode, `handler refused: ${head}`);
    }
    if (head.startsWith('reject:')) {
      return Promise.reject(new RdbnetError(head.slice(7) as ErrorCode, 'handler refused later'));
    }
    if (head.startsWith('crash')) throw new TypeError('secret internal detail');
    if (head.startsWith('big:')) {
      return { echoReply: { data: Buffer.alloc(Number(head.slice(4)), 0x61) } };
    }
  }
  return admin(request, connection);
};

async function startServer(
  init: {
    tls?: TlsMaterial | null;
    options?: Partial<ConnectionOptions>;
    events?: TransportServerEvents;
    port?: number;
    local?: LocalEndpoint;
    /** Connection limits, idle timeout, memory budget, exemption. */
    limits?: Partial<
      Pick<
        TransportServerInit,
        | 'connectionsMax'
        | 'unauthenticatedConnectionsMax'
        | 'unauthenticatedConnectionsPerSourceMax'
        | 'idleTimeoutMs'
        | 'budget'
        | 'exempt'
      >
    >;
  } = {},
): Promise<{ server: TransportServer; port: number }> {
  const server = new TransportServer({
    local: init.local ?? nodeLocal,
    tls: init.tls ?? null,
    options: connectionOptions(init.options),
    handler,
    connectionsMax: 100,
    ...(init.events === undefined ? {} : { events: init.events }),
    ...init.limits,
  });
  const address = await server.listen(HOST, init.port ?? 0);
  cleanups.push(() => server.close(200));
  return { server, port: address.port };
}

function dialInit(
  port: number,
  tls: TlsMaterial | null,
  overrides: Omit<Partial<DialInit>, 'options'> & { options?: Partial<ConnectionOptions> } = {},
): DialInit {
  return {
    address: { host: HOST, port },
    local: clientLocal,
    tls,
    ...overrides,
    options: connectionOptions(overrides.options),
  };
}

async function connect(init: DialInit): Promise<Connection> {
  const connection = await dial(init);
  cleanups.push(() => closeConnection(connection));
  return connection;
}

function closeConnection(connection: Connection): Promise<void> {
  if (connection.socket.closed) return Promise.resolve();
  return new Promise((resolve) => {
    connection.socket.once('close', () => resolve());
    connection.close();
  });
}

/** A port that was free a moment ago (nothing listens on it now). */
async function freePort(): Promise<number> {
  const probe = createTcpServer();
  await new Promise<void>((resolve) => probe.listen(0, HOST, resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Opens a plain TCP socket, writes `bytes`, and collects everything until the peer closes. */
function rawExchange(port: number, bytes: Buffer, localAddress?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connectTcp({
      host: HOST,
      port,
      ...(localAddress === undefined ? {} : { localAddress }),
    });
    const received: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the server did not close the connection'));
    }, 3000);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(received));
    });
  });
}

function decodeFrames(bytes: Buffer) {
  const frames: { kind: number; messageId: number; message: DecodedEnvelope }[] = [];
  new FrameDecoder().push(bytes, (flags, messageId, payload) => {
    frames.push({ kind: flagsKind(flags), messageId, message: decodeEnvelope(payload) });
  });
  return frames;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 10 ms; fails after `timeoutMs`. */
async function waitUntil(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** Length prefix, flags and message id. */
const FRAME_HEADER_BYTES_FOR_TEST = 14;

// ---- requests -------------------------------------------------------------------------

for (const variant of VARIANTS) {
  describe(`requests (${variant.name})`, () => {
    test('echo request and response; both sides know who the peer is', async () => {
      const opened: Connection[] = [];
      const { server, port } = await startServer({
        tls: variant.server,
        events: { onOpen: (c) => opened.push(c) },
      });
      const connection = await connect(dialInit(port, variant.client));
      assert.equal(connection.state, 'open');
      assert.deepEqual(connection.peer, {
        id: 'n1',
        clusterId: CLUSTER,
        role: 'node',
        protocolVersion: 1,
        codec: Codec.Lz4,
        softwareVersion: 't',
        authenticated: variant.server !== null,
      });
      assert.equal(text(await connection.request(echo('ping'))), 'ping');
      const status = await connection.request({ statusRequest: {} });
      assert.equal(status.kind, 'statusReply');
      assert.equal(opened.length, 1);
      assert.equal(server.connections.size, 1);
      assert.equal(opened[0]!.peer?.id, 'admin');
      assert.equal(opened[0]!.peer?.role, 'client');
      assert.equal(opened[0]!.peer?.authenticated, variant.server !== null);
    });

    for (const writeBatchBytesMax of [undefined, 200]) {
      const batching =
        writeBatchBytesMax === undefined ? '' : `, ${writeBatchBytesMax}-byte batches`;
      test(`1000 concurrent requests are all answered, each with its own reply${batching}`, async () => {
        const options = writeBatchBytesMax === undefined ? {} : { writeBatchBytesMax };
        const { port } = await startServer({ tls: variant.server, options });
        const connection = await connect(dialInit(port, variant.client, { options }));
        const count = 1000;
        const replies = await Promise.all(
          Array.from({ length: count }, (_, i) =>
            connection.request(echo(i % 2 === 0 ? `now-${i}` : `later-${i}`)),
          ),
        );
        assert.equal(replies.length, count);
        replies.forEach((reply, i) => {
          assert.equal(text(reply), i % 2 === 0 ? `now-${i}` : `later-${i}`);
        });
        assert.equal(connection.inflightRequests, 0);
      });
    }

    test('a request past its deadline fails with RDB_REQUEST_TIMEOUT', async () => {
      const { port } = await startServer({ tls: variant.server });
      const connection = await connect(dialInit(port, variant.client));
      const started = performance.now();
      await assert.rejects(
        connection.request(echo('hang'), 150),
        expectCode(ErrorCode.RequestTimeout),
      );
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 140 && elapsed < 2000, `timed out after ${elapsed} ms`);
      assert.equal(connection.inflightRequests, 0);
      // The connection is still usable.
      assert.equal(text(await connection.request(echo('after'))), 'after');
    });

    test('the default deadline comes from requestTimeoutMs', async () => {
      const { port } = await startServer({ tls: variant.server });
      const connection = await connect(
        dialInit(port, variant.client, { options: { requestTimeoutMs: 100 } }),
      );
      await assert.rejects(connection.request(echo('hang')), expectCode(ErrorCode.RequestTimeout));
    });

    test('one request over inflightRequestsMax fails at once with RDB_INFLIGHT_LIMIT', async () => {
      const { port } = await startServer({ tls: variant.server });
      const connection = await connect(
        dialInit(port, variant.client, { options: { inflightRequestsMax: 4 } }),
      );
      const hanging = Array.from({ length: 4 }, () =>
        assert.rejects(connection.request(echo('hang'), 200), expectCode(ErrorCode.RequestTimeout)),
      );
      assert.equal(connection.inflightRequests, 4);
      await assert.rejects(
        connection.request(echo('one more')),
        expectCode(ErrorCode.InflightLimit),
      );
      await Promise.all(hanging);
      assert.equal(text(await connection.request(echo('room again'))), 'room again');
    });

    test('the server answers requests over inboundInflightMax with RDB_INFLIGHT_LIMIT', async () => {
      const { port } = await startServer({
        tls: variant.server,
        options: { inboundInflightMax: 2 },
      });
      const connection = await connect(dialInit(port, variant.client));
      const hanging = [
        assert.rejects(connection.request(echo('hang'), 300), expectCode(ErrorCode.RequestTimeout)),
        assert.rejects(connection.request(echo('hang'), 300), expectCode(ErrorCode.RequestTimeout)),
      ];
      // The limit is checked before the handler runs, so any further request is refused.
      await assert.rejects(connection.request(echo('hang 3')), expectCode(ErrorCode.InflightLimit));
      await assert.rejects(connection.request(echo('sync')), expectCode(ErrorCode.InflightLimit));
      assert.equal(connection.state, 'open');
      // The limit is per connection.
      const other = await connect(dialInit(port, variant.client));
      assert.equal(text(await other.request(echo('sync'))), 'sync');
      await Promise.all(hanging);
    });

    test('a handler error reaches the client with the same code', async () => {
      const { port } = await startServer({ tls: variant.server });
      const connection = await connect(dialInit(port, variant.client));
      for (const code of [ErrorCode.ClusterMismatch, ErrorCode.ConfigInvalid, ErrorCode.Usage]) {
        await assert.rejects(connection.request(echo(`throw:${code}`)), expectCode(code));
        await assert.rejects(connection.request(echo(`reject:${code}`)), expectCode(code));
      }
      // An unexpected exception is RDB_INTERNAL, without its message.
      await assert.rejects(connection.request(echo('crash')), (error: unknown) => {
        assert.ok(isRdbnetError(error, ErrorCode.Internal), String(error));
        assert.ok(!error.message.includes('secret'), error.message);
        return true;
      });
      assert.equal(connection.state, 'open');
      assert.equal(text(await connection.request(echo('still here'))), 'still here');
    });

    test('an unknown method is RDB_METHOD_UNKNOWN', async () => {
      const { port } = await startServer({ tls: variant.server });
      const connection = await connect(dialInit(port, variant.client));
      await assert.rejects(
        connection.request({ echoReply: { data: Buffer.from('x') } }),
        expectCode(ErrorCode.MethodUnknown),
      );
      await assert.rejects(
        connection.request({ hello: makeHello(clientLocal) }),
        expectCode(ErrorCode.MethodUnknown),
      );
      assert.equal(text(await connection.request(echo('ok'))), 'ok');
    });

    test('a request that cannot be encoded fails at once and holds no in-flight slot', async () => {
      const { port } = await startServer({ tls: variant.server });
      const connection = await connect(
        dialInit(port, variant.client, { options: { inflightRequestsMax: 1 } }),
      );
      // An envelope naming no known message is a caller's bug: it fails loudly, untyped.
      await assert.rejects(
        connection.request({} as Envelope),
        /invariant violated: envelope carries no known message/,
      );
      assert.equal(connection.inflightRequests, 0);
      // The one slot is free again, and nothing half-written reached the stream.
      assert.equal(text(await connection.request(echo('after'))), 'after');
    });

    test('a request to a dialer without a handler is RDB_METHOD_UNKNOWN', async () => {
      const opened: Connection[] = [];
      const { port } = await startServer({
        tls: variant.server,
        events: { onOpen: (c) => opened.push(c) },
      });
      await connect(dialInit(port, variant.client));
      assert.equal(opened.length, 1);
      await assert.rejects(
        opened[0]!.request(echo('to the client')),
        expectCode(ErrorCode.MethodUnknown),
      );
    });
  });
}

describe('compression on the wire', () => {
  /** 8 MiB of log-like text: compresses well but is not one repeated byte. */
  function bigPayload(seed: number): Buffer {
    const random = seededRandom(seed);
    const lines: string[] = [];
    let size = 0;
    while (size < 8 * MiB) {
      const line = `term=${random.int(50)} index=${random.int(1_000_000)} node=n${random.int(5)} ok\n`;
      lines.push(line);
      size += line.length;
    }
    return Buffer.from(lines.join('')).subarray(0, 8 * MiB);
  }
  const seed = 0x8_3133;
  const payload = bigPayload(seed);

  const cases = [
    { codecs: undefined, expected: Codec.Lz4, tls: clientTls },
    { codecs: [Codec.Lz4], expected: Codec.Lz4, tls: null },
    { codecs: [Codec.Zstd, Codec.None], expected: Codec.Zstd, tls: clientTls },
    { codecs: [Codec.Zstd], expected: Codec.Zstd, tls: null },
    { codecs: [Codec.None], expected: Codec.None, tls: null },
  ] as const;
  for (const { codecs, expected, tls } of cases) {
    test(`8 MiB round trip, client offers [${codecs ?? 'default'}] → codec ${expected}`, async () => {
      const { port } = await startServer({ tls: tls === null ? null : serverTls });
      const local = codecs === undefined ? clientLocal : { ...clientLocal, codecs };
      const connection = await connect(
        dialInit(port, tls, { local, options: { requestTimeoutMs: 15_000 } }),
      );
      assert.equal(connection.peer?.codec, expected);
      const reply = await connection.request(echo(payload));
      assert.ok(Buffer.from((reply.body as EchoMessage).data).equals(payload), `seed ${seed}`);
      if (expected === Codec.None) {
        assert.ok(connection.bytesOut > 8 * MiB, `sent ${connection.bytesOut} bytes`);
      } else {
        // Both directions really were compressed.
        assert.ok(connection.bytesOut < 4 * MiB, `sent ${connection.bytesOut} bytes`);
        assert.ok(connection.bytesIn < 4 * MiB, `received ${connection.bytesIn} bytes`);
      }
    });
  }
});

// ---- hostile peers --------------------------------------------------------------------

describe('hostile peers', () => {
  test('garbage on a raw socket gets one error frame and a close; others keep working', async () => {
    const protocolErrors: string[] = [];
    const { port } = await startServer({
      events: { onProtocolError: (_c, error) => protocolErrors.push(error.code) },
    });
    const good = await connect(dialInit(port, null));
    const cases: [string, Buffer, ErrorCode][] = [
      ['http request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), ErrorCode.FrameTooLarge],
      ['0xff bytes', Buffer.alloc(64, 0xff), ErrorCode.FrameTooLarge],
      ['short length', Buffer.from([0, 0, 0, 3, 1, 2, 3]), ErrorCode.FrameMalformed],
      [
        'reserved flag bits',
        encodeFrame(0x8000, 0, encodeEnvelope({ hello: makeHello(clientLocal) })),
        ErrorCode.FrameMalformed,
      ],
      [
        'payload that is no message',
        encodeFrame(makeFlags(FrameKind.Request, Codec.None, true), 0, Buffer.from([0xff, 0xff])),
        ErrorCode.MessageMalformed,
      ],
      [
        'first message is not a hello',
        encodeFrame(makeFlags(FrameKind.Request, Codec.None, true), 0, encodeEnvelope(echo('x'))),
        ErrorCode.HandshakeRejected,
      ],
      [
        'hello of another cluster',
        encodeFrame(
          makeFlags(FrameKind.Request, Codec.None, false),
          0,
          encodeEnvelope({ hello: makeHello({ ...clientLocal, clusterId: 'c2' }) }),
        ),
        ErrorCode.ClusterMismatch,
      ],
    ];
    for (const [name, bytes, code] of cases) {
      const frames = decodeFrames(await rawExchange(port, bytes));
      assert.equal(frames.length, 1, name);
      assert.equal(frames[0]!.kind, FrameKind.Error, name);
      assert.equal(frames[0]!.messageId, 0, name);
      assert.equal(frames[0]!.message.kind, 'error', name);
      assert.equal((frames[0]!.message.body as ErrorReply).code, code, name);
      assert.equal(text(await good.request(echo(`after ${name}`))), `after ${name}`);
    }
    assert.deepEqual(
      protocolErrors,
      cases.map(([, , code]) => code),
    );
  });

  test('frames carry a CRC-32 on plaintext links and none on TLS', async () => {
    const hello = encodeFrame(
      makeFlags(FrameKind.Request, Codec.None, false),
      0,
      encodeEnvelope({ hello: makeHello(clientLocal) }),
    );
    const plain = await startServer();
    const plainReply = await rawExchange(plain.port, Buffer.concat([hello, Buffer.alloc(8, 0xee)]));
    const secure = await startServer({ tls: serverTls });
    const tlsReply = await new Promise<Buffer>((resolve, reject) => {
      const socket = connectTls({
        host: HOST,
        port: secure.port,
        ...clientTlsOptions(clientTls),
      });
      const received: Buffer[] = [];
      socket.on('secureConnect', () => socket.write(Buffer.concat([hello, Buffer.alloc(8, 0xee)])));
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(received)));
    });
    for (const [name, reply, checksum] of [
      ['plaintext', plainReply, true],
      ['tls', tlsReply, false],
    ] as const) {
      const flags: number[] = [];
      new FrameDecoder().push(reply, (f) => flags.push(f));
      assert.equal(flags.length, 2, name);
      assert.deepEqual(
        flags.map((f) => flagsChecksum(f)),
        [checksum, checksum],
        name,
      );
    }
  });

  test('garbage after a good handshake closes that connection only', async () => {
    const { port } = await startServer();
    const good = await connect(dialInit(port, null));
    const hello = encodeFrame(
      makeFlags(FrameKind.Request, Codec.None, false),
      0,
      encodeEnvelope({ hello: makeHello(clientLocal) }),
    );
    const frames = decodeFrames(
      await rawExchange(port, Buffer.concat([hello, Buffer.alloc(16, 0xee)])),
    );
    assert.deepEqual(
      frames.map((f) => [f.kind, f.message.kind]),
      [
        [FrameKind.Response, 'helloAck'],
        [FrameKind.Error, 'error'],
      ],
    );
    assert.equal((frames[1]!.message.body as ErrorReply).code, ErrorCode.FrameTooLarge);
    assert.equal(text(await good.request(echo('fine'))), 'fine');
  });

  test('plain TCP garbage to a TLS server is rejected before the protocol', async () => {
    const rejected: string[] = [];
    const { port } = await startServer({
      tls: serverTls,
      events: { onRejected: (_remote, error) => rejected.push(error.code) },
    });
    const good = await connect(dialInit(port, clientTls));
    const reply = await rawExchange(port, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    assert.equal(decodeFrames(reply).length, 0, 'no rdbnet frame before TLS');
    await sleep(20);
    assert.deepEqual(rejected, [ErrorCode.TlsFailed]);
    assert.equal(text(await good.request(echo('fine'))), 'fine');
  });

  test('a peer that connects and says nothing is dropped after the handshake timeout', async () => {
    const closed: (string | undefined)[] = [];
    const { server, port } = await startServer({
      options: { handshakeTimeoutMs: 150 },
      events: { onClose: (_c, error) => closed.push(error?.code) },
    });
    const started = performance.now();
    const reply = await rawExchange(port, Buffer.alloc(0));
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 140 && elapsed < 2500, `closed after ${elapsed} ms`);
    assert.equal(reply.length, 0);
    await sleep(20);
    assert.deepEqual(closed, [ErrorCode.HandshakeTimeout]);
    assert.equal(server.connections.size, 0);
  });
});

describe('codec negotiation is enforced', () => {
  const helloFrame = (codecs: Codec[]) =>
    encodeFrame(
      makeFlags(FrameKind.Request, Codec.None, false),
      0,
      encodeEnvelope({ hello: makeHello({ ...clientLocal, codecs }) }),
    );
  /** An echo request compressed with `codec`, valid in every other respect. */
  const packedEcho = (codec: Codec) => {
    const packed = compressPayload(codec, encodeEnvelope(echo(Buffer.alloc(8192))), 1024);
    assert.equal(packed.codec, codec);
    return encodeFrame(makeFlags(FrameKind.Request, codec, false), 5, packed.payload);
  };

  const cases: { offered: Codec[]; sent: Codec; negotiated: string }[] = [
    { offered: [Codec.None], sent: Codec.Lz4, negotiated: 'none' },
    { offered: [Codec.None], sent: Codec.Zstd, negotiated: 'none' },
    { offered: [Codec.Zstd, Codec.None], sent: Codec.Lz4, negotiated: 'zstd' },
  ];
  for (const { offered, sent, negotiated } of cases) {
    test(`codec ${sent} after negotiating ${negotiated}: RDB_CODEC_UNSUPPORTED, then close`, async () => {
      const protocolErrors: string[] = [];
      const { port } = await startServer({
        events: { onProtocolError: (_c, error) => protocolErrors.push(error.code) },
      });
      const good = await connect(dialInit(port, null));
      const frames = decodeFrames(
        await rawExchange(port, Buffer.concat([helloFrame(offered), packedEcho(sent)])),
      );
      assert.deepEqual(
        frames.map((f) => [f.kind, f.messageId, f.message.kind]),
        [
          [FrameKind.Response, 0, 'helloAck'],
          [FrameKind.Error, 0, 'error'],
        ],
      );
      assert.equal((frames[1]!.message.body as ErrorReply).code, ErrorCode.CodecUnsupported);
      assert.deepEqual(protocolErrors, [ErrorCode.CodecUnsupported]);
      assert.equal(text(await good.request(echo('fine'))), 'fine');
    });
  }

  test('the negotiated codec itself is accepted', async () => {
    const { port } = await startServer();
    const reply = await rawExchange(
      port,
      Buffer.concat([
        helloFrame([Codec.Lz4, Codec.None]),
        packedEcho(Codec.Lz4),
        // Not a frame: makes the node close once it has answered.
        Buffer.alloc(8, 0xff),
      ]),
    );
    const frames: [number, number, string][] = [];
    new FrameDecoder().push(reply, (flags, messageId, payload) => {
      const plain = decompressPayload(flagsCodec(flags), payload, 1 << 20);
      frames.push([flagsKind(flags), messageId, decodeEnvelope(plain).kind]);
    });
    assert.deepEqual(frames, [
      [FrameKind.Response, 0, 'helloAck'],
      [FrameKind.Response, 5, 'echoReply'],
      [FrameKind.Error, 0, 'error'],
    ]);
  });
});

describe('connection limits', () => {
  /** A TCP connection that sends nothing; `closed` resolves when the server closes it. */
  function silent(port: number, localAddress?: string) {
    const socket = connectTcp({
      host: HOST,
      port,
      ...(localAddress === undefined ? {} : { localAddress }),
    });
    cleanups.push(() => socket.destroy());
    socket.on('error', () => {});
    let isClosed = false;
    const closed = new Promise<void>((resolve) =>
      socket.once('close', () => {
        isClosed = true;
        resolve();
      }),
    );
    const connected = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    return { socket, closed, connected, isClosed: () => isClosed };
  }

  test('a TCP connection that never starts TLS is destroyed at the handshake timeout', async () => {
    const rejected: string[] = [];
    const { server, port } = await startServer({
      tls: serverTls,
      options: { handshakeTimeoutMs: 150 },
      events: { onRejected: (_remote, error) => rejected.push(error.code) },
    });
    const started = performance.now();
    // TCP only, and TLS begun but left after the first bytes of a ClientHello.
    const tcpOnly = silent(port);
    const halfTls = silent(port);
    await halfTls.connected;
    halfTls.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
    await Promise.race([
      Promise.all([tcpOnly.closed, halfTls.closed]),
      sleep(3000).then(() => assert.fail('the server left a silent socket open')),
    ]);
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 140, `closed after ${elapsed} ms`);
    await sleep(20);
    assert.deepEqual(rejected, [ErrorCode.HandshakeTimeout, ErrorCode.HandshakeTimeout]);
    assert.equal(server.stats().preauthTimedOut, 2);
    assert.equal(server.stats().unauthenticated, 0);
  });

  test("a source over its share loses its oldest connections; others' are untouched", async () => {
    const rejected: string[] = [];
    const { server, port } = await startServer({
      tls: serverTls,
      limits: { unauthenticatedConnectionsPerSourceMax: 3, unauthenticatedConnectionsMax: 10 },
      events: { onRejected: (_remote, error) => rejected.push(error.code) },
    });
    const other = silent(port, '127.0.0.3');
    await other.connected;
    const flood: ReturnType<typeof silent>[] = [];
    for (let i = 0; i < 5; i++) {
      const socket = silent(port, '127.0.0.2');
      await socket.connected;
      flood.push(socket);
    }
    await Promise.all([flood[0]!.closed, flood[1]!.closed]);
    await sleep(50);
    assert.deepEqual(
      flood.map((s) => s.isClosed()),
      [true, true, false, false, false],
    );
    assert.equal(other.isClosed(), false);
    assert.deepEqual(rejected, [ErrorCode.PreauthLimit, ErrorCode.PreauthLimit]);
    assert.equal(server.stats().preauthEvicted, 2);
    assert.equal(server.stats().unauthenticated, 4);
    // An authenticated client from the flooded address still gets in.
    const client = await connect(
      dialInit(port, clientTls, { options: { handshakeTimeoutMs: 5000 } }),
    );
    assert.equal(text(await client.request(echo('in'))), 'in');
  });

  test('a full table makes room for an authenticated client with its oldest connection', async () => {
    const { server, port } = await startServer({
      tls: serverTls,
      limits: { unauthenticatedConnectionsPerSourceMax: 8, unauthenticatedConnectionsMax: 8 },
    });
    const strangers: ReturnType<typeof silent>[] = [];
    for (const source of ['127.0.0.3', '127.0.0.2', '127.0.0.2', '127.0.0.2']) {
      for (let i = 0; i < 2; i++) {
        const socket = silent(port, source);
        await socket.connected;
        strangers.push(socket);
      }
    }
    await waitUntil(() => server.stats().unauthenticated === 8);
    const client = await connect(dialInit(port, clientTls));
    assert.equal(text(await client.request(echo('in'))), 'in');
    // The client's arrival displaced the oldest unauthenticated socket.
    await strangers[0]!.closed;
    assert.deepEqual(
      strangers.map((s) => s.isClosed()),
      [true, false, false, false, false, false, false, false],
    );
    assert.equal(server.stats().authenticated, 1);
    assert.equal(server.stats().unauthenticated, 7);
  });

  test('connectionsMax bounds authenticated connections; exempt peers still get in', async () => {
    const { server, port } = await startServer({
      limits: {
        connectionsMax: 1,
        exempt: (peer) => peer.role === 'node',
      },
    });
    const first = await connect(dialInit(port, null));
    await assert.rejects(dial(dialInit(port, null)), expectCode(ErrorCode.ConnectionLimit));
    const member = await connect(dialInit(port, null, { local: { ...nodeLocal, id: 'n2' } }));
    assert.equal(text(await member.request(echo('member'))), 'member');
    assert.equal(text(await first.request(echo('first'))), 'first');
    assert.equal(server.stats().connectionLimitRefused, 1);
    assert.equal(server.stats().authenticated, 2);
  });

  test('idle authenticated connections are closed with RDB_IDLE_TIMEOUT; busy and exempt ones are not', async () => {
    const closed: (string | undefined)[] = [];
    const { server, port } = await startServer({
      limits: { idleTimeoutMs: 300, exempt: (peer) => peer.role === 'node' },
      events: { onClose: (_c, error) => closed.push(error?.code) },
    });
    const idle = await connect(dialInit(port, null));
    const busy = await connect(dialInit(port, null));
    const member = await connect(dialInit(port, null, { local: { ...nodeLocal, id: 'n2' } }));
    const idleClosed = new Promise<void>((resolve) => idle.socket.once('close', () => resolve()));
    const started = performance.now();
    while (performance.now() - started < 900) {
      assert.equal(text(await busy.request(echo('tick'))), 'tick');
      await sleep(50);
    }
    await idleClosed;
    assert.equal(idle.state, 'closed');
    await assert.rejects(idle.request(echo('x')), expectCode(ErrorCode.IdleTimeout));
    assert.equal(busy.state, 'open');
    assert.equal(member.state, 'open');
    assert.deepEqual(closed, [ErrorCode.IdleTimeout]);
    assert.equal(server.stats().idleClosed, 1);
  });

  test('a connection whose partial frame does not fit the budget is refused; others go on', async () => {
    const budget = new MemoryBudget(256 * 1024);
    const closed: (string | undefined)[] = [];
    const { port } = await startServer({
      limits: { budget },
      events: { onClose: (_c, error) => closed.push(error?.code) },
    });
    const hello = encodeFrame(
      makeFlags(FrameKind.Request, Codec.None, false),
      0,
      encodeEnvelope({ hello: makeHello(clientLocal) }),
    );
    /** Hello, then 150 KiB of a 200 KiB frame, on a socket kept open. */
    const halfSender = () => {
      const socket = connectTcp({ host: HOST, port });
      cleanups.push(() => socket.destroy());
      const header = Buffer.alloc(FRAME_HEADER_BYTES_FOR_TEST);
      header.writeUInt32BE(200 * 1024 - 4, 0);
      socket.on('connect', () =>
        socket.write(Buffer.concat([hello, header, Buffer.alloc(150 * 1024)])),
      );
      const received: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.on('error', () => {});
      const ended = new Promise<Buffer>((resolve) =>
        socket.once('close', () => resolve(Buffer.concat(received))),
      );
      return { socket, ended };
    };
    const first = halfSender();
    await waitUntil(() => budget.bufferedBytes >= 150 * 1024);
    const held = budget.bufferedBytes;
    const second = halfSender();
    const frames = decodeFrames(await second.ended);
    assert.deepEqual(
      frames.map((f) => [f.kind, f.message.kind]),
      [
        [FrameKind.Response, 'helloAck'],
        [FrameKind.Error, 'error'],
      ],
    );
    assert.equal((frames[1]!.message.body as ErrorReply).code, ErrorCode.MemoryBudget);
    assert.equal(budget.bufferedBytes, held, 'the refused connection gave back what it had');
    assert.ok(budget.stats().bufferedBytesPeak <= 256 * 1024);
    const good = await connect(dialInit(port, null));
    assert.equal(text(await good.request(echo('small'))), 'small');
    first.socket.destroy();
    await first.ended;
    await waitUntil(() => budget.bufferedBytes === 0);
    assert.deepEqual(closed.slice(0, 1), [ErrorCode.MemoryBudget]);
  });

  test('replies piling up for a peer that does not read are charged; past the budget it is cut', async () => {
    const budget = new MemoryBudget(1024 * 1024);
    const closed: (string | undefined)[] = [];
    const { port } = await startServer({
      limits: { budget },
      events: { onClose: (_c, error) => closed.push(error?.code) },
    });
    const hello = encodeFrame(
      makeFlags(FrameKind.Request, Codec.None, false),
      0,
      encodeEnvelope({ hello: makeHello({ ...clientLocal, codecs: [Codec.None] }) }),
    );
    // 64 small requests, each answered with 256 KiB: 16 MiB the client never reads.
    const requests = Array.from({ length: 64 }, (_, i) =>
      encodeFrame(
        makeFlags(FrameKind.Request, Codec.None, false),
        i + 1,
        encodeEnvelope(echo(`big:${256 * 1024}`)),
      ),
    );
    const socket = connectTcp({ host: HOST, port });
    cleanups.push(() => socket.destroy());
    socket.on('error', () => {});
    socket.pause();
    socket.on('connect', () => socket.write(Buffer.concat([hello, ...requests])));
    await waitUntil(() => closed.length > 0, 10_000);
    assert.deepEqual(closed, [ErrorCode.MemoryBudget]);
    assert.ok(budget.stats().bufferedBytesPeak <= 1024 * 1024);
    assert.ok(budget.stats().bufferedBytesPeak > 0, 'the backlog was never charged');
    assert.equal(budget.bufferedBytes, 0);
  });
});

// ---- dialing --------------------------------------------------------------------------

describe('dial failures', () => {
  test('wrong cluster is RDB_CLUSTER_MISMATCH at dial (insecure and TLS)', async () => {
    const insecure = await startServer();
    const other = { ...clientLocal, clusterId: 'c2' };
    await assert.rejects(
      dial(dialInit(insecure.port, null, { local: other })),
      expectCode(ErrorCode.ClusterMismatch),
    );
    const secure = await startServer({ tls: serverTls });
    await assert.rejects(
      dial(dialInit(secure.port, clientTls, { local: other })),
      expectCode(ErrorCode.ClusterMismatch),
    );
    // A node of another cluster, too.
    await assert.rejects(
      dial(dialInit(insecure.port, null, { local: { ...nodeLocal, id: 'n2', clusterId: 'c2' } })),
      expectCode(ErrorCode.ClusterMismatch),
    );
    // The servers keep serving.
    assert.equal(
      text(await (await connect(dialInit(insecure.port, null))).request(echo('a'))),
      'a',
    );
    assert.equal(
      text(await (await connect(dialInit(secure.port, clientTls))).request(echo('b'))),
      'b',
    );
  });

  test('a client with an empty cluster id may dial an insecure node', async () => {
    const { port } = await startServer();
    const connection = await connect(
      dialInit(port, null, { local: { ...clientLocal, clusterId: '' } }),
    );
    assert.equal(connection.peer?.clusterId, CLUSTER);
    assert.equal(text(await connection.request(echo('hi'))), 'hi');
  });

  test('a client certificate posing as a node is RDB_IDENTITY_INVALID', async () => {
    const { port } = await startServer({ tls: serverTls });
    await assert.rejects(
      dial(dialInit(port, clientTls, { local: { ...nodeLocal, id: 'admin' } })),
      expectCode(ErrorCode.IdentityInvalid),
    );
    await assert.rejects(
      dial(dialInit(port, clientTls, { local: { ...clientLocal, id: 'root' } })),
      expectCode(ErrorCode.IdentityInvalid),
    );
  });

  test('a client certificate from another CA fails; the server keeps serving', async () => {
    const rejected: string[] = [];
    const { port } = await startServer({
      tls: serverTls,
      events: { onRejected: (_remote, error) => rejected.push(error.code) },
    });
    const good = await connect(dialInit(port, clientTls));
    await assert.rejects(
      dial(dialInit(port, rogueTls)),
      expectCode([ErrorCode.TlsFailed, ErrorCode.HandshakeRejected]),
    );
    assert.equal(text(await good.request(echo('still served'))), 'still served');
    const another = await connect(dialInit(port, clientTls));
    assert.equal(text(await another.request(echo('new client'))), 'new client');
    assert.equal(rejected.length, 1);
  });

  test('the node reports an untrusted client certificate as RDB_TLS_FAILED', {}, async () => {
    const rejected: string[] = [];
    const { port } = await startServer({
      tls: serverTls,
      events: { onRejected: (_remote, error) => rejected.push(error.code) },
    });
    await assert.rejects(dial(dialInit(port, rogueTls)), expectCode(ErrorCode.HandshakeRejected));
    for (let i = 0; i < 50 && rejected.length === 0; i++) await sleep(10);
    assert.deepEqual(rejected, [ErrorCode.TlsFailed]);
  });

  test('a client certificate without an rdbnet identity is rejected by the node', async () => {
    const rejected: string[] = [];
    const { port } = await startServer({
      tls: serverTls,
      events: { onRejected: (_remote, error) => rejected.push(error.code) },
    });
    await assert.rejects(
      dial(dialInit(port, noIdentityTls)),
      // The node sends the reason in an error frame before closing.
      expectCode([
        ErrorCode.IdentityInvalid,
        ErrorCode.HandshakeRejected,
        ErrorCode.ConnectionClosed,
      ]),
    );
    for (let i = 0; i < 50 && rejected.length === 0; i++) await sleep(10);
    assert.deepEqual(rejected, [ErrorCode.IdentityInvalid]);
  });

  /**
   * A bare TLS listener presenting a certificate without an rdbnet identity. Cleanup destroys
   * the raw sockets instead of waiting for the dialer to hang up, so a dialer that leaks its
   * socket cannot hang the suite.
   */
  async function anonymousNode(): Promise<{ port: number; closed: boolean[] }> {
    const raw: Socket[] = [];
    const closed: boolean[] = [];
    const node = createTlsServer(serverTlsOptions(noIdentityTls), (socket) => {
      socket.on('error', () => {});
    });
    node.on('connection', (socket: Socket) => {
      raw.push(socket);
      const index = closed.push(false) - 1;
      socket.on('error', () => {});
      socket.on('close', () => {
        closed[index] = true;
      });
    });
    node.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => node.listen(0, HOST, resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          node.close(() => resolve());
          for (const socket of raw) socket.destroy();
        }),
    );
    return { port: (node.address() as { port: number }).port, closed };
  }

  test('a node certificate without an rdbnet identity is RDB_IDENTITY_INVALID', async () => {
    const { port } = await anonymousNode();
    await assert.rejects(dial(dialInit(port, clientTls)), expectCode(ErrorCode.IdentityInvalid));
  });

  test('a dial refused for the node certificate identity closes its socket', {}, async () => {
    const { port, closed } = await anonymousNode();
    await assert.rejects(dial(dialInit(port, clientTls)), expectCode(ErrorCode.IdentityInvalid));
    for (let i = 0; i < 50 && !closed.every(Boolean); i++) await sleep(10);
    assert.deepEqual(closed, [true], 'the dialer left its socket open');
  });

  test('a client that does not trust the node CA fails with RDB_TLS_FAILED', async () => {
    const { port } = await startServer({ tls: serverTls });
    const distrustful = { ...clientTls, ca: otherCa.certPem };
    await assert.rejects(dial(dialInit(port, distrustful)), expectCode(ErrorCode.TlsFailed));
  });

  test('an insecure client dialing a TLS node is told to drop --insecure', async () => {
    const { port } = await startServer({ tls: serverTls });
    await assert.rejects(dial(dialInit(port, null)), (error: unknown) => {
      assert.ok(isRdbnetError(error, ErrorCode.HandshakeRejected), String(error));
      assert.match(error.hint ?? '', /insecure/);
      return true;
    });
  });

  test('nothing listening is RDB_NODE_UNREACHABLE', async () => {
    const port = await freePort();
    await assert.rejects(dial(dialInit(port, null)), expectCode(ErrorCode.NodeUnreachable));
    await assert.rejects(dial(dialInit(port, clientTls)), expectCode(ErrorCode.NodeUnreachable));
  });

  test('a listener that never answers the hello is RDB_HANDSHAKE_TIMEOUT', async () => {
    const sockets = new Set<Socket>();
    const silent = createTcpServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, HOST, resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          silent.close(() => resolve());
        }),
    );
    const { port } = silent.address() as { port: number };
    const started = performance.now();
    await assert.rejects(
      dial(dialInit(port, null, { options: { handshakeTimeoutMs: 200 } })),
      expectCode(ErrorCode.HandshakeTimeout),
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 190 && elapsed < 2000, `gave up after ${elapsed} ms`);
  });
});

// ---- reconnecting link ----------------------------------------------------------------

describe('ReconnectingLink', () => {
  function link(
    init: DialInit,
    options: ConstructorParameters<typeof ReconnectingLink>[1],
    random?: Random,
    dialer?: typeof dial,
  ): ReconnectingLink {
    const created = new ReconnectingLink(init, options, random, dialer);
    cleanups.push(() => created.close());
    return created;
  }

  for (const variant of VARIANTS) {
    test(`requests made while the node is down wait and succeed when it returns (${variant.name})`, async () => {
      const first = await startServer({ tls: variant.server });
      const port = first.port;
      let dials = 0;
      const countingDial: typeof dial = (init) => {
        dials++;
        return dial(init);
      };
      const reconnecting = link(
        dialInit(port, variant.client, { options: { requestTimeoutMs: 5000 } }),
        { baseDelayMs: 20, capDelayMs: 80, attemptsMax: 1000 },
        seededRandom(42),
        countingDial,
      );
      assert.equal(text(await reconnecting.request(echo('up'))), 'up');
      assert.equal(reconnecting.state, 'open');
      assert.equal(dials, 1);

      // The node goes away: the link notices and goes idle without redialing.
      await first.server.close(200);
      const state = (): LinkState => reconnecting.state;
      for (let i = 0; i < 100 && state() !== 'idle'; i++) await sleep(10);
      assert.equal(reconnecting.state, 'idle');
      assert.equal(dials, 1);

      const waiting = ['a', 'b', 'c'].map((data) => reconnecting.request(echo(data)));
      await sleep(250);
      assert.ok(reconnecting.attempts >= 2, `only ${reconnecting.attempts} failed dials`);
      assert.ok(['backoff', 'connecting'].includes(reconnecting.state), reconnecting.state);
      assert.ok(isRdbnetError(reconnecting.lastError, ErrorCode.NodeUnreachable));

      await startServer({ tls: variant.server, port });
      const replies = await Promise.all(waiting);
      assert.deepEqual(replies.map(text), ['a', 'b', 'c']);
      assert.equal(reconnecting.state, 'open');
      assert.equal(reconnecting.attempts, 0);
      assert.equal(text(await reconnecting.request(echo('d'))), 'd');
    });
  }

  test('after attemptsMax failed dials the waiters fail with RDB_NODE_UNREACHABLE', async () => {
    const port = await freePort();
    let dials = 0;
    const countingDial: typeof dial = (init) => {
      dials++;
      return dial(init);
    };
    const reconnecting = link(
      dialInit(port, null),
      { baseDelayMs: 5, capDelayMs: 20, attemptsMax: 3 },
      seededRandom(7),
      countingDial,
    );
    const results = await Promise.allSettled([
      reconnecting.request(echo('1')),
      reconnecting.request(echo('2')),
    ]);
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      expectCode(ErrorCode.NodeUnreachable)((result as PromiseRejectedResult).reason);
    }
    assert.equal(dials, 3);
    assert.equal(reconnecting.state, 'failed');
    // The next request starts a fresh round of attempts.
    await assert.rejects(reconnecting.request(echo('3')), expectCode(ErrorCode.NodeUnreachable));
    assert.equal(dials, 6);
  });

  test('waiters past waitersMax are refused at once', async () => {
    const port = await freePort();
    const reconnecting = link(dialInit(port, null), {
      baseDelayMs: 1000,
      capDelayMs: 1000,
      attemptsMax: 2,
      waitersMax: 2,
    });
    const waiting = [reconnecting.request(echo('1')), reconnecting.request(echo('2'))];
    await assert.rejects(reconnecting.request(echo('3')), expectCode(ErrorCode.InflightLimit));
    reconnecting.close();
    for (const request of waiting) {
      await assert.rejects(request, expectCode(ErrorCode.ConnectionClosed));
    }
  });

  test('a waiting request gives up at its own deadline', async () => {
    const port = await freePort();
    const reconnecting = link(dialInit(port, null), {
      baseDelayMs: 50,
      capDelayMs: 50,
      attemptsMax: 1000,
    });
    const started = performance.now();
    await assert.rejects(
      reconnecting.request(echo('x'), 150),
      expectCode(ErrorCode.NodeUnreachable),
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 140 && elapsed < 2000, `gave up after ${elapsed} ms`);
  });

  describe('backoff (fake dialer, mocked timers)', () => {
    /**
     * Drives a link whose dials always fail, with setTimeout and Date mocked, and returns
     * the virtual time between consecutive dials.
     */
    async function dialGaps(random: Random, attemptsMax: number, base: number, cap: number) {
      mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
      try {
        const dialTimes: number[] = [];
        const failingDial: typeof dial = () => {
          dialTimes.push(Date.now());
          return Promise.reject(new RdbnetError(ErrorCode.NodeUnreachable, 'refused'));
        };
        const reconnecting = new ReconnectingLink(
          dialInit(1, null),
          { baseDelayMs: base, capDelayMs: cap, attemptsMax },
          random,
          failingDial,
        );
        let failure: unknown = null;
        reconnecting.request(echo('x'), 3_600_000).catch((error: unknown) => {
          failure = error;
        });
        const flush = () => new Promise<void>((resolve) => setImmediate(resolve));
        for (let elapsed = 0; failure === null && elapsed < 600_000; elapsed++) {
          await flush();
          mock.timers.tick(1);
        }
        await flush();
        expectCode(ErrorCode.NodeUnreachable)(failure);
        assert.equal(dialTimes.length, attemptsMax);
        assert.equal(reconnecting.state, 'failed');
        reconnecting.close();
        return dialTimes.slice(1).map((time, i) => time - dialTimes[i]!);
      } finally {
        mock.timers.reset();
      }
    }

    test('delays follow backoffDelayMs with the injected seeded Random', async () => {
      const seed = 1234;
      const gaps = await dialGaps(seededRandom(seed), 8, 10, 400);
      const twin = seededRandom(seed);
      const expected = gaps.map((_, attempt) => backoffDelayMs(attempt, 10, 400, twin));
      // A timer of 0 ms still waits for the next tick of the mocked clock.
      assert.deepEqual(
        gaps,
        expected.map((delay) => Math.max(delay, 1)),
        `seed ${seed}`,
      );
      for (const [attempt, gap] of gaps.entries()) {
        assert.ok(gap <= Math.min(400, 10 * 2 ** attempt), `seed ${seed}: attempt ${attempt}`);
      }
    });

    test('delay ceilings double until the cap', async () => {
      const almostOne: Random = { next: () => 0.999, int: (max) => max - 1 };
      const gaps = await dialGaps(almostOne, 8, 10, 300);
      assert.deepEqual(gaps, [9, 19, 39, 79, 159, 299, 299]);
    });
  });
});

describe('clock reads (the hot path reads the clock per chunk and per turn, not per frame)', () => {
  /** A clock the test moves by hand, counting how often it is read. */
  function manualClock() {
    const clock = {
      now: 0,
      reads: 0,
      nowMs: () => {
        clock.reads++;
        return clock.now;
      },
      wallMs: () => 0,
    };
    return clock;
  }

  /** A dialer and an acceptor Connection over loopback TCP, each with its own manual clock;
   * the acceptor answers echo at once, except payloads starting with "hang". */
  async function pair() {
    const clientClock = manualClock();
    const serverClock = manualClock();
    const server = createTcpServer();
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const dialed = connectTcp((server.address() as { port: number }).port, HOST);
    cleanups.push(() => {
      dialed.destroy();
      server.close();
    });
    const options = connectionOptions();
    const acceptor = new Connection({
      socket: await accepted,
      side: 'acceptor',
      local: nodeLocal,
      options,
      certified: null,
      clock: serverClock,
      handler: (request) => {
        const data = (request.body as EchoMessage).data;
        if (Buffer.from(data).toString().startsWith('hang')) return new Promise<Envelope>(() => {});
        return { echoReply: { data } };
      },
    });
    const dialer = new Connection({
      socket: dialed,
      side: 'dialer',
      local: clientLocal,
      options,
      certified: null,
      clock: clientClock,
    });
    cleanups.push(() => {
      dialer.destroy(new RdbnetError(ErrorCode.ConnectionClosed, 'test over'));
      acceptor.destroy(new RdbnetError(ErrorCode.ConnectionClosed, 'test over'));
    });
    await dialer.startHandshake();
    return { dialer, clientClock, serverClock };
  }

  test('a turn of 500 requests and their 500 replies read each clock a handful of times', async () => {
    const { dialer, clientClock, serverClock } = await pair();
    const clientBefore = clientClock.reads;
    const serverBefore = serverClock.reads;
    const replies = [];
    for (let i = 0; i < 500; i++) replies.push(dialer.request(echo(`call ${i}`)));
    const answered = await Promise.all(replies);
    assert.equal(answered.length, 500);
    assert.equal(text(answered[499]!), 'call 499');
    // Once for the turn of requests, once per chunk of replies (a few: 500 small frames).
    const clientReads = clientClock.reads - clientBefore;
    const serverReads = serverClock.reads - serverBefore;
    assert.ok(clientReads >= 2 && clientReads <= 25, `client read its clock ${clientReads} times`);
    assert.ok(serverReads >= 1 && serverReads <= 25, `server read its clock ${serverReads} times`);
  });

  test('a request in a later turn counts its deadline from a fresh reading', async () => {
    const { dialer, clientClock } = await pair();
    clientClock.now = 0;
    const early = dialer.request(echo('hang early'), 600);
    const earlyOutcome = early.then(
      () => 'answered',
      (error: unknown) => (error as RdbnetError).code,
    );
    // The next turn: the first request's reading is spent with its flush.
    await new Promise((resolve) => setImmediate(resolve));
    clientClock.now = 1000;
    const late = dialer.request(echo('hang late'), 500);
    let lateOutcome = 'pending';
    late.then(
      () => (lateOutcome = 'answered'),
      (error: unknown) => (lateOutcome = (error as RdbnetError).code),
    );
    // Past the first deadline (600), before the second (1000 + 500): only the first times out.
    clientClock.now = 1200;
    assert.equal(await earlyOutcome, ErrorCode.RequestTimeout);
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(lateOutcome, 'pending');
    clientClock.now = 1600;
    await waitUntil(() => lateOutcome !== 'pending');
    assert.equal(lateOutcome, ErrorCode.RequestTimeout);
  });
});
