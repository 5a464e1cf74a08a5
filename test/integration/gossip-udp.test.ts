/**
 * Five GossipDrivers in one process on real loopback sockets: UDP for SWIM datagrams, sealed
 * with a shared keyring, and a small TCP request/response transport for push-pull (the node
 * will carry push-pull over its mTLS protocol instead). As in a node, each member's UDP port
 * is the port number of its TCP listener.
 *
 * The script: five join through one seed; a member under another key tries to join; packets
 * over the MTU, malformed ones and ones under a foreign key arrive; one member crashes; one
 * leaves. Timings (lan preset) are printed as diagnostics.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  GossipDriver,
  type GossipDriverOptions,
  type StreamTransport,
  UdpTransport,
} from '../../src/core/membership/gossip/index.ts';
import { encodeMessages, SWIM_LAN } from '../../src/core/membership/swim/index.ts';
import { Keyring } from '../../src/core/security/keyring.ts';
import { parseHostPort } from '../../src/core/transport/address.ts';

const HOST = '127.0.0.1';
const CLUSTER = 'gossip-it';
/** Largest push-pull frame the test transport carries (the machine's streamBytesMax + envelope). */
const FRAME_BYTES_MAX = SWIM_LAN.streamBytesMax + 64;
const STREAM_TIMEOUT_MS = 2000;
/**
 * Safety bounds for waits, well above the expected figures (which are printed): timings are
 * measured by `npm run bench:membership`, and a loaded CI machine must not fail these tests.
 */
const SETTLE_MS_MAX = 5000;
const DEAD_MS_MAX = 10_000;

// --- a minimal stream transport: one TCP connection per exchange, u32 length-prefixed -------

function frame(bytes: Uint8Array | null): Buffer {
  const body = bytes ?? new Uint8Array(0);
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

/** Reads one length-prefixed frame; null for an empty one. */
function readFrame(socket: Socket): Promise<Uint8Array | null> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const length = buffered.readUInt32BE(0);
      if (length > FRAME_BYTES_MAX) {
        socket.destroy();
        reject(new Error(`frame of ${length} bytes`));
        return;
      }
      if (buffered.length < 4 + length) return;
      socket.off('data', onData);
      resolve(length === 0 ? null : buffered.subarray(4, 4 + length));
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before a whole frame')));
  });
}

const tcpStream: StreamTransport = {
  async send(toAddress, bytes) {
    const { host, port } = parseHostPort(toAddress);
    const socket = connect({ host, port });
    socket.setTimeout(STREAM_TIMEOUT_MS, () => socket.destroy(new Error('stream timeout')));
    try {
      const reply = readFrame(socket);
      socket.write(frame(bytes));
      return await reply;
    } finally {
      socket.destroy();
    }
  },
};

interface Member {
  id: string;
  driver: GossipDriver;
  server: Server;
  /** Open connections, destroyed when the member stops. */
  sockets: Set<Socket>;
  events: { type: string; id: string; atMs: number }[];
}

async function listen(server: Server, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: HOST, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/** A TCP listener on a free port, and gossip on UDP with the same port number. */
async function startMember(
  id: string,
  keyring: Keyring,
  overrides: Partial<GossipDriverOptions> = {},
): Promise<Member> {
  for (let attempt = 0; ; attempt++) {
    let driver: GossipDriver | undefined;
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.setTimeout(STREAM_TIMEOUT_MS, () => socket.destroy());
      readFrame(socket).then(
        (request) => {
          const reply =
            request === null || driver === undefined
              ? null
              : driver.onStream(`${socket.remoteAddress}:${socket.remotePort}`, request);
          socket.end(frame(reply));
        },
        () => socket.destroy(),
      );
    });
    const port = await listen(server, 0);
    try {
      driver = await GossipDriver.start({
        id,
        host: HOST,
        port,
        keyring,
        clusterId: CLUSTER,
        stream: tcpStream,
        swim: SWIM_LAN,
        streamTimeoutMs: STREAM_TIMEOUT_MS,
        ...overrides,
      });
    } catch (error) {
      // The UDP port of that number may be taken; take another TCP port and try again.
      server.close();
      if (attempt < 5 && isRdbnetError(error, ErrorCode.ConfigInvalid)) continue;
      throw error;
    }
    const member: Member = { id, driver, server, sockets, events: [] };
    driver.on('event', (e) => member.events.push({ type: e.type, id: e.id, atMs: now() }));
    return member;
  }
}

async function stopMember(member: Member): Promise<void> {
  await member.driver.close();
  for (const socket of member.sockets) socket.destroy();
  if (member.server.listening) {
    await new Promise<void>((resolve) => member.server.close(() => resolve()));
  }
}

const now = (): number => performance.now();

async function waitFor(
  what: string,
  condition: () => boolean,
  timeoutMs: number,
  detail: () => unknown = () => '',
): Promise<number> {
  const start = now();
  while (!condition()) {
    if (now() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms: ${what} ${JSON.stringify(detail())}`);
    }
    await sleep(2);
  }
  return now() - start;
}

function aliveIds(member: Member): string[] {
  return member.driver
    .members()
    .filter((m) => m.state === 'alive')
    .map((m) => m.id)
    .sort();
}

/** Sends raw bytes to a UDP address from a throwaway socket. */
async function sendRaw(to: string, bytes: Uint8Array): Promise<void> {
  const { host, port } = parseHostPort(to);
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) =>
      socket.send(bytes, port, host, (error) => (error ? reject(error) : resolve())),
    );
  } finally {
    socket.close();
  }
}

describe('gossip over UDP on loopback', { timeout: 30_000 }, () => {
  const keyring = Keyring.generate();
  const members: Member[] = [];
  const extra: Member[] = [];
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];

  before(async () => {
    for (const id of ids) members.push(await startMember(id, Keyring.fromFile(keyring.toFile())));
  });

  after(async () => {
    await Promise.allSettled([...members, ...extra].map((m) => stopMember(m)));
  });

  test('five members join through one seed and all see five alive', async (t) => {
    const [seed, ...rest] = members;
    assert.equal(await seed!.driver.join([]), 1, 'the first member has no one to join');
    const start = now();
    const counts = await Promise.all(rest.map((m) => m.driver.join([seed!.driver.address])));
    const answeredMs = now() - start;
    for (const count of counts) assert.ok(count >= 2);
    await waitFor(
      'every member sees 5 alive',
      () => members.every((m) => aliveIds(m).length === 5),
      SETTLE_MS_MAX,
    );
    const convergedMs = now() - start;
    t.diagnostic(
      `join: seed answered all in ${answeredMs.toFixed(1)} ms; all 5 see 5 alive after ${convergedMs.toFixed(1)} ms`,
    );
    for (const m of members) {
      assert.deepEqual(aliveIds(m), ids, `${m.id}'s view`);
      assert.equal(m.driver.liveCount, 5);
      assert.equal(m.driver.localHealth().awarenessScore, 0);
    }
    // Every join was reported to every other member exactly once.
    for (const m of members) {
      const joined = m.events.filter((e) => e.type === 'join').map((e) => e.id);
      assert.deepEqual(
        [...joined].sort(),
        ids.filter((id) => id !== m.id),
      );
    }
    // The members' addresses are the UDP ports, which equal their TCP listeners' ports.
    for (const m of members) {
      const address = m.server.address();
      assert.ok(address !== null && typeof address === 'object');
      assert.equal(m.driver.address, `${HOST}:${address.port}`);
    }
  });

  test('a member under another key never joins; its packets are dropped and counted', async (t) => {
    const seed = members[0]!;
    const before = members.map((m) => m.driver.stats());
    const foreignKeyring = Keyring.generate();
    const stranger = await startMember('stranger', foreignKeyring, {
      joinAttemptsMax: 3,
      joinRetryBaseMs: 50,
    });
    extra.push(stranger);
    await assert.rejects(stranger.driver.join([seed.driver.address]), (error) =>
      isRdbnetError(error, ErrorCode.NodeUnreachable),
    );
    assert.deepEqual(aliveIds(stranger), ['stranger']);
    assert.equal(stranger.driver.stats().joinAttempts, 3);
    const seedStream = seed.driver.stats().stream;
    assert.equal(seedStream.dropped.unknownKey - before[0]!.stream.dropped.unknownKey, 3);

    // Its datagrams too: a well-formed ping, sealed under the foreign key, to everyone.
    const foreignUdp = await UdpTransport.bind({
      host: HOST,
      port: 0,
      keyring: foreignKeyring,
      aad: `${CLUSTER}/gossip-udp`,
      onPacket: () => assert.fail('nobody should answer a stranger'),
    });
    try {
      for (const [i, m] of members.entries()) {
        const ping = encodeMessages([
          { type: 'ping', seq: i + 1, targetId: m.id, sourceId: 'stranger' },
        ]);
        for (let k = 0; k < 3; k++) foreignUdp.send(m.driver.address, ping);
      }
      await waitFor(
        'every member counted 3 unknown-key datagrams',
        () =>
          members.every(
            (m, i) =>
              m.driver.stats().udp.dropped.unknownKey - before[i]!.udp.dropped.unknownKey === 3,
          ),
        SETTLE_MS_MAX,
      );
    } finally {
      await foreignUdp.close();
    }
    await sleep(100);
    for (const m of members) {
      assert.equal(
        m.driver.members().some((v) => v.id === 'stranger'),
        false,
        `${m.id} knows the stranger`,
      );
      assert.equal(aliveIds(m).length, 5);
    }
    t.diagnostic(
      `stranger: join refused after 3 attempts; seed dropped ${seedStream.dropped.unknownKey} stream and ${seed.driver.stats().udp.dropped.unknownKey} UDP packets under an unknown key`,
    );
  });

  test('datagrams over the MTU, and malformed ones, are dropped and counted', async () => {
    const target = members[1]!;
    const before = target.driver.stats().udp;
    // Sealed under the right key, so only its size (1500 > 1400) gets it dropped.
    const bigSender = await UdpTransport.bind({
      host: HOST,
      port: 0,
      keyring,
      aad: `${CLUSTER}/gossip-udp`,
      datagramBytesMax: 9000,
      onPacket: () => {},
    });
    try {
      const plaintext = encodeMessages([
        { type: 'ping', seq: 7, targetId: target.id, sourceId: 'n1' },
      ]);
      const padded = new Uint8Array(1500 - 29);
      padded.set(plaintext);
      assert.equal(bigSender.send(target.driver.address, padded), true);
      // A sealed packet at exactly the MTU is accepted (the SWIM decoder then rejects the
      // padding, which is not our concern here).
      assert.equal(bigSender.send(target.driver.address, new Uint8Array(1400 - 29)), true);
    } finally {
      await bigSender.close();
    }
    await sendRaw(target.driver.address, new Uint8Array(2000));
    await sendRaw(target.driver.address, new Uint8Array(10).fill(1));
    await sendRaw(target.driver.address, new Uint8Array(100).fill(9));
    await waitFor(
      'oversize, malformed and version drops counted',
      () => {
        const udp = target.driver.stats().udp;
        return (
          udp.dropped.oversize - before.dropped.oversize === 2 &&
          udp.dropped.malformed - before.dropped.malformed === 1 &&
          udp.dropped.version - before.dropped.version === 1
        );
      },
      SETTLE_MS_MAX,
      () => ({ before: before.dropped, now: target.driver.stats().udp.dropped }),
    );
    // The packet at exactly the MTU opened and reached the machine, which rejected it.
    const after = target.driver.stats();
    assert.equal(after.udp.packetsReceived > before.packetsReceived, true);
    assert.ok(after.swim.packetsRejected >= 1);
    // Our own sends never exceeded the budget.
    for (const m of members) {
      const udp = m.driver.stats().udp;
      assert.equal(udp.dropped.sendOversize, 0);
      assert.equal(udp.dropped.sendQueueFull, 0);
      assert.equal(udp.dropped.sendAddressInvalid, 0);
    }
  });

  test('a crashed member is marked dead by every survivor', async (t) => {
    const victim = members[4]!;
    const survivors = members.slice(0, 4);
    const crashedAt = now();
    // Abrupt: the socket and timers stop, no leave is sent.
    await stopMember(victim);
    const deadAfterMs = survivors.map(() => Number.NaN);
    await waitFor(
      'every survivor marks n5 dead',
      () =>
        survivors.every((m, i) => {
          if (Number.isNaN(deadAfterMs[i]!)) {
            const dead = m.events.find((e) => e.type === 'dead' && e.id === victim.id);
            if (dead !== undefined) deadAfterMs[i] = dead.atMs - crashedAt;
          }
          return !Number.isNaN(deadAfterMs[i]!);
        }),
      DEAD_MS_MAX,
    );
    const suspectedAfterMs = survivors.map((m) => {
      const e = m.events.find((x) => x.type === 'suspect' && x.id === victim.id);
      return e === undefined ? Number.NaN : e.atMs - crashedAt;
    });
    t.diagnostic(
      `crash of n5: suspected after ${suspectedAfterMs.map((x) => x.toFixed(0)).join('/')} ms, dead after ${deadAfterMs.map((x) => x.toFixed(0)).join('/')} ms (max ${Math.max(...deadAfterMs).toFixed(0)} ms)`,
    );
    for (const m of survivors) {
      assert.equal(m.driver.members().find((v) => v.id === victim.id)?.state, 'dead');
      assert.deepEqual(aliveIds(m), ['n1', 'n2', 'n3', 'n4']);
    }
    members.pop();
    extra.push(victim); // stopping again in teardown is a no-op
  });

  test('a member that leaves is seen as left by every other', async (t) => {
    const leaver = members[3]!;
    const others = members.slice(0, 3);
    const start = now();
    const complete = await leaver.driver.leave();
    const leaveResolvedMs = now() - start;
    assert.equal(complete, true, 'the leave broadcast was fully sent');
    await waitFor(
      'every other member sees n4 left',
      () => others.every((m) => m.events.some((e) => e.type === 'left' && e.id === leaver.id)),
      SETTLE_MS_MAX,
    );
    const leftAfterMs = others.map(
      (m) => m.events.find((e) => e.type === 'left' && e.id === leaver.id)!.atMs - start,
    );
    t.diagnostic(
      `leave of n4: leave() resolved after ${leaveResolvedMs.toFixed(1)} ms; seen left after ${leftAfterMs.map((x) => x.toFixed(1)).join('/')} ms`,
    );
    await stopMember(leaver);
    members.pop();
    extra.push(leaver);
    for (const m of others) {
      assert.equal(m.driver.members().find((v) => v.id === leaver.id)?.state, 'left');
      assert.equal(
        m.events.some((e) => e.type === 'dead' && e.id === leaver.id),
        false,
      );
      assert.deepEqual(aliveIds(m), ['n1', 'n2', 'n3']);
    }
    // A closed driver refuses further use.
    assert.throws(
      () => leaver.driver.setMeta(new Uint8Array(0)),
      (error) => isRdbnetError(error, ErrorCode.ConnectionClosed),
    );
  });
});
