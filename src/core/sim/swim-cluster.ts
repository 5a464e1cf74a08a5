/**
 * A simulated SWIM cluster for tests and benchmarks: each node is the pure Swim machine,
 * ticked exactly when it asks (nextWakeMs), on two SimNetworks — lossy UDP and a lossless
 * stream (TCP) — with crashes, stalls and partitions. Seeded, so a run replays exactly.
 */
import { SWIM_LAN, Swim, type SwimConfig } from '../membership/swim/index.ts';
import { type Random, seededRandom } from '../runtime/index.ts';
import { EventQueue, type NetworkFaults, SimNetwork } from './index.ts';

export interface SimNode {
  swim: Swim;
  id: string;
  address: string;
  wakeAtMs: number;
  generation: number;
  stalled: boolean;
  crashed: boolean;
  udpBytes: number;
  streamBytes: number;
}

export interface DeadEvent {
  viewer: string;
  id: string;
  atMs: number;
}

/** A simulated cluster. Each node is ticked exactly when its machine asks (nextWakeMs). */
export class SwimSimCluster {
  readonly seed: number;
  readonly queue = new EventQueue();
  readonly random: Random;
  readonly nodes: SimNode[] = [];
  readonly byId = new Map<string, SimNode>();
  readonly deaths: DeadEvent[] = [];
  suspicions = 0;
  private readonly udp: SimNetwork<Uint8Array>;
  private readonly stream: SimNetwork<Uint8Array>;
  private readonly config: SwimConfig;

  constructor(seed: number, faults: NetworkFaults, config: SwimConfig = SWIM_LAN) {
    this.seed = seed;
    this.config = config;
    this.random = seededRandom(seed);
    const size = (bytes: Uint8Array) => bytes.length;
    this.udp = new SimNetwork(this.queue, this.random, faults, size);
    // The stream transport is TCP: no loss, no duplicates, same latency.
    this.stream = new SimNetwork(
      this.queue,
      this.random,
      { ...faults, dropRate: 0, duplicateRate: 0 },
      size,
    );
  }

  /** A fixed one-way delay between two nodes (by id), on UDP and the stream alike. */
  setLinkDelay(delayMs: (fromId: string, toId: string) => number): void {
    const idOf = (address: string) => this.nodes.find((n) => n.address === address)?.id ?? '';
    const byAddress = (from: string, to: string) => delayMs(idOf(from), idOf(to));
    this.udp.setLinkDelay(byAddress);
    this.stream.setLinkDelay(byAddress);
  }

  get now(): number {
    return this.queue.clock.nowMs();
  }

  get live(): SimNode[] {
    return this.nodes.filter((n) => !n.crashed);
  }

  /** Adds a node; it joins through a random existing node (none for the first). */
  add(): SimNode {
    const index = this.nodes.length;
    const id = `node-${index}`;
    // Simulated addresses only (never dialed); loopback-range so no real network is implied.
    const address = `127.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}:7946`;
    const swim = new Swim({
      self: { id, address },
      config: this.config,
      clock: this.queue.clock,
      random: seededRandom((this.seed ^ Math.imul(index + 1, 0x9e37_79b9)) >>> 0),
    });
    const node: SimNode = {
      swim,
      id,
      address,
      wakeAtMs: Number.POSITIVE_INFINITY,
      generation: 0,
      stalled: false,
      crashed: false,
      udpBytes: 0,
      streamBytes: 0,
    };
    const seed = this.live[this.random.int(Math.max(1, this.live.length))];
    this.nodes.push(node);
    this.byId.set(id, node);
    this.udp.register(address, (from, bytes) => this.deliver(node, from, bytes, 'udp'));
    this.stream.register(address, (from, bytes) => this.deliver(node, from, bytes, 'stream'));
    if (seed !== undefined) swim.join([seed.address]);
    this.flush(node);
    return node;
  }

  /** Adds `count` nodes, one every `spacingMs`. */
  grow(count: number, spacingMs: number): void {
    for (let i = 0; i < count; i++) {
      this.add();
      this.run(spacingMs);
    }
  }

  run(ms: number): void {
    // The queue's event bound is cumulative; give each call its own generous budget (we use
    // ~40 events per node per simulated second), so only a livelock trips it.
    const budget = Math.max(1_000_000, ms * Math.max(1, this.nodes.length) * 2);
    this.queue.runFor(ms, this.queue.eventsRun + budget);
  }

  crash(node: SimNode): void {
    node.crashed = true;
    node.generation++;
    this.setDown(node, true);
  }

  /** The process freezes for `ms` (a GC pause, a stalled VM): no ticks, no packets. */
  stall(node: SimNode, ms: number): void {
    node.stalled = true;
    node.generation++;
    node.wakeAtMs = Number.POSITIVE_INFINITY;
    this.setDown(node, true);
    this.queue.schedule(ms, () => {
      node.stalled = false;
      this.setDown(node, false);
      node.swim.tick();
      this.flush(node);
    });
  }

  partition(groups: SimNode[][]): void {
    const addresses = groups.map((g) => g.map((n) => n.address));
    this.udp.partition(addresses);
    this.stream.partition(addresses);
  }

  heal(): void {
    this.udp.heal();
    this.stream.heal();
  }

  setFaults(faults: NetworkFaults): void {
    this.udp.setFaults(faults);
    this.stream.setFaults({ ...faults, dropRate: 0, duplicateRate: 0 });
  }

  /** Pairs (viewer, member) of live nodes where the viewer does not see the member alive. */
  disagreements(): number {
    const live = this.live;
    let count = 0;
    for (const viewer of live) {
      for (const member of live) {
        if (viewer.swim.memberState(member.id) !== 'alive') count++;
      }
    }
    return count;
  }

  /** Runs until every live node sees every live node alive; returns the time it took. */
  runUntilAgreement(maxMs: number, stepMs = 500): number {
    const start = this.now;
    while (this.disagreements() > 0 && this.now - start < maxMs) this.run(stepMs);
    return this.now - start;
  }

  bytes(): { udp: number; stream: number } {
    let udp = 0;
    let stream = 0;
    for (const n of this.nodes) {
      udp += n.udpBytes;
      stream += n.streamBytes;
    }
    return { udp, stream };
  }

  private setDown(node: SimNode, down: boolean): void {
    this.udp.setDown(node.address, down);
    this.stream.setDown(node.address, down);
  }

  private deliver(node: SimNode, from: string, bytes: Uint8Array, via: 'udp' | 'stream'): void {
    if (node.crashed || node.stalled) return;
    node.swim.receive(from, bytes, via);
    this.flush(node);
  }

  private flush(node: SimNode): void {
    for (const packet of node.swim.takeOutbox()) {
      if (packet.via === 'udp') {
        node.udpBytes += packet.bytes.length;
        this.udp.send(node.address, packet.to, packet.bytes);
      } else {
        node.streamBytes += packet.bytes.length;
        this.stream.send(node.address, packet.to, packet.bytes);
      }
    }
    for (const event of node.swim.takeEvents()) {
      if (event.type === 'dead')
        this.deaths.push({ viewer: node.id, id: event.id, atMs: event.atMs });
      else if (event.type === 'suspect') this.suspicions++;
    }
    this.schedule(node);
  }

  private schedule(node: SimNode): void {
    if (node.crashed || node.stalled) return;
    const at = node.swim.nextWakeMs();
    const now = this.now;
    if (at === Number.POSITIVE_INFINITY || (node.wakeAtMs <= at && node.wakeAtMs >= now)) return;
    node.wakeAtMs = at;
    const generation = ++node.generation;
    this.queue.schedule(at - now, () => {
      if (generation !== node.generation) return;
      node.wakeAtMs = Number.POSITIVE_INFINITY;
      // A timer that moved later since (an ack arrived): just re-arm, nothing is due.
      if (node.swim.nextWakeMs() > this.now) this.schedule(node);
      else {
        node.swim.tick();
        this.flush(node);
      }
    });
  }
}
