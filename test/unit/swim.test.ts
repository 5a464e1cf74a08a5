/**
 * SWIM scenarios, written as scripts over a small in-memory cluster on SimNetwork: each
 * test sets up a few nodes, does something to them, and compares every node's view (and
 * the event trace) with the expected text. Timing assertions use the lan preset's numbers.
 *
 * Replay a failure with SWIM_SEED=<seed printed in the message>.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  decodeDatagram,
  encodeMessages,
  encodePushPull,
  SWIM_LAN,
  SWIM_LOCAL,
  SWIM_WAN,
  Swim,
  type SwimConfig,
  stallFloorMs,
  suspicionTimeoutMs,
  swimConfig,
  validateSwimConfig,
} from '../../src/core/membership/swim/index.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';
import { EventQueue, SimNetwork } from '../../src/core/sim/index.ts';

const SEED = Number(process.env['SWIM_SEED'] ?? 20_240_611) >>> 0;
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

interface Node {
  swim: Swim;
  address: string;
  paused: boolean;
  crashed: boolean;
  wakeAt: number;
  generation: number;
  events: string[];
}

/** A few SWIM nodes on a simulated LAN (RTT ~0.2 ms), driven at their nextWakeMs(). */
class Net {
  readonly queue = new EventQueue();
  readonly nodes = new Map<string, Node>();
  readonly seed: number;
  readonly config: SwimConfig;
  /** "a>b" blocks every packet from a to b. */
  private readonly cuts = new Set<string>();
  private readonly udp: SimNetwork<Uint8Array>;
  private readonly stream: SimNetwork<Uint8Array>;
  private readonly random;

  constructor(seed = SEED, config: SwimConfig = SWIM_LAN) {
    this.seed = seed;
    this.config = config;
    this.random = seededRandom(seed);
    const lan = { dropRate: 0, duplicateRate: 0, delayMinMs: 0.05, delayMaxMs: 0.15 };
    this.udp = new SimNetwork(this.queue, this.random, lan);
    this.stream = new SimNetwork(this.queue, this.random, lan);
  }

  get now(): number {
    return this.queue.clock.nowMs();
  }

  /** A node `id`; `as` runs it under another name and address (a second process claiming
   * the same id, or the same node restarted elsewhere). */
  add(
    id: string,
    seeds: string[] = [],
    meta = new Uint8Array(0),
    as: { name: string; address: string } = { name: id, address: `${id}:7946` },
  ): Swim {
    const name = as.name;
    const swim = new Swim({
      self: { id, address: as.address, meta },
      config: this.config,
      clock: this.queue.clock,
      random: seededRandom(this.seed + this.nodes.size * 7919 + id.length),
    });
    const node: Node = {
      swim,
      address: as.address,
      paused: false,
      crashed: false,
      wakeAt: Number.POSITIVE_INFINITY,
      generation: 0,
      events: this.nodes.get(name)?.events ?? [],
    };
    this.nodes.set(name, node);
    for (const [net, via] of [
      [this.udp, 'udp'],
      [this.stream, 'stream'],
    ] as const) {
      net.setDown(swim.address, false);
      net.register(swim.address, (from, bytes) => {
        if (node.paused || node.crashed || this.nodes.get(name) !== node) return;
        node.swim.receive(from, bytes, via);
        this.flush(node);
      });
    }
    if (seeds.length > 0) swim.join(seeds.map((s) => `${s}:7946`));
    this.flush(node);
    return swim;
  }

  swim(id: string): Swim {
    return this.nodes.get(id)!.swim;
  }

  run(ms: number): void {
    this.queue.runFor(ms);
  }

  /** Runs until `done()` (checked every ms) or `maxMs`; returns the time it took. */
  runUntil(done: () => boolean, maxMs: number): number {
    const start = this.now;
    while (!done() && this.now - start < maxMs) this.run(1);
    return this.now - start;
  }

  /** Cuts packets from `a` to `b` (both ways unless `oneWay`). */
  cut(a: string, b: string, oneWay = false): void {
    this.cuts.add(`${a}>${b}`);
    if (!oneWay) this.cuts.add(`${b}>${a}`);
  }

  mend(): void {
    this.cuts.clear();
  }

  /** The process stops (no ticks, no packets) for `ms`, like a long GC pause. */
  pause(id: string, ms: number): void {
    const node = this.nodes.get(id)!;
    node.paused = true;
    node.generation++;
    this.setDown(id, true);
    this.queue.schedule(ms, () => {
      node.paused = false;
      this.setDown(id, false);
      node.swim.tick();
      this.flush(node);
    });
  }

  crash(id: string): void {
    const node = this.nodes.get(id)!;
    node.crashed = true;
    node.generation++;
    this.setDown(id, true);
  }

  /** "a: a=alive@0 b=suspect@0" for every live node, ids sorted. */
  table(): string {
    const lines: string[] = [];
    for (const [id, node] of [...this.nodes].sort(([a], [b]) => a.localeCompare(b))) {
      if (node.crashed) continue;
      const cells = node.swim
        .members()
        .sort((x, y) => x.id.localeCompare(y.id))
        .map((m) => `${m.id}=${m.state}@${m.incarnation}`);
      lines.push(`${id}: ${cells.join(' ')}`);
    }
    return lines.join('\n');
  }

  expect(expected: string): void {
    const want = expected
      .trim()
      .split('\n')
      .map((l) => l.trim())
      .join('\n');
    assert.equal(this.table(), want, `seed=${this.seed} at t=${this.now.toFixed(1)}`);
  }

  /** Events seen by `id`, as "type member@incarnation". */
  events(id: string): string[] {
    return this.nodes.get(id)!.events;
  }

  private setDown(name: string, down: boolean): void {
    const address = this.nodes.get(name)!.address;
    this.udp.setDown(address, down);
    this.stream.setDown(address, down);
  }

  private flush(node: Node): void {
    const from = node.address.replace(/:7946$/, '');
    for (const packet of node.swim.takeOutbox()) {
      const to = packet.to.replace(/:7946$/, '');
      if (this.cuts.has(`${from}>${to}`)) continue;
      (packet.via === 'udp' ? this.udp : this.stream).send(
        node.swim.address,
        packet.to,
        packet.bytes,
      );
    }
    for (const e of node.swim.takeEvents()) node.events.push(`${e.type} ${e.id}@${e.incarnation}`);
    const at = node.swim.nextWakeMs();
    if (at === Number.POSITIVE_INFINITY || (node.wakeAt <= at && node.wakeAt >= this.now)) return;
    node.wakeAt = at;
    const generation = ++node.generation;
    this.queue.schedule(at - this.now, () => {
      if (generation !== node.generation || node.paused || node.crashed) return;
      node.wakeAt = Number.POSITIVE_INFINITY;
      node.swim.tick();
      this.flush(node);
    });
  }
}

/** A 3-node cluster a, b, c that has settled. */
function threeNodes(seed = SEED): Net {
  const net = new Net(seed);
  net.add('a');
  net.add('b', ['a']);
  net.add('c', ['b']);
  net.run(2000);
  return net;
}

const ALL_ALIVE_0 = `
  a: a=alive@0 b=alive@0 c=alive@0
  b: a=alive@0 b=alive@0 c=alive@0
  c: a=alive@0 b=alive@0 c=alive@0`;

describe('SWIM scenarios', () => {
  test('join via a seed: everyone knows everyone within 1 s', () => {
    const net = new Net();
    net.add('a');
    net.add('b', ['a']);
    net.add('c', ['b']); // c only knows b, and learns a from b's state
    const took = net.runUntil(() => net.table().split('alive').length - 1 === 9, 1000);
    assert.ok(took < 1000, `seed=${SEED}: joined in ${took} ms`);
    net.expect(ALL_ALIVE_0);
    assert.deepEqual(net.events('a'), ['join b@0', 'join c@0']);
    assert.deepEqual(net.events('c').sort(), ['join a@0', 'join b@0']);
  });

  test('direct probe fails, the indirect probe through b succeeds: no suspicion', () => {
    const net = threeNodes();
    net.cut('a', 'c');
    net.run(10_000);
    net.expect(ALL_ALIVE_0);
    assert.deepEqual(net.events('a'), ['join b@0', 'join c@0']);
    assert.deepEqual(net.events('b').sort(), ['join a@0', 'join c@0']);
    const a = net.swim('a').stats;
    assert.ok(a.indirectProbes >= 20, `seed=${SEED}: ${a.indirectProbes} indirect probes`);
    assert.equal(a.probesFailed, 0, `seed=${SEED}`);
    assert.ok(net.swim('b').stats.relaysStarted >= 20, `seed=${SEED}`);
  });

  test('a suspect hears it is suspected and refutes by bumping its incarnation', () => {
    const net = threeNodes();
    net.pause('c', 1000);
    net.run(900);
    net.expect(`
      a: a=alive@0 b=alive@0 c=suspect@0
      b: a=alive@0 b=alive@0 c=suspect@0
      c: a=alive@0 b=alive@0 c=alive@0`); // c is frozen: it knows nothing yet
    net.run(200);
    net.expect(`
      a: a=alive@0 b=alive@0 c=alive@1
      b: a=alive@0 b=alive@0 c=alive@1
      c: a=alive@0 b=alive@0 c=alive@1`);
    assert.deepEqual(net.events('a'), ['join b@0', 'join c@0', 'suspect c@0', 'alive c@1']);
    assert.equal(net.swim('c').stats.refutations, 1);
    assert.equal(net.swim('c').stats.localStalls, 1, 'c noticed its own pause');
    assert.equal(net.events('c').length, 2, `seed=${SEED}: c accused nobody: ${net.events('c')}`);
  });

  test('a crashed member is suspected, then dead everywhere after the suspicion timeout', () => {
    const net = threeNodes();
    const t0 = net.now;
    net.crash('c');
    const took = net.runUntil(
      () => net.swim('a').memberState('c') === 'dead' && net.swim('b').memberState('c') === 'dead',
      5000,
    );
    // Never sooner than the stall tolerance, and within the lan target.
    assert.ok(took >= SWIM_LAN.stallToleranceMs && took <= 3000, `seed=${SEED}: ${took} ms`);
    net.expect(`
      a: a=alive@0 b=alive@0 c=dead@0
      b: a=alive@0 b=alive@0 c=dead@0`);
    assert.deepEqual(net.events('a').slice(2), ['suspect c@0', 'dead c@0']);
    assert.deepEqual(net.events('b').slice(2), ['suspect c@0', 'dead c@0']);
    // The relay's nacks told a that it is not the one at fault: its health stayed perfect.
    assert.equal(net.swim('a').localHealth().awarenessScore, 0, `seed=${SEED}`);
    assert.ok(net.now - t0 < 5000);
  });

  test('a dead member is kept as a tombstone for tombstoneMs, then forgotten', () => {
    const net = threeNodes();
    net.crash('c');
    net.runUntil(() => net.swim('a').memberState('c') === 'dead', 5000);
    net.run(SWIM_LAN.tombstoneMs - 500);
    assert.equal(net.swim('a').memberState('c'), 'dead', 'still remembered just before');
    net.run(500 + 1000); // reaping runs once a second
    net.expect(`
      a: a=alive@0 b=alive@0
      b: a=alive@0 b=alive@0`);
    assert.equal(net.swim('a').stats.tombstonesReaped, 1);
    // While it was a tombstone, dead members were pinged now and then (partition healing).
    assert.ok(net.swim('a').stats.reconnectsAttempted >= 3, `seed=${SEED}`);
  });

  test('independent confirmations shrink the suspicion timeout toward its minimum', () => {
    // One machine fed by hand: it knows b..f (N = 6, so k = 3 confirmations expected).
    const deadAt = (confirmers: string[]): number => {
      let now = 0;
      const a = new Swim({
        self: { id: 'a', address: 'a:1' },
        clock: { nowMs: () => now, wallMs: () => now },
        random: seededRandom(SEED),
      });
      const members = ['b', 'c', 'd', 'e', 'f'].map((id) => ({
        id,
        address: `${id}:1`,
        meta: new Uint8Array(0),
        incarnation: 0,
        state: 'alive' as const,
      }));
      const state = {
        type: 'push-pull' as const,
        join: false,
        reply: true,
        fromAddress: 'b:1',
        members,
      };
      a.receive('b:1', encodePushPull(state, SWIM_LAN).bytes, 'stream');
      const hear = (fromId: string) =>
        a.receive(
          `${fromId}:1`,
          encodeMessages([{ type: 'suspect', incarnation: 0, id: 'b', fromId }]),
          'udp',
        );
      hear('c');
      confirmers.forEach((fromId, i) => {
        now = 100 * (i + 1);
        hear(fromId);
      });
      // Tick every millisecond until a declares b dead. Every ping of a's is acked, so a's
      // own probes confirm nothing; b never refutes (it would have to bump its incarnation).
      while (a.memberState('b') !== 'dead' && now < 60_000) {
        now += 1;
        a.tick();
        for (const packet of a.takeOutbox()) {
          if (packet.via !== 'udp') continue;
          const [first] = decodeDatagram(packet.bytes, SWIM_LAN);
          if (first?.type === 'ping') {
            a.receive(packet.to, encodeMessages([{ type: 'ack', seq: first.seq }]), 'udp');
          }
        }
      }
      return now;
    };
    const min = stallFloorMs(SWIM_LAN); // 2000 + 100 − 150 = 1950 ms, above 5·1·150
    const max = min * SWIM_LAN.suspicionMaxTimeoutMult;
    assert.equal(min, 1950);
    assert.equal(deadAt([]), max, `seed=${SEED}: a lone accuser waits the maximum`);
    assert.equal(deadAt(['d']), Math.ceil(suspicionTimeoutMs(1, 3, min, max)));
    assert.equal(
      deadAt(['d', 'd', 'c']),
      Math.ceil(suspicionTimeoutMs(1, 3, min, max)),
      'no double count',
    );
    assert.equal(deadAt(['d', 'e']), Math.ceil(suspicionTimeoutMs(2, 3, min, max)));
    assert.equal(deadAt(['d', 'e', 'f']), min);
    assert.ok(suspicionTimeoutMs(1, 3, min, max) === max - (max - min) / 2);
  });

  test('leave: "left" everywhere within 1 s, and a stale alive does not resurrect it', () => {
    const net = threeNodes();
    net.swim('b').leave();
    net.run(0);
    const took = net.runUntil(
      () => net.swim('a').memberState('b') === 'left' && net.swim('c').memberState('b') === 'left',
      1000,
    );
    assert.ok(took < 1000, `seed=${SEED}: leave seen in ${took} ms`);
    net.runUntil(() => net.swim('b').leftComplete, 3000);
    assert.equal(net.swim('b').leftComplete, true);
    net.crash('b'); // the node stops once its leave has been broadcast
    net.run(10_000);
    net.expect(`
      a: a=alive@0 b=left@0 c=alive@0
      c: a=alive@0 b=left@0 c=alive@0`);
    assert.deepEqual(net.events('a').slice(2), ['left b@0']);
    // A stale alive at the same incarnation (a late packet, a confused peer) changes nothing.
    const a = net.swim('a');
    const stale = {
      type: 'alive' as const,
      incarnation: 0,
      id: 'b',
      address: 'b:7946',
      meta: new Uint8Array(0),
    };
    a.receive('c:7946', encodeMessages([stale]), 'udp');
    assert.equal(a.memberState('b'), 'left');
    // Only a new incarnation (b really came back) revives it.
    a.receive('c:7946', encodeMessages([{ ...stale, incarnation: 1 }]), 'udp');
    assert.equal(a.memberState('b'), 'alive');
    assert.deepEqual(a.takeEvents().at(-1), {
      type: 'join',
      id: 'b',
      address: 'b:7946',
      incarnation: 1,
      atMs: net.now,
    });
  });

  test('before declaring death a asks the suspect itself; a refutation in the ack saves it', () => {
    // Gossip reaches any one member with high probability, not certainty: so just before
    // its deadline a pings the suspect (carrying the suspicion) as a last chance.
    let now = 0;
    const a = new Swim({
      self: { id: 'a', address: 'a:1' },
      clock: { nowMs: () => now, wallMs: () => now },
      random: seededRandom(SEED),
    });
    const members = ['b', 'c', 'd', 'e', 'f'].map((id) => ({
      id,
      address: `${id}:1`,
      meta: new Uint8Array(0),
      incarnation: 0,
      state: 'alive' as const,
    }));
    const state = {
      type: 'push-pull' as const,
      join: false,
      reply: true,
      fromAddress: 'c:1',
      members,
    };
    a.receive('c:1', encodePushPull(state, SWIM_LAN).bytes, 'stream');
    a.receive(
      'c:1',
      encodeMessages([{ type: 'suspect', incarnation: 0, id: 'b', fromId: 'c' }]),
      'udp',
    );
    const deadline = stallFloorMs(SWIM_LAN) * SWIM_LAN.suspicionMaxTimeoutMult; // no confirmations
    let bRefuted = false;
    const pingsToB = new Map<number, number>(); // time → pings carrying "b is suspect"
    const run = (untilMs: number) => {
      while (now < untilMs) {
        now += 1;
        a.tick();
        for (const packet of a.takeOutbox()) {
          if (packet.via !== 'udp') continue;
          const [first, ...rest] = decodeDatagram(packet.bytes, SWIM_LAN);
          if (first?.type !== 'ping') continue;
          if (packet.to === 'b:1' && rest.some((m) => m.type === 'suspect' && m.id === 'b')) {
            pingsToB.set(now, (pingsToB.get(now) ?? 0) + 1);
          }
          // Pings are acked (so a's own probes confirm nothing), but b does not refute; b's
          // answer to the last-chance pings is scripted below.
          if (packet.to !== 'b:1' || now < deadline - SWIM_LAN.probeTimeoutMs || bRefuted) {
            a.receive(packet.to, encodeMessages([{ type: 'ack', seq: first.seq }]), 'udp');
          }
        }
      }
    };
    run(deadline - SWIM_LAN.probeTimeoutMs - 1);
    assert.equal(a.stats.lastChancePings, 0);
    run(deadline - SWIM_LAN.probeTimeoutMs);
    assert.equal(a.stats.lastChancePings, 1 + SWIM_LAN.probeDirectRetries);
    assert.ok((pingsToB.get(now) ?? 0) >= 3, `seed=${SEED}: ${[...pingsToB]}`);
    // b answers one of them: its ack carries its refutation (incarnation 1).
    a.receive(
      'b:1',
      encodeMessages([
        { type: 'ack', seq: 0 },
        { type: 'alive', incarnation: 1, id: 'b', address: 'b:1', meta: new Uint8Array(0) },
      ]),
      'udp',
    );
    bRefuted = true;
    run(deadline + 5000);
    assert.equal(a.memberState('b'), 'alive');
    assert.equal(a.stats.deathsDeclared, 0);
    assert.deepEqual(
      a
        .takeEvents()
        .filter((e) => e.id === 'b')
        .map((e) => `${e.type}@${e.incarnation}`),
      ['join@0', 'suspect@0', 'alive@1'],
    );
  });

  test('a dead member that restarts comes back alive with a higher incarnation', () => {
    const net = threeNodes();
    net.crash('c');
    net.run(4000);
    net.expect(`
      a: a=alive@0 b=alive@0 c=dead@0
      b: a=alive@0 b=alive@0 c=dead@0`);
    net.add('c', ['a']); // a new process with the same id and address, incarnation 0
    const took = net.runUntil(
      () => net.table().split('alive@').length - 1 === 9 && !net.table().includes('dead'),
      2000,
    );
    assert.ok(took < 1000, `seed=${SEED}: rejoined in ${took} ms`);
    // It learned from a's state that it was dead at incarnation 0, and out-bid that.
    net.expect(`
      a: a=alive@0 b=alive@0 c=alive@1
      b: a=alive@0 b=alive@0 c=alive@1
      c: a=alive@0 b=alive@0 c=alive@1`);
    assert.deepEqual(net.events('a').slice(2), ['suspect c@0', 'dead c@0', 'join c@1']);
  });

  test('a second process claiming a live id at another address changes nothing, even by leaving', () => {
    const net = threeNodes();
    // Another process calls itself b, at b2, and joins through a.
    const impostor = net.add('b', ['a'], new Uint8Array(0), { name: 'b2', address: 'b2:7946' });
    net.run(2000);
    for (const id of ['a', 'c']) {
      const b = net.swim(id).member('b')!;
      assert.equal(`${b.state} ${b.address}`, 'alive b:7946', `seed=${SEED}: ${id} sees b`);
    }
    assert.ok(net.swim('a').stats.addressConflicts > 0);
    // Its leave must not make the real b left anywhere.
    impostor.leave();
    net.runUntil(() => impostor.leftComplete, 3000);
    net.crash('b2');
    net.run(5000);
    net.expect(`
      a: a=alive@0 b=alive@0 c=alive@0
      b: a=alive@0 b=alive@0 c=alive@0
      c: a=alive@0 b=alive@0 c=alive@0`);
    assert.deepEqual(net.events('a'), ['join b@0', 'join c@0']);
    // It had learned from a's state that the members know its id alive at b, and kept quiet:
    // no refutation, and nothing to announce when leaving.
    assert.deepEqual(impostor.selfConflict, { address: 'b:7946', incarnation: 0 });
    assert.equal(impostor.stats.selfConflicts, 1);
    assert.equal(impostor.incarnation, 0);
    // The real b, known at its own address, is never in conflict.
    assert.equal(net.swim('b').selfConflict, undefined);
  });

  test('a leave under way is dropped when the process learns the members know its id elsewhere', () => {
    // One machine fed by hand: "b" at b2:1, which knows c (from c's gossip) and has begun to
    // leave when a's state arrives, listing b alive at b:1.
    let now = 0;
    const b = new Swim({
      self: { id: 'b', address: 'b2:1' },
      clock: { nowMs: () => now, wallMs: () => now },
      random: seededRandom(SEED),
    });
    const alive = (id: string, address: string) => ({
      id,
      address,
      meta: new Uint8Array(0),
      incarnation: 0,
      state: 'alive' as const,
    });
    b.receive('c:1', encodeMessages([{ type: 'alive', ...alive('c', 'c:1') }]), 'udp');
    b.takeOutbox();
    b.leave();
    assert.equal(b.leftComplete, false, 'a leave to announce to c');
    const state = {
      type: 'push-pull' as const,
      join: false,
      reply: true,
      fromAddress: 'a:1',
      members: [alive('a', 'a:1'), alive('b', 'b:1'), alive('c', 'c:1')],
    };
    b.receive('a:1', encodePushPull(state, SWIM_LAN).bytes, 'stream');
    assert.deepEqual(b.selfConflict, { address: 'b:1', incarnation: 0 });
    const sent: string[] = [];
    for (; now < 3000; now += 10) {
      b.tick();
      for (const packet of b.takeOutbox()) {
        if (packet.via !== 'udp') continue;
        for (const message of decodeDatagram(packet.bytes, SWIM_LAN)) {
          if ('id' in message && message.id === 'b') sent.push(`${message.type} b to ${packet.to}`);
        }
      }
    }
    assert.deepEqual(sent, [], 'nothing about b left this process');
    assert.equal(b.leftComplete, true);
  });

  test('a node restarted at a new address before the reclaim window ends is taken there after it', () => {
    const net = threeNodes();
    net.crash('c');
    net.runUntil(
      () => net.swim('a').memberState('c') === 'dead' && net.swim('b').memberState('c') === 'dead',
      5000,
    );
    // Back at c2 at once: a and b ignore its alive (c is dead for less than deadReclaimMs).
    const moved = net.add('c', ['a'], new Uint8Array(0), { name: 'c2', address: 'c2:7946' });
    net.run(1000);
    assert.equal(net.swim('a').member('c')!.address, 'c:7946');
    // Once the window is over, its probes make the members look again: it is taken at c2
    // within a second, not at the next periodic push-pull (30 s).
    const took = net.runUntil(
      () =>
        ['a', 'b'].every((id) => {
          const c = net.swim(id).member('c')!;
          return c.state === 'alive' && c.address === 'c2:7946';
        }),
      SWIM_LAN.deadReclaimMs + 5000,
    );
    assert.ok(took < SWIM_LAN.deadReclaimMs + 1000, `seed=${SEED}: taken at c2 after ${took} ms`);
    assert.equal(moved.selfConflict, undefined);
    assert.ok(net.swim('a').stats.movedSenderSyncs + net.swim('b').stats.movedSenderSyncs > 0);
  });

  test('a metadata update propagates with a new incarnation', () => {
    const net = new Net();
    net.add('a', [], text('v1'));
    net.add('b', ['a'], text('v1'));
    net.add('c', ['a'], text('v1'));
    net.run(2000);
    net.swim('b').setMeta(text('v2'));
    net.run(1000);
    for (const id of ['a', 'b', 'c']) {
      const b = net.swim(id).member('b')!;
      assert.equal(str(b.meta), 'v2', `seed=${SEED}: ${id} sees ${str(b.meta)}`);
      assert.equal(b.incarnation, 1);
    }
    assert.deepEqual(net.events('a').slice(2), ['update b@1']);
  });

  test('oversize metadata is refused locally and dropped on the wire', () => {
    const net = threeNodes();
    const big = new Uint8Array(SWIM_LAN.metaBytesMax + 1);
    assert.throws(
      () => net.swim('b').setMeta(big),
      (e: unknown) => isRdbnetError(e, ErrorCode.ConfigInvalid),
    );
    assert.throws(
      () => net.add('d', [], big),
      (e: unknown) => isRdbnetError(e, ErrorCode.ConfigInvalid),
    );
    net.swim('b').setMeta(new Uint8Array(SWIM_LAN.metaBytesMax)); // exactly the limit is fine
    // A forged alive with 513 bytes of metadata is a malformed packet: counted, ignored.
    const a = net.swim('a');
    const rejected = a.stats.packetsRejected;
    // (The encoder does not know the limit; the decoder enforces it.)
    const forged = encodeMessages([
      { type: 'alive', incarnation: 9, id: 'c', address: 'c:7946', meta: big },
    ]);
    a.receive('c:7946', forged, 'udp');
    assert.equal(a.stats.packetsRejected, rejected + 1);
    assert.equal(a.member('c')!.incarnation, 0);
    net.run(2000);
    assert.equal(a.member('b')!.meta.length, SWIM_LAN.metaBytesMax);
  });
});

describe('SWIM local health and pauses (Lifeguard)', () => {
  test('a node whose packets cannot get out grows unhealthy, slows down, then recovers', () => {
    const net = threeNodes();
    net.cut('a', 'b', true);
    net.cut('a', 'c', true);
    net.run(1500);
    const sick = net.swim('a').localHealth();
    assert.ok(sick.awarenessScore >= 3, `seed=${SEED}: awareness ${sick.awarenessScore}`);
    assert.equal(sick.probeIntervalMs, SWIM_LAN.probeIntervalMs * (sick.awarenessScore + 1));
    net.mend();
    net.run(10_000);
    assert.equal(net.swim('a').localHealth().awarenessScore, 0, `seed=${SEED}`);
    // a suspected b and c meanwhile, but they refuted: nobody was declared dead.
    for (const id of ['a', 'b', 'c']) {
      assert.ok(
        !net.events(id).some((e) => e.startsWith('dead')),
        `seed=${SEED}: ${net.events(id)}`,
      );
    }
  });

  test('a paused node accuses nobody on resume, and its suspicion timers wait for it', () => {
    // Two nodes: b crashes, a suspects it; a then pauses for 1 s during the suspicion.
    const deadAfter = (pauseMs: number): number => {
      const net = new Net();
      net.add('a');
      net.add('b', ['a']);
      net.run(2000);
      const t0 = net.now;
      net.crash('b');
      net.runUntil(() => net.swim('a').memberState('b') === 'suspect', 2000);
      if (pauseMs > 0) net.pause('a', pauseMs);
      net.runUntil(() => net.swim('a').memberState('b') === 'dead', 10_000);
      if (pauseMs > 0) assert.equal(net.swim('a').stats.localStalls, 1);
      return net.now - t0;
    };
    const plain = deadAfter(0);
    const paused = deadAfter(1000);
    assert.ok(paused - plain >= 900, `seed=${SEED}: ${plain} ms vs ${paused} ms with a pause`);
  });
});

describe('SWIM probing, health view and bounds', () => {
  test('round-robin: every member is probed once per round, in a fresh order', () => {
    const net = new Net();
    net.add('a');
    for (const id of ['b', 'c', 'd', 'e', 'f']) net.add(id, ['a']);
    net.run(3000);
    const a = net.swim('a');
    a.takeOutbox();
    const counts = new Map<string, number>();
    const orders: string[] = [];
    let clock = 0;
    // Drive a alone, acking nothing: collect the first ping of each probe.
    const solo = new Swim({
      self: { id: 'a', address: 'a:7946' },
      clock: { nowMs: () => clock, wallMs: () => clock },
      random: seededRandom(SEED),
    });
    const members = a.members().filter((m) => !m.isSelf);
    solo.receive(
      'b:7946',
      encodePushPull(
        {
          type: 'push-pull',
          join: false,
          reply: true,
          fromAddress: 'b:7946',
          members: members.map((m) => ({ ...m, state: 'alive' as const })),
        },
        SWIM_LAN,
      ).bytes,
      'stream',
    );
    while (orders.length < 40) {
      clock = solo.nextWakeMs(); // as a caller must: tick when the machine asks
      solo.tick();
      for (const packet of solo.takeOutbox()) {
        if (packet.via !== 'udp') continue;
        const [first] = decodeDatagram(packet.bytes, SWIM_LAN);
        if (first?.type === 'ping') {
          // Ack at once, so each probe is exactly one ping.
          solo.receive(packet.to, encodeMessages([{ type: 'ack', seq: first.seq }]), 'udp');
          counts.set(first.targetId, (counts.get(first.targetId) ?? 0) + 1);
          orders.push(first.targetId);
        }
      }
    }
    assert.deepEqual([...counts.values()], [8, 8, 8, 8, 8], `seed=${SEED}: ${[...counts]}`);
    const rounds = Array.from({ length: 8 }, (_, r) => orders.slice(r * 5, r * 5 + 5).join(''));
    for (const round of rounds) assert.equal([...round].sort().join(''), 'bcdef');
    assert.ok(new Set(rounds).size > 1, `seed=${SEED}: the order never changed: ${rounds}`);
  });

  test('members() reports RTT, last ack, phi and a score from them', () => {
    const net = threeNodes();
    net.run(10_000);
    const b = net.swim('a').member('b')!;
    assert.ok(b.rttMs !== undefined && b.rttMs > 0.05 && b.rttMs < 0.5, `rtt ${b.rttMs}`);
    assert.ok(b.lastAckAtMs !== undefined && net.now - b.lastAckAtMs < 1000);
    assert.ok(b.phi < 1, `phi ${b.phi}`);
    assert.ok(b.score > 0.95, `score ${b.score}`);
    net.crash('b');
    net.run(600);
    const late = net.swim('a').member('b')!;
    assert.ok(late.phi > b.phi, `phi ${late.phi} did not grow`);
    net.run(4000);
    assert.equal(net.swim('a').member('b')!.score, 0);
    const self = net.swim('a').members()[0]!;
    assert.equal(self.isSelf, true);
    assert.equal(self.score, 1);
  });

  test('bounds: member count, relays in flight, outbox and event queue', () => {
    let now = 0;
    const config = swimConfig('lan', {
      memberCountMax: 3,
      relaysPendingMax: 2,
      outboxPacketsMax: 5,
      eventsQueuedMax: 2,
    });
    const a = new Swim({
      self: { id: 'a', address: 'a:1' },
      config,
      clock: { nowMs: () => now, wallMs: () => now },
      random: seededRandom(SEED),
    });
    for (const id of ['b', 'c', 'd', 'e']) {
      a.receive(
        `${id}:1`,
        encodeMessages([
          { type: 'alive', incarnation: 0, id, address: `${id}:1`, meta: new Uint8Array(0) },
        ]),
        'udp',
      );
    }
    assert.equal(a.members().length, 4, 'self + 3');
    assert.equal(a.stats.membersRefused, 1);
    assert.equal(a.takeEvents().length, 2);
    assert.equal(a.stats.eventsDropped, 1);
    for (let seq = 0; seq < 10; seq++) {
      a.receive(
        'b:1',
        encodeMessages([
          { type: 'ping-req', seq, targetId: 'c', targetAddress: 'c:1', wantNack: true },
        ]),
        'udp',
      );
    }
    assert.equal(a.stats.relaysStarted, 2);
    assert.equal(a.stats.relaysDropped, 8);
    for (let seq = 0; seq < 10; seq++) {
      a.receive(
        'b:1',
        encodeMessages([{ type: 'ping', seq, targetId: 'a', sourceId: 'b' }]),
        'udp',
      );
    }
    assert.equal(a.takeOutbox().length, 5);
    assert.ok(a.stats.outboxDropped >= 7);
    now += 1000;
    a.tick();
  });

  test('presets are valid overrides of lan; bad configs are refused with every problem', () => {
    for (const preset of [SWIM_LAN, SWIM_WAN, SWIM_LOCAL]) validateSwimConfig({ ...preset });
    assert.equal(SWIM_WAN.metaBytesMax, SWIM_LAN.metaBytesMax);
    assert.ok(SWIM_WAN.probeIntervalMs > SWIM_LAN.probeIntervalMs);
    assert.ok(SWIM_LOCAL.probeIntervalMs < SWIM_LAN.probeIntervalMs);
    assert.throws(
      () =>
        swimConfig('lan', {
          probeTimeoutMs: 500,
          metaBytesMax: 2000,
          gossipIntervalMinMs: 500,
        }),
      (e: unknown) =>
        isRdbnetError(e, ErrorCode.ConfigInvalid) &&
        /probeTimeoutMs/.test(e.message) &&
        /metaBytesMax/.test(e.message) &&
        /gossipIntervalMinMs/.test(e.message),
    );
    assert.throws(
      () => validateSwimConfig({ ...SWIM_LAN, bogus: 1 } as SwimConfig),
      (e: unknown) => isRdbnetError(e, ErrorCode.ConfigInvalid) && /bogus/.test(e.message),
    );
    assert.throws(
      () =>
        new Swim({
          self: { id: '', address: 'a:1' },
          clock: new EventQueue().clock,
          random: seededRandom(1),
        }),
      (e: unknown) => isRdbnetError(e, ErrorCode.ConfigInvalid),
    );
  });
});
