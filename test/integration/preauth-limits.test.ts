/**
 * Limits that strangers and misbehaving clients must not be able to exhaust, against one
 * live zero-config TLS node started with small limits: unauthenticated sockets (total and per
 * source address, destroyed at the handshake timeout), the node-wide budget for buffered
 * frames, and the idle timeout of authenticated connections. Strangers connect from other
 * loopback addresses (127.0.0.2 …) through `localAddress`; the CLI comes from 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { connect as connectTls, type TLSSocket } from 'node:tls';
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
import {
  describeResult,
  killAllNodes,
  type NodeProcess,
  parseJson,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const MiB = 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 2000;
const UNAUTHENTICATED_MAX = 64;
const UNAUTHENTICATED_PER_SOURCE_MAX = 16;
const IDLE_TIMEOUT_MS = 3000;
const BUFFERED_BYTES_MAX = 3 * MiB;
/** Every wait in this file is bounded by this much beyond the limit it waits for. */
const SLACK_MS = 10_000;

/** The node's --config file: small limits so that the test is fast. */
const NODE_CONFIG = {
  connectionsMax: UNAUTHENTICATED_MAX,
  unauthenticatedConnectionsMax: UNAUTHENTICATED_MAX,
  unauthenticatedConnectionsPerSourceMax: UNAUTHENTICATED_PER_SOURCE_MAX,
  idleTimeoutMs: IDLE_TIMEOUT_MS,
  bufferedBytesMax: BUFFERED_BYTES_MAX,
  connection: { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS, frameBytesMax: 2 * MiB },
};

let home: { dir: string; cleanup(): Promise<void> };
let node: NodeProcess;
let host: string;
let port: number;
let credentials: { ca: Buffer; cert: Buffer; key: Buffer; nodeCert: Buffer; nodeKey: Buffer };
const sockets = new Set<Socket>();
const until = poller(100);

before(async () => {
  home = await tempHome('rdbnet-preauth-');
  const configPath = join(home.dir, 'node.json');
  await writeFile(configPath, JSON.stringify(NODE_CONFIG));
  node = await startNode(['--listen', '127.0.0.1:0', '--config', configPath], env());
  const colon = node.address.lastIndexOf(':');
  host = node.address.slice(0, colon);
  port = Number(node.address.slice(colon + 1));
  const certs = join(home.dir, 'certs');
  credentials = {
    ca: await readFile(join(certs, 'ca.crt')),
    cert: await readFile(join(certs, 'client.admin.crt')),
    key: await readFile(join(certs, 'client.admin.key')),
    nodeCert: await readFile(join(certs, `node.${node.info.id}.crt`)),
    nodeKey: await readFile(join(certs, `node.${node.info.id}.key`)),
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
});

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

interface Status {
  connections: number;
  counters: Record<string, number>;
}

async function status(): Promise<Status> {
  const result = await runCli(['node', 'status', '--json', '--node', node.address], env());
  assert.equal(result.code, 0, `${describeResult(result)}\nnode: ${node.stderr()}`);
  return parseJson<Status>(result);
}

function counter(now: Status, name: string): number {
  return now.counters[name] ?? 0;
}

/** `rdbnet health` from 127.0.0.1 succeeds over a fresh mTLS connection. */
async function assertServing(): Promise<void> {
  assert.equal(node.child.exitCode, null, `node exited:\n${node.stderr()}`);
  const result = await runCli(['health', '--json', '--node', node.address], env());
  assert.equal(result.code, 0, `${describeResult(result)}\nnode: ${node.stderr()}`);
  assert.equal(parseJson<{ status: string }>(result).status, 'healthy');
}

interface Silent {
  socket: Socket;
  connected: Promise<void>;
  /** Resolves when the node closed the socket. */
  closed: Promise<void>;
  isClosed(): boolean;
}

/** A TCP connection from `localAddress` that never sends a byte. */
function silentSocket(localAddress: string): Silent {
  const socket = connectTcp({ host, port, localAddress });
  sockets.add(socket);
  socket.on('error', () => {});
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => reject(new Error(`connection from ${localAddress} never opened`)));
  });
  return { socket, connected, closed, isClosed: () => isClosed };
}

function bounded<T>(what: string, promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface Frame {
  kind: number;
  messageId: number;
  message: ReturnType<typeof decodeEnvelope>;
}

interface Peer {
  socket: TLSSocket;
  frames: Frame[];
  closed: Promise<void>;
  isClosed(): boolean;
  /** The code of the error frame with id 0 the node sent, if any. */
  errorCode(): string | undefined;
}

const REQUEST = makeFlags(FrameKind.Request, Codec.None, false);

function frameOf(envelope: Envelope, messageId = 0): Buffer {
  return encodeFrame(REQUEST, messageId, encodeEnvelope(envelope));
}

/**
 * A raw mTLS connection (admin client certificate, or the node's own certificate with
 * `asNode`) that sends its Hello and resolves once the HelloAck is in.
 */
function helloConnection(options: { localAddress?: string; asNode?: boolean } = {}): Promise<Peer> {
  const asNode = options.asNode ?? false;
  const hello: Hello = makeHello({
    id: asNode ? node.info.id : 'admin',
    clusterId: node.info.clusterId,
    role: asNode ? 'node' : 'client',
    softwareVersion: 'preauth-test',
    codecs: [Codec.None],
  });
  if (asNode) assert.equal(hello.role, RoleCode.Node);
  const socket = connectTls({
    host,
    port,
    ca: credentials.ca,
    cert: asNode ? credentials.nodeCert : credentials.cert,
    key: asNode ? credentials.nodeKey : credentials.key,
    checkServerIdentity: () => undefined,
    ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
  });
  sockets.add(socket);
  const frames: Frame[] = [];
  const decoder = new FrameDecoder();
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  const peer: Peer = {
    socket,
    frames,
    closed,
    isClosed: () => isClosed,
    errorCode: () => {
      const error = frames.find((f) => f.kind === FrameKind.Error && f.messageId === 0);
      return error === undefined ? undefined : (error.message.body as ErrorReply).code;
    },
  };
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk, (flags, messageId, payload) => {
      frames.push({ kind: flags & 3, messageId, message: decodeEnvelope(Buffer.from(payload)) });
    });
  });
  socket.once('secureConnect', () => socket.write(frameOf({ hello })));
  return bounded(
    'HelloAck',
    new Promise<Peer>((resolve, reject) => {
      const check = () => {
        if (frames.some((f) => f.message.kind === 'helloAck')) resolve(peer);
      };
      socket.on('data', check);
      socket.once('close', () =>
        reject(new Error(`closed before HelloAck (error ${peer.errorCode() ?? 'none'})`)),
      );
    }),
    SLACK_MS,
  );
}

describe('unauthenticated connections', () => {
  test('strangers holding every unauthenticated slot lock no one out, and lose their sockets at the handshake timeout', async () => {
    const before = await status();
    const strangers: Silent[] = [];
    // Five sources fill their per-source share (5 × 16 = 80 > 64 in total), and the CLI's
    // own address holds its share too.
    for (const source of ['127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.14', '127.0.0.15']) {
      for (let i = 0; i < UNAUTHENTICATED_PER_SOURCE_MAX; i++) strangers.push(silentSocket(source));
    }
    for (let i = 0; i < UNAUTHENTICATED_PER_SOURCE_MAX + 4; i++) {
      strangers.push(silentSocket('127.0.0.1'));
    }
    await Promise.allSettled(strangers.map((s) => s.connected));
    const floodedAtMs = performance.now();

    // Admin clients get in while strangers hold the maximum.
    await assertServing();
    await assertServing();

    // Every stranger's socket is closed by the node: at the latest at the handshake timeout.
    await bounded(
      'the node closes every silent socket',
      Promise.all(strangers.map((s) => s.closed)),
      HANDSHAKE_TIMEOUT_MS + SLACK_MS,
    );
    const closedAfterMs = performance.now() - floodedAtMs;
    assert.ok(closedAfterMs < HANDSHAKE_TIMEOUT_MS + SLACK_MS, `${closedAfterMs} ms`);

    const now = await status();
    const evicted =
      counter(now, 'connections.preauth.evicted') - counter(before, 'connections.preauth.evicted');
    const timedOut =
      counter(now, 'connections.preauth.timed_out') -
      counter(before, 'connections.preauth.timed_out');
    assert.ok(
      evicted + timedOut >= strangers.length,
      `evicted ${evicted} + timed out ${timedOut} < ${strangers.length}: ${JSON.stringify(now.counters)}`,
    );
    assert.ok(evicted >= strangers.length - UNAUTHENTICATED_MAX, `evicted ${evicted}`);
    assert.equal(counter(now, 'connections.preauth.open'), 0, JSON.stringify(now.counters));
    // Refusals are logged a few at a time plus a summary, not one line each.
    const lines = node
      .stderr()
      .split('\n')
      .filter((line) => line.includes('connection rejected'));
    assert.ok(
      lines.length <= 20,
      `${lines.length} rejection lines for ${strangers.length} sockets`,
    );
    // The rest are summed up in one line per interval (10 s).
    const summary = await until(
      'a summary of the refusals not logged one by one',
      async () =>
        node
          .stderr()
          .split('\n')
          .find((line) => line.includes('connection log lines suppressed')),
      10_000 + SLACK_MS,
    );
    const fields = JSON.parse(summary) as { total: number; byKind: Record<string, number> };
    assert.ok(fields.total > 0 && Object.keys(fields.byKind).length > 0, summary);
  });

  test('one source holds at most its share; the oldest go first and another source still gets in', async () => {
    const before = await status();
    const flood: Silent[] = [];
    const closeOrder: number[] = [];
    const count = UNAUTHENTICATED_PER_SOURCE_MAX + 8;
    for (let i = 0; i < count; i++) {
      const silent = silentSocket('127.0.0.2');
      silent.closed.then(() => closeOrder.push(i));
      // One at a time, so that the node accepts them in this order.
      await silent.connected;
      flood.push(silent);
    }
    // A client from another address completes TLS and the Hello while 127.0.0.2 is at its cap.
    const other = await helloConnection({ localAddress: '127.0.0.3' });
    assert.equal(other.isClosed(), false);
    other.socket.destroy();

    // The eight oldest were closed to make room, before any of the newer ones.
    await until('eight sockets of 127.0.0.2 closed', async () =>
      closeOrder.length >= 8 ? true : undefined,
    );
    assert.deepEqual(
      closeOrder.slice(0, 8).sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    const now = await status();
    assert.ok(
      counter(now, 'connections.preauth.evicted') -
        counter(before, 'connections.preauth.evicted') >=
        8,
      JSON.stringify(now.counters),
    );
    assert.ok(
      counter(now, 'connections.rejected.RDB_PREAUTH_LIMIT') >= 8,
      JSON.stringify(now.counters),
    );
    await assertServing();
    await bounded(
      'the rest time out',
      Promise.all(flood.map((s) => s.closed)),
      HANDSHAKE_TIMEOUT_MS + SLACK_MS,
    );
  });
});

describe('authenticated connections', () => {
  test('half-sent large frames never take the node past its buffered-bytes budget', async () => {
    const peers = await Promise.all(Array.from({ length: 6 }, () => helloConnection()));
    // Each announces a 1 MiB frame and sends 900 KiB of it: 6 MiB wanted, 3 MiB allowed.
    const header = Buffer.alloc(14);
    header.writeUInt32BE(MiB - 4, 0);
    header.writeUInt16BE(REQUEST, 4);
    header.writeUInt32BE(9, 10);
    for (const peer of peers) peer.socket.write(Buffer.concat([header, Buffer.alloc(900 * 1024)]));

    const refused = await until(
      'at least three connections refused with RDB_MEMORY_BUDGET',
      async () => {
        const codes = peers.filter((p) => p.isClosed()).map((p) => p.errorCode());
        const budget = codes.filter((code) => code === 'RDB_MEMORY_BUDGET').length;
        return budget >= 3 ? budget : undefined;
      },
      SLACK_MS,
    );
    assert.ok(refused <= 6);
    const now = await status();
    const peak = counter(now, 'memory.buffered_bytes_peak');
    assert.equal(counter(now, 'memory.buffered_bytes_max'), BUFFERED_BYTES_MAX);
    assert.ok(peak <= BUFFERED_BYTES_MAX, `peak ${peak} over the budget`);
    assert.ok(peak >= MiB, `peak ${peak}: the half-sent frames were not counted`);
    assert.ok(counter(now, 'connections.failed.RDB_MEMORY_BUDGET') >= 3, JSON.stringify(now));
    await assertServing();

    // The survivors are idle (no frame ever completes) and are closed at the idle timeout,
    // which gives their memory back.
    await bounded(
      'survivors closed',
      Promise.all(peers.map((p) => p.closed)),
      IDLE_TIMEOUT_MS + SLACK_MS,
    );
    await until('buffered bytes back to zero', async () =>
      counter(await status(), 'memory.buffered_bytes') === 0 ? true : undefined,
    );
  });

  test('an idle client connection is closed at the idle timeout; a busy one and a cluster member are not', async () => {
    const before = await status();
    const idle = await helloConnection();
    // The idle clock starts at the idle connection's last frame, before the other two open
    // (which takes a while on a loaded machine).
    const openedAtMs = performance.now();
    const busy = await helloConnection();
    const member = await helloConnection({ asNode: true });
    let messageId = 1;
    const ticker = setInterval(() => {
      if (!busy.isClosed()) busy.socket.write(frameOf({ statusRequest: {} }, messageId++));
    }, IDLE_TIMEOUT_MS / 6);
    try {
      await bounded('idle connection closed', idle.closed, IDLE_TIMEOUT_MS + SLACK_MS);
      const idleForMs = performance.now() - openedAtMs;
      assert.ok(idleForMs >= IDLE_TIMEOUT_MS - 100, `closed after ${idleForMs} ms`);
      assert.equal(idle.errorCode(), 'RDB_IDLE_TIMEOUT');
      // Past the idle timeout, the other two are still open.
      const wait = Math.max(0, IDLE_TIMEOUT_MS + 500 - (performance.now() - openedAtMs));
      await new Promise((resolve) => setTimeout(resolve, wait));
      assert.equal(busy.isClosed(), false, `busy closed: ${busy.errorCode()}`);
      assert.equal(member.isClosed(), false, `member closed: ${member.errorCode()}`);
      assert.ok(busy.frames.filter((f) => f.message.kind === 'statusReply').length >= 3);
    } finally {
      clearInterval(ticker);
    }
    const now = await status();
    assert.ok(
      counter(now, 'connections.failed.RDB_IDLE_TIMEOUT') -
        counter(before, 'connections.failed.RDB_IDLE_TIMEOUT') >=
        1,
      JSON.stringify(now.counters),
    );
    busy.socket.destroy();
    member.socket.destroy();
  });
});
