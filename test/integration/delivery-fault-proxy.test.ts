/**
 * Delivery guarantees between real processes through a real fault-injecting TCP proxy
 * (test/helpers/fault-proxy.ts): a receiver node (test/helpers/delivery-peer.ts) advertises
 * the proxy's address, so the sender node's data traffic crosses it; the proxy resets every
 * connection, stalls all traffic and cuts the link (refusing reconnects for a while), and the
 * receiver is killed with SIGKILL once and restarted on the same data dir while messages flow.
 * The receiver's handler logs each run with one write(2), so runs are counted over both of
 * its processes.
 *
 * Counted: exactly-once — every message acknowledged, none lost, none run twice (the dedup
 * log in the data dir carries the window across the kill); at-least-once — none lost.
 * DELIVERY_PROXY_MESSAGES messages per guarantee (default 5,000 to keep the test short on a
 * loaded machine; 100,000 was run by hand with DELIVERY_PROXY_MESSAGES=100000, see README).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { freePort } from '../helpers/etcd-server.ts';
import { FaultProxy } from '../helpers/fault-proxy.ts';
import { REPO_ROOT, tempHome } from '../helpers/processes.ts';

const PEER = join(REPO_ROOT, 'test', 'helpers', 'delivery-peer.ts');
const MESSAGES = Number(process.env['DELIVERY_PROXY_MESSAGES'] ?? 5_000);
const CONCURRENCY = 200;
/** A fault every this many acknowledged messages, in turn: reset, stall, cut. */
const FAULT_EVERY = Math.max(1000, Math.floor(MESSAGES / 12));
const STALL_MS = 500;
const CUT_MS = 400;
const START_TIMEOUT_MS = 90_000;
/** Generous: a safety bound on a loaded machine, not a performance assertion. */
const RUN_TIMEOUT_MS = 600_000;

const home = await tempHome('rdbnet-delivery-proxy-');
const env = { ...process.env, RDBNET_HOME: home.dir, RDBNET_LOG_LEVEL: 'error' };
const children = new Set<ChildProcess>();
let proxy: FaultProxy | undefined;

after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  await proxy?.close();
  await home.cleanup();
});

interface Peer {
  child: ChildProcess;
  /** Resolves with each JSON line the peer prints after its first. */
  lines: AsyncIterator<Record<string, number>>;
  exited: Promise<number | null>;
}

/** Starts delivery-peer.ts `role` and waits for its first line (its node runs). */
async function startPeer(role: string, args: string[]): Promise<Peer> {
  const child = spawn(process.execPath, [PEER, role, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const queue: Record<string, number>[] = [];
  let wake: (() => void) | null = null;
  let buffered = '';
  child.stdout!.on('data', (chunk) => {
    buffered += chunk;
    for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
      queue.push(JSON.parse(buffered.slice(0, end)) as Record<string, number>);
      buffered = buffered.slice(end + 1);
      wake?.();
    }
  });
  const lines: AsyncIterator<Record<string, number>> = {
    async next() {
      while (queue.length === 0) {
        const ended = await Promise.race([
          new Promise<false>((resolve) => {
            wake = () => resolve(false);
          }),
          exited.then(() => true),
        ]);
        wake = null;
        if (ended && queue.length === 0) {
          throw new Error(`${role} exited (${child.exitCode ?? child.signalCode}):\n${stderr}`);
        }
      }
      return { value: queue.shift()!, done: false };
    },
  };
  const first = await Promise.race([
    lines.next(),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${role} did not start\n${stderr}`)), START_TIMEOUT_MS),
    ),
  ]);
  assert.equal(typeof first.value['address'], 'string', `${role} printed its address first`);
  return { child, lines, exited };
}

test(`${MESSAGES} exactly-once and ${MESSAGES} at-least-once messages through resets, stalls, cuts and a kill -9 of the receiver`, {
  timeout: RUN_TIMEOUT_MS * 2 + START_TIMEOUT_MS * 4,
}, async () => {
  const receiverPort = await freePort();
  proxy = await FaultProxy.start({ host: '127.0.0.1', port: receiverPort });
  const runsFile = join(home.dir, 'runs.log');
  const receiverArgs = [
    '--id',
    'rx',
    '--listen',
    `127.0.0.1:${receiverPort}`,
    '--advertise',
    proxy.address,
    '--data-dir',
    join(home.dir, 'rx'),
    '--runs',
    runsFile,
  ];
  let receiver = await startPeer('receiver', receiverArgs);
  let kills = 0;

  const run = async (delivery: string, prefix: string, killAt: number | null) => {
    const sender = await startPeer('sender', [
      '--id',
      `tx${prefix}`,
      '--join',
      `127.0.0.1:${receiverPort}`,
      '--data-dir',
      join(home.dir, `tx${prefix}`),
      '--to',
      'rx',
      '--delivery',
      delivery,
      '--count',
      String(MESSAGES),
      '--concurrency',
      String(CONCURRENCY),
      '--prefix',
      prefix,
    ]);
    let faults = 0;
    let nextFaultAt = FAULT_EVERY;
    const deadline = setTimeout(() => sender.child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    try {
      for (;;) {
        const { value } = await sender.lines.next();
        if (value['progress'] === undefined) return value;
        const progress = value['progress'];
        if (killAt !== null && kills === 0 && progress >= killAt) {
          kills++;
          receiver.child.kill('SIGKILL');
          await receiver.exited;
          receiver = await startPeer('receiver', receiverArgs);
          continue;
        }
        if (progress < nextFaultAt) continue;
        nextFaultAt += FAULT_EVERY;
        const fault = faults++ % 3;
        if (fault === 0) proxy!.reset();
        else if (fault === 1) proxy!.stall(STALL_MS);
        else {
          proxy!.cut();
          setTimeout(() => proxy!.heal(), CUT_MS);
        }
      }
    } finally {
      clearTimeout(deadline);
      await sender.exited;
    }
  };

  const exactly = await run('exactly-once', 'e', Math.floor(MESSAGES / 2));
  const atLeast = await run('at-least-once', 'a', null);

  const runs = new Map<string, number>();
  for (const line of readFileSync(runsFile, 'utf8').split('\n')) {
    if (line !== '') runs.set(line, (runs.get(line) ?? 0) + 1);
  }
  const count = (prefix: string, test: (n: number) => boolean) => {
    let matching = 0;
    for (let i = 0; i < MESSAGES; i++) if (test(runs.get(`${prefix}${i}`) ?? 0)) matching++;
    return matching;
  };
  const summary = {
    exactlyOnce: { ...exactly, lost: count('e', (n) => n === 0), twice: count('e', (n) => n > 1) },
    atLeastOnce: { ...atLeast, lost: count('a', (n) => n === 0), twice: count('a', (n) => n > 1) },
    kills,
    proxy: proxy.stats,
  };
  console.log(`delivery through the fault proxy: ${JSON.stringify(summary)}`);
  assert.equal(kills, 1, 'the receiver was killed once while exactly-once messages flowed');
  assert.ok(proxy.stats.resets > 0 && proxy.stats.stalls > 0, JSON.stringify(proxy.stats));
  assert.deepEqual(
    { acked: exactly['acked'], failed: exactly['failed'] },
    { acked: MESSAGES, failed: 0 },
  );
  assert.equal(summary.exactlyOnce.lost, 0, 'exactly-once messages lost');
  assert.equal(summary.exactlyOnce.twice, 0, 'exactly-once messages run twice');
  assert.deepEqual(
    { acked: atLeast['acked'], failed: atLeast['failed'] },
    { acked: MESSAGES, failed: 0 },
  );
  assert.equal(summary.atLeastOnce.lost, 0, 'at-least-once messages lost');
});
