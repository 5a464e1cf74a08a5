/**
 * Hostile and broken peers against one live zero-config TLS node. Each abuse must cost the
 * offending connection only: the node answers it with the documented error frame (where the
 * protocol is reached), closes it, counts it, and keeps serving `health`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { connect as connectTls, type ConnectionOptions as TlsOptions } from 'node:tls';
import { compressPayload } from '../../src/core/protocol/compression.ts';
import {
  Codec,
  encodeFrame,
  FrameDecoder,
  FrameKind,
  makeFlags,
} from '../../src/core/protocol/frame.ts';
import { makeHello } from '../../src/core/protocol/handshake.ts';
import {
  decodeEnvelope,
  type Envelope,
  type ErrorReply,
  encodeEnvelope,
  type Hello,
  RoleCode,
} from '../../src/core/protocol/messages.ts';
import { ensureLocalCertificates } from '../../src/core/security/certs-dir.ts';
import {
  type CliResult,
  killAllNodes,
  type NodeProcess,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

let home: { dir: string; cleanup(): Promise<void> };
let otherHome: { dir: string; cleanup(): Promise<void> };
let node: NodeProcess;
let host: string;
let port: number;
/** ca.crt + client.admin.crt/.key of the node's own cluster. */
let admin: { ca: Buffer; cert: Buffer; key: Buffer };
/** client.admin.crt/.key of an unrelated zero-config CA (same cluster name, other CA). */
let stranger: { cert: Buffer; key: Buffer };
const sockets = new Set<Socket>();

before(async () => {
  home = await tempHome('rdbnet-bad-input-');
  otherHome = await tempHome('rdbnet-bad-input-other-');
  node = await startNode(['--listen', '127.0.0.1:0'], env());
  const colon = node.address.lastIndexOf(':');
  host = node.address.slice(0, colon);
  port = Number(node.address.slice(colon + 1));
  const certs = join(home.dir, 'certs');
  admin = {
    ca: await readFile(join(certs, 'ca.crt')),
    cert: await readFile(join(certs, 'client.admin.crt')),
    key: await readFile(join(certs, 'client.admin.key')),
  };
  const otherCerts = join(otherHome.dir, 'certs');
  await ensureLocalCertificates({ dir: otherCerts, cluster: node.info.clusterId, hosts: [] });
  stranger = {
    cert: await readFile(join(otherCerts, 'client.admin.crt')),
    key: await readFile(join(otherCerts, 'client.admin.key')),
  };
});

afterEach(() => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await killAllNodes();
  await home.cleanup();
  await otherHome.cleanup();
});

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

function describeResult(result: CliResult): string {
  const node_ = `node: ${node.stderr()}`;
  return `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}\n${node_}`;
}

/** The node still answers `health --json` over a fresh mTLS connection. */
async function assertServing(): Promise<void> {
  assert.equal(node.child.exitCode, null, `node exited:\n${node.stderr()}`);
  const result = await runCli(['health', '--json', '--node', node.address], env());
  assert.equal(result.code, 0, describeResult(result));
  assert.equal((JSON.parse(result.stdout) as { status: string }).status, 'healthy');
}

interface Status {
  connections: number;
  counters: Record<string, number>;
}

async function status(): Promise<Status> {
  const result = await runCli(['node', 'status', '--json', '--node', node.address], env());
  assert.equal(result.code, 0, describeResult(result));
  return JSON.parse(result.stdout) as Status;
}

function sum(counters: Record<string, number>, prefix: string): number {
  let total = 0;
  for (const [name, value] of Object.entries(counters)) {
    if (name.startsWith(prefix)) total += value;
  }
  return total;
}

/** Polls `node status` until the counters under `prefix` exceed `before`. */
async function waitForCounter(prefix: string, before: number, waitMs = 5000): Promise<Status> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const now = await status();
    if (sum(now.counters, prefix) > before) return now;
    if (Date.now() > deadline) {
      assert.fail(`no ${prefix}* counter moved past ${before}: ${JSON.stringify(now.counters)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Outcome {
  /** The TLS handshake completed on the client side. */
  secure: boolean;
  error: (Error & { code?: string }) | null;
  data: Buffer;
  /** The socket closed within the wait (false: still open when we gave up). */
  closed: boolean;
}

/** Collects everything the node sends until the socket closes (or timeoutMs passes). */
function observe(socket: Socket, timeoutMs = 5000): Promise<Outcome> {
  sockets.add(socket);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: Outcome['error'] = null;
    let secure = false;
    socket.on('secureConnect', () => {
      secure = true;
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (cause) => {
      error ??= cause;
    });
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      resolve({ secure, error, data: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => {
      socket.destroy();
      finish(false);
    }, timeoutMs);
    socket.once('close', () => finish(true));
  });
}

function tlsOptions(overrides: TlsOptions = {}): TlsOptions {
  return {
    host,
    port,
    ca: admin.ca,
    cert: admin.cert,
    key: admin.key,
    checkServerIdentity: () => undefined,
    ...overrides,
  };
}

/** Opens a proper mTLS connection as admin, writes `chunks` once secure, and observes it. */
function overMtls(chunks: Buffer[], opts: { end?: boolean } = {}): Promise<Outcome> {
  const socket = connectTls(tlsOptions(), () => {
    for (const chunk of chunks) socket.write(chunk);
    if (opts.end) socket.end();
  });
  return observe(socket);
}

interface Frame {
  kind: number;
  flags: number;
  messageId: number;
  payload: Buffer;
}

function decodeFrames(data: Buffer): Frame[] {
  const frames: Frame[] = [];
  new FrameDecoder().push(data, (flags, messageId, payload) => {
    frames.push({ kind: flags & 3, flags, messageId, payload: Buffer.from(payload) });
  });
  return frames;
}

/** The one error frame a protocol violation earns: kind error, id 0, an ErrorReply. */
function errorFrame(outcome: Outcome): ErrorReply {
  const frames = decodeFrames(outcome.data);
  const errors = frames.filter((frame) => (frame.flags & 3) === FrameKind.Error);
  assert.equal(
    errors.length,
    1,
    `expected one error frame, got kinds ${frames.map((f) => f.kind)}`,
  );
  const [frame] = errors;
  assert.equal(frame?.messageId, 0);
  const message = decodeEnvelope(frame!.payload);
  assert.equal(message.kind, 'error');
  const reply = message.body as ErrorReply;
  assert.ok(reply.message.length > 0, 'error frame without a message');
  return reply;
}

const REQUEST = makeFlags(FrameKind.Request, Codec.None, true);

function frameOf(envelope: Envelope, messageId = 0, flags = REQUEST): Buffer {
  return encodeFrame(flags, messageId, encodeEnvelope(envelope));
}

function hello(overrides: Partial<Hello> = {}): Envelope {
  const base = makeHello({
    id: 'admin',
    clusterId: node.info.clusterId,
    role: 'client',
    softwareVersion: 'bad-input-test',
    codecs: [Codec.None],
  });
  return { hello: { ...base, ...overrides } };
}

/** Sends `bytes` over mTLS and expects exactly one error frame with `code`, then a close. */
async function expectProtocolError(bytes: Buffer[], code: string): Promise<ErrorReply> {
  const before = sum((await status()).counters, `protocol.errors.${code}`);
  const outcome = await overMtls(bytes);
  assert.ok(outcome.secure, `TLS failed: ${outcome.error?.message}`);
  assert.ok(outcome.closed, 'the node did not close the connection');
  const reply = errorFrame(outcome);
  assert.equal(reply.code, code, reply.message);
  await waitForCounter(`protocol.errors.${code}`, before);
  await assertServing();
  return reply;
}

describe('TLS-level abuse', () => {
  test('plain TCP garbage on the TLS port is closed', async () => {
    const before = sum((await status()).counters, 'connections.rejected.RDB_TLS_FAILED');
    const socket = connectTcp({ host, port }, () => socket.write(randomBytes(4096)));
    const outcome = await observe(socket);
    assert.ok(outcome.closed, 'garbage connection left open');
    await waitForCounter('connections.rejected.RDB_TLS_FAILED', before);
    await assertServing();
  });

  test('plain TCP that sends an rdbnet Hello without TLS is closed', async () => {
    const before = sum((await status()).counters, 'connections.rejected.RDB_TLS_FAILED');
    const socket = connectTcp({ host, port }, () => socket.write(frameOf(hello())));
    const outcome = await observe(socket);
    assert.ok(outcome.closed);
    assert.deepEqual(decodeFramesSafe(outcome.data), [], 'node spoke rdbnet without TLS');
    await waitForCounter('connections.rejected.RDB_TLS_FAILED', before);
    await assertServing();
  });

  test('a TLS 1.2-only client fails the handshake with an error', async () => {
    const before = sum((await status()).counters, 'connections.rejected.RDB_TLS_FAILED');
    const socket = connectTls(tlsOptions({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }));
    const outcome = await observe(socket);
    assert.equal(outcome.secure, false, 'TLS 1.2 handshake succeeded');
    assert.ok(outcome.error !== null, 'no error on the client');
    assert.ok(outcome.closed);
    await waitForCounter('connections.rejected.RDB_TLS_FAILED', before);
    await assertServing();
  });

  test('a TLS client without a certificate is closed with an error', async () => {
    const before = sum((await status()).counters, 'connections.rejected.RDB_TLS_FAILED');
    // With TLS 1.3 the client finishes first; the refusal arrives on the next read.
    const socket = connectTls(tlsOptions({ cert: undefined, key: undefined }), () =>
      socket.write(frameOf(hello())),
    );
    const outcome = await observe(socket);
    assert.ok(outcome.closed, 'certificate-less connection left open');
    assert.ok(outcome.error !== null, 'closed without an error');
    assert.equal(outcome.data.length, 0, 'the node answered a client without a certificate');
    await waitForCounter('connections.rejected.RDB_TLS_FAILED', before);
    await assertServing();
  });

  test('a client certificate from another CA is refused', async () => {
    const before = sum((await status()).counters, 'connections.rejected.');
    const socket = connectTls(tlsOptions({ cert: stranger.cert, key: stranger.key }), () =>
      socket.write(frameOf(hello())),
    );
    const outcome = await observe(socket);
    assert.ok(outcome.closed, 'foreign-CA connection left open');
    // The node destroys the socket after the handshake: the client sees EOF, no alert.
    assert.equal(outcome.data.length, 0, 'the node answered a client of another CA');
    await waitForCounter('connections.rejected.', before);
    await assertServing();
  });

  test('a foreign-CA client is counted and logged as a TLS failure with its address', {}, async () => {
    const before = sum((await status()).counters, 'connections.rejected.RDB_TLS_FAILED');
    const socket = connectTls(tlsOptions({ cert: stranger.cert, key: stranger.key }));
    let local = '';
    socket.once('connect', () => {
      local = `127.0.0.1:${socket.localPort}`;
    });
    const outcome = await observe(socket);
    assert.ok(outcome.closed);
    await waitForCounter('connections.rejected.RDB_TLS_FAILED', before, 2000);
    const logged = node
      .stderr()
      .split('\n')
      .filter((line) => line.includes('connection rejected'))
      .at(-1);
    assert.ok(logged?.includes(local), `rejection log does not name ${local}: ${logged}`);
  });
});

/** Like decodeFrames, but garbage (e.g. a TLS alert) yields no frames instead of throwing. */
function decodeFramesSafe(data: Buffer): Frame[] {
  try {
    return decodeFrames(data);
  } catch {
    return [];
  }
}

describe('protocol-level abuse over a proper mTLS connection', () => {
  test('sanity: a proper Hello gets a HelloAck and status answers', async () => {
    const socket = connectTls(tlsOptions(), () => {
      socket.write(Buffer.concat([frameOf(hello()), frameOf({ statusRequest: {} }, 7)]));
    });
    sockets.add(socket);
    const frames: Frame[] = [];
    const decoder = new FrameDecoder();
    await new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        decoder.push(chunk, (flags, messageId, payload) => {
          frames.push({ kind: flags & 3, flags, messageId, payload: Buffer.from(payload) });
        });
        if (frames.length >= 2) resolve();
      });
    });
    socket.destroy();
    assert.deepEqual(
      frames.map((f) => [f.kind, f.messageId, decodeEnvelope(f.payload).kind]),
      [
        [FrameKind.Response, 0, 'helloAck'],
        [FrameKind.Response, 7, 'statusReply'],
      ],
    );
  });

  test('a 4 GiB length prefix: RDB_FRAME_TOO_LARGE, then close', async () => {
    const bytes = Buffer.alloc(64, 0);
    bytes.writeUInt32BE(0xffffffff, 0);
    await expectProtocolError([bytes], 'RDB_FRAME_TOO_LARGE');
  });

  test('a 4 GiB length prefix after a good Hello: RDB_FRAME_TOO_LARGE', async () => {
    const bytes = Buffer.alloc(8, 0xff);
    await expectProtocolError([frameOf(hello()), bytes], 'RDB_FRAME_TOO_LARGE');
  });

  test('a truncated frame, then close: the node is unaffected', async () => {
    const full = frameOf(hello());
    const outcome = await overMtls([full.subarray(0, full.length - 5)], { end: true });
    assert.ok(outcome.secure, outcome.error?.message);
    assert.ok(outcome.closed);
    assert.deepEqual(decodeFrames(outcome.data), [], 'node answered half a frame');
    await assertServing();
    // Nothing is left behind: only the status call's own connection is open.
    const deadline = Date.now() + 3000;
    let now = await status();
    while (now.connections > 1 && Date.now() < deadline) now = await status();
    assert.equal(now.connections, 1, 'the truncated connection is still held');
  });

  test('a frame shorter than its header: RDB_FRAME_MALFORMED', async () => {
    const bytes = Buffer.alloc(16, 0);
    bytes.writeUInt32BE(3, 0);
    await expectProtocolError([bytes], 'RDB_FRAME_MALFORMED');
  });

  test('a bad checksum: RDB_CHECKSUM_MISMATCH, then close', async () => {
    const bytes = frameOf(hello());
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    await expectProtocolError([bytes], 'RDB_CHECKSUM_MISMATCH');
  });

  test('a corrupted payload under a valid checksum header: RDB_CHECKSUM_MISMATCH', async () => {
    const bytes = frameOf(hello());
    bytes[20] = (bytes[20] ?? 0) ^ 0x01;
    await expectProtocolError([bytes], 'RDB_CHECKSUM_MISMATCH');
  });

  test('reserved flag bits: RDB_FRAME_MALFORMED', async () => {
    // Bits 5-8 are the streams' chunk and priority bits (docs/protocol.md); 9-15 are reserved.
    for (const bit of [1 << 9, 1 << 15]) {
      const bytes = frameOf(hello(), 0, REQUEST | bit);
      const reply = await expectProtocolError([bytes], 'RDB_FRAME_MALFORMED');
      assert.match(reply.message, /reserved/);
    }
  });

  test('an unknown codec: RDB_CODEC_UNSUPPORTED', async () => {
    const bytes = frameOf(hello(), 0, REQUEST | (3 << 2));
    await expectProtocolError([bytes], 'RDB_CODEC_UNSUPPORTED');
  });

  test('a corrupt LZ4 payload after LZ4 was negotiated: RDB_DECOMPRESS_FAILED', async () => {
    const payload = Buffer.concat([Buffer.from([64, 0, 0, 0]), Buffer.alloc(16, 0xff)]);
    const bytes = encodeFrame(makeFlags(FrameKind.Request, Codec.Lz4, true), 3, payload);
    await expectProtocolError(
      [frameOf(hello({ codecs: [Codec.Lz4, Codec.None] })), bytes],
      'RDB_DECOMPRESS_FAILED',
    );
  });

  test('an LZ4 frame when no codec was negotiated: RDB_CODEC_UNSUPPORTED, then close', async () => {
    // A valid LZ4 block: decoding it would succeed, but the Hello offered no LZ4.
    const packed = compressPayload(
      Codec.Lz4,
      encodeEnvelope({ echoRequest: { data: Buffer.alloc(4096) } }),
      1024,
    );
    assert.equal(packed.codec, Codec.Lz4);
    const lz4 = makeFlags(FrameKind.Request, Codec.Lz4, true);
    await expectProtocolError(
      [frameOf(hello()), encodeFrame(lz4, 3, packed.payload)],
      'RDB_CODEC_UNSUPPORTED',
    );
    // Nor may a Hello itself come compressed: nothing is negotiated before it.
    const helloPacked = compressPayload(
      Codec.Lz4,
      encodeEnvelope(hello({ softwareVersion: 'x'.repeat(2048) })),
      1024,
    );
    assert.equal(helloPacked.codec, Codec.Lz4);
    await expectProtocolError([encodeFrame(lz4, 0, helloPacked.payload)], 'RDB_CODEC_UNSUPPORTED');
  });

  test('a valid frame whose payload is not protobuf: RDB_MESSAGE_MALFORMED', async () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x07]);
    assert.throws(() => decodeEnvelope(garbage), { code: 'RDB_MESSAGE_MALFORMED' });
    // As the first frame, and as a request after a good Hello.
    await expectProtocolError([encodeFrame(REQUEST, 0, garbage)], 'RDB_MESSAGE_MALFORMED');
    await expectProtocolError(
      [frameOf(hello()), encodeFrame(REQUEST, 3, garbage)],
      'RDB_MESSAGE_MALFORMED',
    );
  });

  test('a first frame that is not a Hello: RDB_HANDSHAKE_REJECTED', async () => {
    await expectProtocolError([frameOf({ statusRequest: {} }, 1)], 'RDB_HANDSHAKE_REJECTED');
    // A Hello sent as a response is not a Hello request either.
    await expectProtocolError(
      [frameOf(hello(), 0, makeFlags(FrameKind.Response, Codec.None, true))],
      'RDB_HANDSHAKE_REJECTED',
    );
  });

  test('a node Hello under the admin client certificate: RDB_IDENTITY_INVALID', async () => {
    await expectProtocolError(
      [frameOf(hello({ role: RoleCode.Node, peerId: 'admin' }))],
      'RDB_IDENTITY_INVALID',
    );
    // Claiming the node's own id is no better.
    await expectProtocolError(
      [frameOf(hello({ role: RoleCode.Node, peerId: node.info.id }))],
      'RDB_IDENTITY_INVALID',
    );
    // Nor is another client name than the certificate's.
    await expectProtocolError([frameOf(hello({ peerId: 'root' }))], 'RDB_IDENTITY_INVALID');
  });

  test('a Hello for another cluster: RDB_CLUSTER_MISMATCH', async () => {
    await expectProtocolError(
      [frameOf(hello({ clusterId: 'some-other-cluster' }))],
      'RDB_CLUSTER_MISMATCH',
    );
  });

  test('a second Hello after the handshake is answered with an error, not a crash', async () => {
    const outcome = await new Promise<Frame[]>((resolve, reject) => {
      const socket = connectTls(tlsOptions(), () => {
        socket.write(Buffer.concat([frameOf(hello()), frameOf(hello(), 5)]));
      });
      sockets.add(socket);
      const frames: Frame[] = [];
      const decoder = new FrameDecoder();
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        decoder.push(chunk, (flags, messageId, payload) => {
          frames.push({ kind: flags & 3, flags, messageId, payload: Buffer.from(payload) });
        });
        if (frames.length >= 2) resolve(frames);
      });
      socket.on('close', () => resolve(frames));
    });
    const second = outcome.find((frame) => frame.messageId === 5);
    assert.ok(second !== undefined, 'no answer to the second Hello');
    assert.equal(second.kind, FrameKind.Error);
    assert.equal(decodeEnvelope(second.payload).kind, 'error');
    await assertServing();
  });
});

/** TLS record header: handshake (0x16), TLS 1.0 record version, 512 bytes to follow. */
const CLIENT_HELLO_HEADER = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]);

describe('connection floods', () => {
  test('200 connections abandoned mid-handshake do not stop the node serving', async () => {
    const before = await status();
    const tcpOnly: Socket[] = [];
    const tlsNoHello: Promise<Outcome>[] = [];
    const connected: Promise<unknown>[] = [];
    for (let i = 0; i < 100; i++) {
      // TCP open, TLS never started (or started and left half-way).
      const socket = connectTcp({ host, port });
      sockets.add(socket);
      socket.on('error', () => {});
      connected.push(new Promise((resolve) => socket.once('connect', resolve)));
      // Half of them begin a TLS record (a ClientHello of 512 bytes) and stop after its header.
      if (i % 2 === 1) socket.once('connect', () => socket.write(CLIENT_HELLO_HEADER));
      tcpOnly.push(socket);
    }
    for (let i = 0; i < 100; i++) {
      // TLS done, protocol Hello never sent.
      const socket = connectTls(tlsOptions());
      connected.push(new Promise((resolve) => socket.once('secureConnect', resolve)));
      tlsNoHello.push(observe(socket, 15_000));
    }
    await Promise.all(connected);

    // While all 200 hang, the node serves.
    await assertServing();

    // The node closes the 100 silent protocol connections at its handshake timeout (5 s).
    const outcomes = await Promise.all(tlsNoHello);
    assert.equal(outcomes.filter((o) => o.closed).length, 100, 'silent connections kept open');
    for (const outcome of outcomes) {
      // The node may say why before closing; it must not say anything else.
      for (const frame of decodeFrames(outcome.data)) {
        assert.equal(frame.kind, FrameKind.Error);
        assert.equal(
          (decodeEnvelope(frame.payload).body as ErrorReply).code,
          'RDB_HANDSHAKE_TIMEOUT',
        );
      }
    }
    // Each was closed at the handshake timeout, or earlier to make room: 200 sockets from one
    // address are more than its unauthenticated share (64 by default).
    const after = await status();
    // Closed before or after TLS completed alike: the admission table's own counters.
    const closedByNode = (counters: Record<string, number>) =>
      sum(counters, 'connections.preauth.timed_out') + sum(counters, 'connections.preauth.evicted');
    assert.ok(
      closedByNode(after.counters) - closedByNode(before.counters) >= 100,
      JSON.stringify(after.counters),
    );

    for (const socket of tcpOnly) socket.destroy();
    await assertServing();
  });
});
