/**
 * The connection pool's policy (src/core/transport/pool.ts) in virtual time: warm-up to
 * connectionsMin, least-loaded picking and growth up to connectionsMax, the bounded wait
 * queue, idle / lifetime / LRU eviction, health-check replacement, bounded redials of a dead
 * peer, and (property) every pool within [0, connectionsMax] and the node within its cap
 * whatever happens. Connections come from a scripted connector on the simulator's clock.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  checkConfigFileFields,
  resolveNodeConfig,
  resolveNodeConfigWithSources,
} from '../../src/core/config/node-config.ts';
import { ErrorCode, isRdbnetError, RdbnetError } from '../../src/core/errors.ts';
import type { DecodedEnvelope, Envelope } from '../../src/core/protocol/messages.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { EventQueue } from '../../src/core/sim/index.ts';
import {
  ConnectionPools,
  type PoolConnector,
  type PooledLink,
  type PoolOptions,
  poolOptions,
} from '../../src/core/transport/pool.ts';

/** A scripted peer: dials succeed or fail, requests are answered, held, or never answered. */
class FakePeer {
  up = true;
  /** Requests wait for release() instead of being answered after ANSWER_MS. */
  hold = false;
  /** Nothing is answered at all (a hung peer): requests time out. */
  silent = false;
  readonly links: FakeLink[] = [];
  dials = 0;
}

const DIAL_MS = 5;
const ANSWER_MS = 1;

class FakeLink implements PooledLink {
  open = true;
  readonly held: { resolve(reply: DecodedEnvelope): void; reject(error: RdbnetError): void }[] = [];
  private readonly queue: EventQueue;
  private readonly peer: FakePeer;
  private readonly onClosed: (error: RdbnetError | undefined) => void;

  constructor(
    queue: EventQueue,
    peer: FakePeer,
    onClosed: (error: RdbnetError | undefined) => void,
  ) {
    this.queue = queue;
    this.peer = peer;
    this.onClosed = onClosed;
  }

  request(envelope: Envelope, timeoutMs: number): Promise<DecodedEnvelope> {
    if (!this.open) {
      return Promise.reject(new RdbnetError(ErrorCode.ConnectionClosed, 'closed'));
    }
    return new Promise((resolve, reject) => {
      const kind = Object.keys(envelope)[0] === 'echoRequest' ? 'echoReply' : 'topicReply';
      const reply = { kind, body: {} } as unknown as DecodedEnvelope;
      const timer = this.queue.setTimer(timeoutMs, () =>
        reject(new RdbnetError(ErrorCode.RequestTimeout, 'timed out')),
      );
      const settle = {
        resolve: (value: DecodedEnvelope) => {
          this.queue.clearTimer(timer);
          resolve(value);
        },
        reject: (error: RdbnetError) => {
          this.queue.clearTimer(timer);
          reject(error);
        },
      };
      if (this.peer.silent) return;
      if (this.peer.hold) {
        this.held.push({ ...settle, resolve: () => settle.resolve(reply) });
        return;
      }
      this.queue.setTimer(ANSWER_MS, () => settle.resolve(reply));
    });
  }

  release(): void {
    for (const request of this.held.splice(0)) request.resolve({} as DecodedEnvelope);
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    for (const request of this.held.splice(0)) {
      request.reject(new RdbnetError(ErrorCode.ConnectionClosed, 'closed'));
    }
  }

  /** The peer's process died: the connection fails under the pool. */
  kill(): void {
    if (!this.open) return;
    this.close();
    this.onClosed(new RdbnetError(ErrorCode.ConnectionClosed, 'reset by peer'));
  }

  isOpen(): boolean {
    return this.open;
  }
}

class Harness {
  readonly queue = new EventQueue();
  readonly peers = new Map<string, FakePeer>();
  readonly pools: ConnectionPools;

  constructor(options: Partial<PoolOptions>) {
    const connector: PoolConnector = {
      open: (address, onClosed) => {
        const peer = this.peer(address);
        peer.dials++;
        return new Promise<PooledLink>((resolve, reject) => {
          this.queue.setTimer(DIAL_MS, () => {
            if (!peer.up) {
              reject(new RdbnetError(ErrorCode.NodeUnreachable, `cannot reach ${address}`));
              return;
            }
            const link = new FakeLink(this.queue, peer, onClosed);
            peer.links.push(link);
            resolve(link);
          });
        });
      },
    };
    this.pools = new ConnectionPools({
      connector,
      options,
      clock: this.queue,
      random: seededRandom(7),
    });
  }

  peer(address: string): FakePeer {
    let peer = this.peers.get(address);
    if (peer === undefined) {
      peer = new FakePeer();
      this.peers.set(address, peer);
    }
    return peer;
  }

  stats(address: string) {
    const row = this.pools.stats().find((stats) => stats.address === address);
    assert.ok(row !== undefined, `a pool for ${address}`);
    return row;
  }

  send(address: string, timeoutMs = 5000): Promise<DecodedEnvelope> {
    return this.pools.request(address, { topicRequest: {} } as unknown as Envelope, timeoutMs);
  }

  run(ms: number): Promise<boolean> {
    return this.queue.runForAsync(ms);
  }

  releaseAll(address: string): void {
    for (const link of this.peer(address).links) link.release();
  }
}

/** Settles into 'ok' or the error code, so a test can look without awaiting in order. */
function outcome(promise: Promise<unknown>): { value: string } {
  const seen = { value: 'pending' };
  promise.then(
    () => {
      seen.value = 'ok';
    },
    (error: unknown) => {
      seen.value = isRdbnetError(error) ? error.code : String(error);
    },
  );
  return seen;
}

const A = '127.0.0.1:7101';
const B = '127.0.0.1:7102';
const C = '127.0.0.1:7103';

describe('connection pool', () => {
  test('options: defaults are documented values; bad ones name their field', () => {
    const defaults = poolOptions();
    assert.equal(defaults.connectionsMin, 1);
    assert.equal(defaults.connectionsMax, 4);
    assert.throws(() => poolOptions({ connectionsMax: 0 }), /connectionsMax/);
    assert.throws(() => poolOptions({ connectionsMin: 5, connectionsMax: 4 }), /connectionsMin/);
    assert.throws(() => poolOptions({ waitTimeoutMs: 1.5 }), /waitTimeoutMs/);
    assert.throws(
      () => poolOptions({ connectionsMax: 8, nodeConnectionsMax: 4 }),
      (error: unknown) => isRdbnetError(error, ErrorCode.ConfigInvalid),
    );
  });

  test('node config: pool.* from a file or RDBNET_POOL_*, checked together, naming the field', () => {
    const fromFile = resolveNodeConfigWithSources({
      file: { pool: { connectionsMax: 8 } },
      env: {},
    });
    assert.equal(fromFile.config.pool.connectionsMax, 8);
    assert.equal(fromFile.sources['pool.connectionsMax'], 'file');
    assert.equal(fromFile.config.pool.connectionsMin, 1);
    const fromEnv = resolveNodeConfig({}, {}, { RDBNET_POOL_IDLE_TIMEOUT_MS: '1500' });
    assert.equal(fromEnv.pool.idleTimeoutMs, 1500);
    assert.throws(
      () => resolveNodeConfig({}, {}, { RDBNET_POOL_CONNECTIONS_MIN: '9' }),
      (error: unknown) =>
        isRdbnetError(error, ErrorCode.ConfigInvalid) &&
        (error as unknown as { field: string }).field === 'pool.connectionsMin',
    );
    assert.throws(
      () => checkConfigFileFields({ pool: { connectionsMaximum: 3 } }),
      /pool\.connectionsMaximum/,
    );
  });

  test('warm-up: a member that joins gets connectionsMin connections at once', async () => {
    const h = new Harness({ connectionsMin: 2, connectionsMax: 4 });
    h.pools.warm(A, 'n1');
    assert.equal(h.stats(A).opening, 2);
    await h.run(DIAL_MS);
    const stats = h.stats(A);
    assert.equal(stats.peer, 'n1');
    assert.equal(stats.open, 2);
    assert.equal(stats.idle, 2);
    assert.equal(stats.created, 2);
    assert.equal(h.pools.isOpen(A), true);
    h.pools.close();
  });

  test('requests take the least-loaded connection; a new one opens only when all are busy, up to max', async () => {
    const h = new Harness({ connectionsMin: 1, connectionsMax: 3, connectionInflightMax: 2 });
    h.pools.warm(A);
    await h.run(DIAL_MS);
    h.peer(A).hold = true;
    const first = [outcome(h.send(A)), outcome(h.send(A))];
    // Two in flight fit on the one connection: no dial yet.
    assert.equal(h.stats(A).opening, 0);
    assert.equal(h.stats(A).inUse, 1);
    // A third finds it busy: one more connection, and it waits for it.
    const more = [outcome(h.send(A))];
    assert.equal(h.stats(A).opening, 1);
    assert.equal(h.stats(A).waiting, 1);
    await h.run(DIAL_MS);
    assert.equal(h.stats(A).open, 2);
    assert.equal(h.stats(A).waiting, 0);
    // The next goes to the least loaded (the new one, with 1 in flight), no dial.
    more.push(outcome(h.send(A)));
    assert.equal(h.stats(A).opening, 0);
    assert.deepEqual(
      h.peer(A).links.map((link) => link.held.length),
      [2, 2],
    );
    // A burst beyond: up to connectionsMax and no further.
    for (let i = 0; i < 6; i++) more.push(outcome(h.send(A)));
    await h.run(DIAL_MS);
    assert.equal(h.stats(A).open, 3);
    assert.equal(h.stats(A).waiting, 4);
    assert.equal(h.peer(A).dials, 3);
    h.releaseAll(A);
    await h.run(1);
    h.releaseAll(A);
    await h.run(1);
    h.releaseAll(A);
    await h.run(1);
    for (const seen of [...first, ...more]) assert.equal(seen.value, 'ok');
    assert.equal(h.stats(A).waiting, 0);
    assert.equal(h.stats(A).created, 3);
    h.pools.close();
  });

  test('at max, the wait queue is bounded and its wait timed: RDB_POOL_EXHAUSTED', async () => {
    const h = new Harness({
      connectionsMin: 1,
      connectionsMax: 1,
      connectionInflightMax: 1,
      waitersMax: 2,
      waitTimeoutMs: 300,
    });
    h.pools.warm(A);
    await h.run(DIAL_MS);
    h.peer(A).hold = true;
    const busy = outcome(h.send(A));
    const waiting = [outcome(h.send(A)), outcome(h.send(A))];
    const refused = outcome(h.send(A));
    await h.run(0);
    assert.equal(refused.value, ErrorCode.PoolExhausted);
    assert.equal(h.stats(A).waiting, 2);
    await h.run(299);
    assert.deepEqual(
      waiting.map((seen) => seen.value),
      ['pending', 'pending'],
    );
    await h.run(2);
    assert.deepEqual(
      waiting.map((seen) => seen.value),
      [ErrorCode.PoolExhausted, ErrorCode.PoolExhausted],
    );
    assert.equal(h.stats(A).exhausted, 3);
    assert.equal(h.stats(A).waiting, 0);
    h.releaseAll(A);
    await h.run(1);
    assert.equal(busy.value, 'ok');
    h.pools.close();
  });

  test('a wait never outlasts the request deadline; the first free connection serves the oldest waiter', async () => {
    const h = new Harness({ connectionsMax: 1, connectionInflightMax: 1, waitTimeoutMs: 5000 });
    h.pools.warm(A);
    await h.run(DIAL_MS);
    h.peer(A).hold = true;
    outcome(h.send(A));
    const short = outcome(h.send(A, 50));
    const long = outcome(h.send(A, 4000));
    await h.run(51);
    assert.equal(short.value, ErrorCode.PoolExhausted);
    assert.equal(long.value, 'pending');
    h.peer(A).hold = false;
    h.releaseAll(A);
    await h.run(ANSWER_MS + 1);
    assert.equal(long.value, 'ok');
    h.pools.close();
  });

  test('idle eviction closes connections above connectionsMin, never below', async () => {
    const h = new Harness({
      connectionsMin: 1,
      connectionsMax: 3,
      connectionInflightMax: 1,
      idleTimeoutMs: 10_000,
      healthCheckIntervalMs: 1_000_000,
    });
    h.pools.warm(A);
    await h.run(DIAL_MS);
    h.peer(A).hold = true;
    for (let i = 0; i < 3; i++) outcome(h.send(A));
    await h.run(DIAL_MS);
    assert.equal(h.stats(A).open, 3);
    h.releaseAll(A);
    await h.run(9000);
    assert.equal(h.stats(A).open, 3, 'not idle long enough yet');
    await h.run(2000);
    assert.equal(h.stats(A).open, 1);
    assert.equal(h.stats(A).evicted.idle, 2);
    await h.run(60_000);
    assert.equal(h.stats(A).open, 1, 'the last one stays: connectionsMin');
    h.pools.close();
  });

  test('a connection past lifetimeMaxMs is retired once idle and replaced', async () => {
    const h = new Harness({
      connectionsMin: 1,
      lifetimeMaxMs: 10_000,
      healthCheckIntervalMs: 1_000_000,
    });
    h.pools.warm(A);
    await h.run(DIAL_MS);
    h.peer(A).hold = true;
    const inFlight = outcome(h.send(A, 60_000));
    await h.run(11_500);
    // Retiring, not cut: its request is still answered.
    assert.equal(h.stats(A).evicted.lifetime, 0);
    assert.equal(h.stats(A).open, 2, 'retiring one plus its replacement');
    h.releaseAll(A);
    await h.run(1);
    assert.equal(inFlight.value, 'ok');
    const stats = h.stats(A);
    assert.equal(stats.evicted.lifetime, 1);
    assert.equal(stats.open, 1);
    assert.equal(stats.created, 2);
    assert.equal(h.peer(A).links[0]!.open, false);
    h.pools.close();
  });

  test('at the node-wide cap, a new connection closes the least recently used idle one', async () => {
    const h = new Harness({
      connectionsMin: 1,
      connectionsMax: 2,
      nodeConnectionsMax: 2,
      healthCheckIntervalMs: 1_000_000,
    });
    h.pools.warm(A);
    await h.run(DIAL_MS);
    h.pools.warm(B);
    await h.run(DIAL_MS);
    const used = outcome(h.send(B));
    await h.run(100);
    assert.equal(used.value, 'ok');
    // C needs a connection: A's was used longest ago.
    const reply = outcome(h.send(C));
    await h.run(DIAL_MS + ANSWER_MS + 1);
    assert.equal(reply.value, 'ok');
    assert.equal(h.stats(A).evicted.lru, 1);
    assert.equal(h.stats(A).open, 0);
    assert.equal(h.stats(B).open, 1);
    assert.equal(h.stats(C).open, 1);
    assert.equal(h.pools.counters()['pool.connections'], 2);
    // Every connection busy at the cap: a request to a new peer is refused at once.
    h.peer(B).hold = true;
    h.peer(C).hold = true;
    outcome(h.send(B));
    outcome(h.send(C));
    const refused = outcome(h.send(A));
    await h.run(0);
    assert.equal(refused.value, ErrorCode.PoolExhausted);
    h.pools.close();
  });

  test('at the cap, warm-up takes no connection of another peer (no churn between warm pools)', async () => {
    const h = new Harness({
      connectionsMin: 1,
      connectionsMax: 1,
      nodeConnectionsMax: 2,
      healthCheckIntervalMs: 1_000_000,
    });
    h.pools.warm(A);
    h.pools.warm(B);
    await h.run(DIAL_MS);
    h.pools.warm(C);
    await h.run(30_000);
    assert.equal(h.stats(A).open, 1);
    assert.equal(h.stats(B).open, 1);
    assert.equal(h.stats(C).open, 0);
    assert.equal(h.stats(A).evicted.lru + h.stats(B).evicted.lru, 0);
    assert.ok(h.pools.counters()['pool.cap_refused']! > 0);
    // A request to C does take the least recently used one.
    const reply = outcome(h.send(C));
    await h.run(DIAL_MS + ANSWER_MS + 1);
    assert.equal(reply.value, 'ok');
    assert.equal(h.stats(A).evicted.lru + h.stats(B).evicted.lru, 1);
    h.pools.close();
  });

  test('a connection that fails its health check is removed and replaced', async () => {
    const h = new Harness({
      connectionsMin: 1,
      healthCheckIntervalMs: 2000,
      healthCheckTimeoutMs: 500,
    });
    h.pools.warm(A);
    await h.run(DIAL_MS);
    await h.run(3000);
    assert.equal(h.stats(A).evicted.unhealthy, 0, 'a peer that answers passes');
    h.peer(A).silent = true;
    // Checked at most healthCheckIntervalMs plus a maintenance pass later, then its timeout.
    await h.run(2000 + 1000 + 500 + DIAL_MS + 1);
    const stats = h.stats(A);
    assert.equal(stats.evicted.unhealthy, 1);
    assert.equal(stats.lastError, ErrorCode.RequestTimeout);
    assert.equal(stats.created, 2);
    assert.equal(stats.open + stats.opening, 1);
    h.pools.close();
  });

  test('a lost connection is replaced; a dead peer is redialed a bounded number of times', async () => {
    const h = new Harness({ connectionsMin: 2, replaceAttemptsMax: 4 });
    h.pools.warm(A);
    await h.run(DIAL_MS);
    h.peer(A).links[0]!.kill();
    await h.run(DIAL_MS);
    assert.equal(h.stats(A).evicted.unhealthy, 1);
    assert.equal(h.stats(A).open, 2);
    // kill -9: every connection resets and no dial gets through any more.
    h.peer(A).up = false;
    for (const link of h.peer(A).links) link.kill();
    await h.run(120_000);
    const stats = h.stats(A);
    assert.equal(stats.open, 0);
    assert.equal(stats.failed, 4, 'replaceAttemptsMax dials, then it stops');
    assert.equal(stats.lastError, ErrorCode.NodeUnreachable);
    // A request to it fails at once with the dial's error, not after a long wait.
    const seen = outcome(h.send(A));
    await h.run(DIAL_MS);
    assert.equal(seen.value, ErrorCode.NodeUnreachable);
    // Gossip: it is dead. Nothing is dialed any more; its counters stay.
    h.pools.cool(A);
    const dials = h.peer(A).dials;
    await h.run(60_000);
    assert.equal(h.peer(A).dials, dials);
    // It came back (alive again): warmed anew.
    h.peer(A).up = true;
    h.pools.warm(A);
    await h.run(DIAL_MS);
    assert.equal(h.stats(A).open, 2);
    h.pools.close();
  });

  test('close fails waiting requests and refuses new ones', async () => {
    const h = new Harness({ connectionsMax: 1, connectionInflightMax: 1 });
    h.pools.warm(A);
    await h.run(DIAL_MS);
    h.peer(A).hold = true;
    const inFlight = outcome(h.send(A));
    const waiting = outcome(h.send(A));
    h.pools.close();
    await h.run(0);
    assert.equal(inFlight.value, ErrorCode.ConnectionClosed);
    assert.equal(waiting.value, ErrorCode.ConnectionClosed);
    await assert.rejects(h.send(A), (error: unknown) =>
      isRdbnetError(error, ErrorCode.ConnectionClosed),
    );
  });

  test('property: every pool stays within [0, connectionsMax], the node within its cap', async () => {
    const action = fc.oneof(
      fc.record({ kind: fc.constant('send' as const), peer: fc.nat(3), timeoutMs: fc.nat(3000) }),
      fc.record({ kind: fc.constant('warm' as const), peer: fc.nat(3) }),
      fc.record({ kind: fc.constant('cool' as const), peer: fc.nat(3) }),
      fc.record({ kind: fc.constant('kill' as const), peer: fc.nat(3) }),
      fc.record({ kind: fc.constant('down' as const), peer: fc.nat(3), up: fc.boolean() }),
      fc.record({ kind: fc.constant('hold' as const), peer: fc.nat(3), hold: fc.boolean() }),
      fc.record({ kind: fc.constant('silent' as const), peer: fc.nat(3), silent: fc.boolean() }),
      fc.record({ kind: fc.constant('release' as const), peer: fc.nat(3) }),
      fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 20_000 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          connectionsMin: fc.integer({ min: 0, max: 3 }),
          extra: fc.integer({ min: 0, max: 3 }),
          connectionInflightMax: fc.integer({ min: 1, max: 3 }),
          nodeConnectionsMax: fc.integer({ min: 6, max: 10 }),
        }),
        fc.array(action, { maxLength: 40 }),
        async (shape, actions) => {
          const connectionsMax = Math.max(1, shape.connectionsMin + shape.extra);
          const h = new Harness({
            connectionsMin: shape.connectionsMin,
            connectionsMax,
            connectionInflightMax: shape.connectionInflightMax,
            nodeConnectionsMax: shape.nodeConnectionsMax,
            waitersMax: 4,
            idleTimeoutMs: 5000,
            lifetimeMaxMs: 15_000,
            healthCheckIntervalMs: 3000,
            healthCheckTimeoutMs: 500,
          });
          const address = (peer: number) => `127.0.0.1:${7100 + peer}`;
          const check = () => {
            let total = 0;
            for (const row of h.pools.stats()) {
              const size = row.open + row.opening;
              assert.ok(size >= 0 && size <= connectionsMax, `pool size ${size}`);
              assert.ok(row.idle + row.inUse === row.open);
              assert.ok(row.waiting <= 4);
              total += size;
            }
            assert.ok(total <= shape.nodeConnectionsMax, `node total ${total}`);
            assert.equal(h.pools.counters()['pool.connections'], total);
          };
          for (const step of actions) {
            switch (step.kind) {
              case 'send':
                outcome(h.send(address(step.peer), step.timeoutMs));
                break;
              case 'warm':
                h.pools.warm(address(step.peer));
                break;
              case 'cool':
                h.pools.cool(address(step.peer));
                break;
              case 'kill':
                for (const link of h.peer(address(step.peer)).links) link.kill();
                break;
              case 'down':
                h.peer(address(step.peer)).up = step.up;
                break;
              case 'hold':
                h.peer(address(step.peer)).hold = step.hold;
                break;
              case 'silent':
                h.peer(address(step.peer)).silent = step.silent;
                break;
              case 'release':
                h.releaseAll(address(step.peer));
                break;
              case 'wait':
                await h.run(step.ms);
                break;
            }
            check();
          }
          h.pools.close();
          await h.run(10_000);
          check();
          assert.equal(h.pools.counters()['pool.connections'], 0);
        },
      ),
      { numRuns: 150, seed: 1313 },
    );
  });
});
