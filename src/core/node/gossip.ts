/**
 * The node's gossip membership: the keyring in the certs dir, a GossipDriver on the node's
 * listen host and port (UDP), push-pull carried as one request/response over the node's
 * mTLS binary protocol, seeds from --join, and a bounded leave on stop. Clock, randomness,
 * the datagram transport and the node-to-node transport can be injected (the simulator).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { PeerLinks, type PeerLinksInit } from '../cluster/peers.ts';
import type { NodeConfig } from '../config/node-config.ts';
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { PeerResilience } from '../lb/registry.ts';
import {
  type DatagramBinder,
  GossipDriver,
  type GossipStats,
  type StreamTransport,
} from '../membership/gossip/index.ts';
import { type MemberView, SWIM_PRESETS, type SwimPreset } from '../membership/swim/index.ts';
import type {
  GossipMember,
  KeyringNodeResult,
  KeyringOp,
  KeyringReply,
  KeyringRequest,
  MemberEventRecord,
} from '../protocol/messages.ts';
import { type PeerTransport, peerSender } from '../rpc/peer.ts';
import { request } from '../rpc/request.ts';
import {
  type Clock,
  type Logger,
  type Random,
  systemClock,
  systemRandom,
  type TimerHandle,
  timersOf,
} from '../runtime/index.ts';
import {
  decodeKey,
  ensureKeyring,
  Keyring,
  loadKeyring,
  saveKeyring,
} from '../security/keyring.ts';

/** The keyring file in the certs dir. */
export const GOSSIP_KEYRING_FILE = 'gossip.keyring';
/** A push-pull exchange that has not answered by then is abandoned (the driver counts it). */
const STREAM_REQUEST_TIMEOUT_MS = 3000;
/** stop() waits this long at most for the leave broadcast before closing the socket. */
export const GOSSIP_LEAVE_MAX_MS = 1000;
/** Recent events kept for `rdbnet cluster events`; older ones are dropped. */
export const MEMBER_EVENTS_KEPT = 1024;
/** Events returned by one request at most (the asker asks again for the rest). */
const MEMBER_EVENTS_PER_REPLY = 256;
/** A keyring operation forwarded to a member that has not answered by then fails there. */
export const KEYRING_FORWARD_TIMEOUT_MS = 5000;
const KEYRING_OPS: ReadonlySet<string> = new Set(['install', 'use', 'remove', 'list']);

export function gossipKeyringPath(certsDir: string): string {
  return join(certsDir, GOSSIP_KEYRING_FILE);
}

/**
 * A node's gossip metadata: JSON `{"address": "<host:port>", "groups": [...]}`: the address it advertises for
 * the binary protocol (joins, Raft). Gossip runs on the listen host and port, which can
 * differ from it; the cluster service matches gossip members to join requests by it. The groups (absent when none) route the data plane's multicast.
 */
export function encodeNodeMeta(address: string, groups: readonly string[] = []): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify(groups.length === 0 ? { address } : { address, groups }),
  );
}

/** What a member's metadata says, parsed once per metadata buffer: the data plane reads the
 * members' groups and addresses on every message (a scatter-gather to five read them five
 * times), and gossip hands out the same buffer until the member changes it. */
interface NodeMeta {
  address: string | undefined;
  groups: string[];
}
const parsedMeta = new WeakMap<Uint8Array, NodeMeta>();

function nodeMetaOf(meta: Uint8Array): NodeMeta {
  let parsed = parsedMeta.get(meta);
  if (parsed === undefined) {
    parsed = { address: undefined, groups: [] };
    try {
      const json = JSON.parse(new TextDecoder().decode(meta)) as {
        address?: unknown;
        groups?: unknown;
      };
      if (typeof json.address === 'string' && json.address !== '') parsed.address = json.address;
      if (Array.isArray(json.groups)) {
        parsed.groups = json.groups.filter((group): group is string => typeof group === 'string');
      }
    } catch {
      // Another version's metadata: not ours to judge; no address, no groups known.
    }
    parsedMeta.set(meta, parsed);
  }
  return parsed;
}

/** The groups a member names in its metadata (the data plane's multicast); none without. */
export function nodeGroupsOf(member: Pick<MemberView, 'meta'>): string[] {
  if (member.meta.length === 0) return [];
  return [...nodeMetaOf(member.meta).groups];
}

/** The address a member advertises (see encodeNodeMeta); its gossip address without one. */
export function nodeAddressOf(member: Pick<MemberView, 'address' | 'meta'>): string {
  if (member.meta.length === 0) return member.address;
  return nodeMetaOf(member.meta).address ?? member.address;
}

/**
 * The node's keyring. Created (once, shared by nodes starting together) only where the node
 * creates its own certificates (the default certs dir); elsewhere it must exist. An
 * --insecure node has no certs dir to read: its key is derived from the cluster name, so
 * --insecure nodes of one cluster gossip with each other and nothing is secret.
 */
export async function loadNodeKeyring(config: NodeConfig, log: Logger): Promise<Keyring> {
  if (config.insecure) {
    log.warn('gossip key derived from the cluster name (--insecure): membership is not secret');
    return new Keyring(
      createHash('sha256').update(`rdbnet-insecure-gossip/${config.cluster}`).digest(),
    );
  }
  const path = gossipKeyringPath(config.certsDir);
  if (config.certsDirIsDefault) {
    const { keyring, created } = await ensureKeyring(path);
    if (created) log.info('created gossip keyring', { file: path });
    return keyring;
  }
  try {
    return await loadKeyring(path);
  } catch (error) {
    // A missing file, told by the errno loadKeyring keeps as the cause (a path may say
    // "not found" too).
    if (
      error instanceof RdbnetError &&
      (error.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
    ) {
      throw new RdbnetError(ErrorCode.ConfigInvalid, `gossip keyring not found: ${path}`, {
        hint:
          `copy ${GOSSIP_KEYRING_FILE} from another member's certs dir, or (first node) write ` +
          `{"primary": "<key>", "keys": ["<key>"]} there with mode 0600, <key> from \`rdbnet keys generate\``,
        cause: error,
      });
    }
    throw error;
  }
}

/**
 * Push-pull over node-to-node requests: one gossipStreamRequest, its reply the payload (an
 * empty one: the peer sent none). The peer side is NodeGossip.onStream.
 */
export function streamOverPeers(
  peers: PeerTransport,
  resilience: PeerResilience | null = null,
): StreamTransport {
  const exchange = (toAddress: string, bytes: Uint8Array) =>
    request(
      peerSender(peers, toAddress),
      'gossipStreamRequest',
      { payload: bytes },
      STREAM_REQUEST_TIMEOUT_MS,
    );
  return {
    send: async (toAddress, bytes) => {
      // Push-pull keeps SWIM's own schedule and timeout: measured, never refused or retried.
      const reply =
        resilience === null
          ? await exchange(toAddress, bytes)
          : await resilience.observe(toAddress, () => exchange(toAddress, bytes));
      return reply.payload.length === 0 ? null : reply.payload;
    },
  };
}

/** How NodeGossip reaches other nodes: PeerLinks dialed with `links`, or a given transport. */
export type NodeGossipPeers =
  | { links: PeerLinksInit; peers?: undefined }
  | { peers: PeerTransport; links?: undefined };

export type NodeGossipInit = NodeGossipPeers & {
  id: string;
  host: string;
  port: number;
  keyring: Keyring;
  /** The keyring file `keys install/use/remove` save to; null: --insecure (refused). */
  keyringPath: string | null;
  clusterId: string;
  seeds: readonly string[];
  log: Logger;
  preset: SwimPreset;
  /** The address the node advertises for the binary protocol (gossiped, see encodeNodeMeta). */
  advertise: string;
  /** The node's groups (node config `groups`), gossiped with its address. */
  groups?: readonly string[];
  /** How long a member must be dead or left before its id may move to another address
   * (the node's idReclaimAfterMs; replaces the preset's deadReclaimMs). */
  deadReclaimMs: number;
  /** Default systemClock; its timers (timersOf) run the driver and the bounded leave. */
  clock?: Clock;
  /** Default systemRandom. */
  random?: Random;
  /** Default: the keyring-sealed UDP socket. */
  datagrams?: DatagramBinder;
  /** Whether a datagram from this IP is taken in (the node's ACL); default every source. */
  admitSource?: (ip: string) => boolean;
  /** Guards and measures what this node sends its peers (`rdbnet lb status`). */
  resilience?: PeerResilience;
};

export class NodeGossip {
  readonly driver: GossipDriver;
  private readonly links: PeerTransport;
  private readonly clock: Clock;
  private readonly log: Logger;
  private left = false;
  private readonly recent: MemberEventRecord[] = [];
  private lastSeq = 0;
  private readonly id: string;
  /** The instance the driver seals and opens with: changes to it take effect at once. */
  private readonly keyring: Keyring;
  /** Where the keyring is saved; null on --insecure nodes (derived key, nothing to change). */
  private readonly keyringPath: string | null;
  /** Keyring operations run one at a time on this node. */
  private keyringQueue: Promise<unknown> = Promise.resolve();
  /** Breaker, retry budget and latency per peer for what this node sends (null: unguarded). */
  private readonly resilience: PeerResilience | null;

  private constructor(
    driver: GossipDriver,
    links: PeerTransport,
    clock: Clock,
    log: Logger,
    keyring: { id: string; keyring: Keyring; path: string | null },
    resilience: PeerResilience | null,
  ) {
    this.driver = driver;
    this.links = links;
    this.clock = clock;
    this.log = log;
    this.resilience = resilience;
    this.id = keyring.id;
    this.keyring = keyring.keyring;
    this.keyringPath = keyring.path;
  }

  /** Binds UDP on host:port and joins `seeds` in the background (never blocks start-up). */
  static async start(init: NodeGossipInit): Promise<NodeGossip> {
    const links: PeerTransport = init.peers ?? new PeerLinks(init.links);
    const clock = init.clock ?? systemClock;
    const resilience = init.resilience ?? null;
    let driver: GossipDriver;
    try {
      driver = await GossipDriver.start({
        id: init.id,
        host: init.host,
        port: init.port,
        keyring: init.keyring,
        clusterId: init.clusterId,
        stream: streamOverPeers(links, resilience),
        swim: { ...SWIM_PRESETS[init.preset], deadReclaimMs: init.deadReclaimMs },
        meta: encodeNodeMeta(init.advertise, init.groups ?? []),
        logger: init.log,
        clock,
        random: init.random ?? systemRandom,
        ...(init.datagrams === undefined ? {} : { datagrams: init.datagrams }),
        ...(init.admitSource === undefined ? {} : { admitSource: init.admitSource }),
      });
    } catch (error) {
      links.close();
      throw error;
    }
    const gossip = new NodeGossip(
      driver,
      links,
      clock,
      init.log,
      { id: init.id, keyring: init.keyring, path: init.keyringPath },
      resilience,
    );
    driver.on('event', (event) => {
      gossip.record(event.type, event.id, event.address, event.incarnation);
      init.log.info('gossip member', { event: event.type, id: event.id, address: event.address });
    });
    init.log.info('gossip running', { address: driver.address, seeds: [...init.seeds] });
    if (init.seeds.length > 0) {
      driver.join(init.seeds).then(
        (live) => init.log.info('gossip joined', { live }),
        (error: unknown) => {
          if (!gossip.left) {
            init.log.warn('gossip join gave up (members that find us still add us)', {
              reason: (error as Error).message,
            });
          }
        },
      );
    }
    return gossip;
  }

  /** The peer side of push-pull. */
  onStream(fromAddress: string, payload: Uint8Array): Uint8Array {
    return this.driver.onStream(fromAddress, payload) ?? new Uint8Array(0);
  }

  private record(type: string, id: string, address: string, incarnation: number): void {
    this.lastSeq++;
    this.recent.push({
      seq: this.lastSeq,
      type,
      id,
      address,
      incarnation,
      atMs: this.clock.wallMs(),
    });
    if (this.recent.length > MEMBER_EVENTS_KEPT) this.recent.shift();
  }

  /** Recent events after `afterSeq` (oldest first, at most MEMBER_EVENTS_PER_REPLY), and
   * how many after it were dropped from the ring already. */
  events(afterSeq: number): { events: MemberEventRecord[]; lastSeq: number; missed: number } {
    const firstKept = this.recent[0]?.seq ?? this.lastSeq + 1;
    const missed = Math.max(0, Math.min(firstKept - 1, this.lastSeq) - afterSeq);
    const events = this.recent
      .filter((event) => event.seq > afterSeq)
      .slice(0, MEMBER_EVENTS_PER_REPLY);
    return { events, lastSeq: this.lastSeq, missed };
  }

  members(): GossipMember[] {
    // The clock the machine stamps lastAckAtMs with.
    const now = this.clock.nowMs();
    return this.driver.members().map((member) => memberWire(member, now));
  }

  stats(): GossipStats {
    return this.driver.stats();
  }

  /**
   * A keyring request. Forwarded (from `fromId`, which must be a live member): applied to this
   * node's keyring only.
   * Otherwise (from an operator): `list` asks every alive member; `use` first checks that
   * every alive member holds the key and `remove` that no member has it as primary, then the
   * change is applied here and forwarded to every alive member. One result per node.
   */
  async keyringRequest(request: KeyringRequest, fromId: string): Promise<KeyringReply> {
    if (!KEYRING_OPS.has(request.op)) {
      throw new RdbnetError(ErrorCode.Usage, `unknown keyring operation "${request.op}"`);
    }
    const op = request.op as KeyringOp;
    if (op !== 'list') decodeKey(request.key).fill(0); // a malformed key fails before any change
    if (request.forwarded) {
      // Only a member passes an operator's change on; any other node certificate of the CA
      // would otherwise change this node's keyring with no operator involved.
      const member = this.driver.members().find((view) => view.id === fromId && !view.isSelf);
      if (member === undefined || (member.state !== 'alive' && member.state !== 'suspect')) {
        throw new RdbnetError(
          ErrorCode.Forbidden,
          `node ${fromId} is not a live gossip member here and may not forward keyring changes`,
        );
      }
      return { results: [await this.applyKeyring(op, request.key)] };
    }
    if (op === 'use' || op === 'remove') {
      const listed = await this.everywhere('list', '');
      const failed = listed.filter((result) => !result.ok);
      if (failed.length > 0) return { results: failed };
      const blocking =
        op === 'use'
          ? listed.filter((result) => !result.keys.includes(request.key))
          : listed.filter((result) => result.primary === request.key);
      if (blocking.length > 0) {
        return {
          results: blocking.map((result) => ({
            ...result,
            ok: false,
            changed: false,
            error:
              op === 'use'
                ? 'the key is not installed on this node: install it everywhere first'
                : 'the key is the primary on this node: make another key primary first',
          })),
        };
      }
    }
    return { results: await this.everywhere(op, request.key) };
  }

  /** Applies op here and on every alive member (in parallel, each bounded). */
  private everywhere(op: KeyringOp, key: string): Promise<KeyringNodeResult[]> {
    const others = this.driver
      .members()
      .filter((member) => !member.isSelf && member.state === 'alive');
    const forward = (address: string, timeoutMs: number) =>
      request(
        peerSender(this.links, address),
        'keyringRequest',
        { op, key, forwarded: true },
        timeoutMs,
      );
    const deadlineMs = this.clock.nowMs() + KEYRING_FORWARD_TIMEOUT_MS;
    return Promise.all([
      this.applyKeyring(op, key),
      ...others.map((member) =>
        // Every keyring operation is idempotent (installing an installed key changes
        // nothing), so a forward that failed to reach the member may be sent again.
        (this.resilience === null
          ? forward(member.address, KEYRING_FORWARD_TIMEOUT_MS)
          : this.resilience.call(
              member.address,
              (remainingMs) =>
                forward(member.address, Math.max(1, remainingMs ?? KEYRING_FORWARD_TIMEOUT_MS)),
              deadlineMs,
            )
        ).then(
          (reply): KeyringNodeResult =>
            reply.results[0] ?? failedResult(member.id, member.address, 'empty reply'),
          (error: unknown) =>
            failedResult(member.id, member.address, (error as Error).message ?? String(error)),
        ),
      ),
    ]);
  }

  /** Applies op to this node's keyring: on a copy first, saved (atomically, 0600), then live. */
  private applyKeyring(op: KeyringOp, key: string): Promise<KeyringNodeResult> {
    const run = async (): Promise<KeyringNodeResult> => {
      const address = this.driver.address;
      try {
        let changed = false;
        if (op !== 'list') {
          if (this.keyringPath === null) {
            throw new RdbnetError(
              ErrorCode.Forbidden,
              'this node runs --insecure: its gossip key is derived and cannot be changed',
            );
          }
          const copy = Keyring.fromFile(this.keyring.toFile());
          changed = copy[op](key);
          if (changed) {
            await saveKeyring(this.keyringPath, copy);
            this.keyring[op](key);
            this.log.info('gossip keyring changed', { op, keys: this.keyring.size });
          }
        }
        return {
          node: this.id,
          address,
          ok: true,
          error: '',
          primary: this.keyring.primary,
          keys: this.keyring.list(),
          changed,
        };
      } catch (error) {
        return failedResult(this.id, address, (error as Error).message ?? String(error));
      }
    };
    const result = this.keyringQueue.then(run, run);
    this.keyringQueue = result;
    return result;
  }

  /** Announces `left` (bounded by GOSSIP_LEAVE_MAX_MS), then closes socket and links. */
  async stop(): Promise<void> {
    if (!this.left) {
      this.left = true;
      const timers = timersOf(this.clock);
      let timer: TimerHandle | undefined;
      const complete = await Promise.race([
        Promise.resolve()
          .then(() => this.driver.leave())
          .catch(() => false),
        new Promise<false>((resolve) => {
          timer = timers.setTimer(GOSSIP_LEAVE_MAX_MS, () => resolve(false));
        }),
      ]);
      if (timer !== undefined) timers.clearTimer(timer);
      this.log.info('gossip left', { complete });
    }
    await this.driver.close();
    this.links.close();
  }
}

function failedResult(node: string, address: string, error: string): KeyringNodeResult {
  return { node, address, ok: false, error, primary: '', keys: [], changed: false };
}

function memberWire(member: MemberView, now: number): GossipMember {
  return {
    id: member.id,
    address: member.address,
    state: member.state,
    incarnation: member.incarnation,
    rttMs:
      member.rttMs === undefined || !Number.isFinite(member.rttMs)
        ? -1
        : Number(member.rttMs.toFixed(3)),
    phi: Number(member.phi.toFixed(3)),
    score: member.isSelf ? 1 : Number(member.score.toFixed(3)),
    lastAckMs:
      member.lastAckAtMs === undefined || !Number.isFinite(member.lastAckAtMs)
        ? -1
        : Math.round(now - member.lastAckAtMs),
    isSelf: member.isSelf,
    rttP50Ms: member.rttP50Ms === undefined ? -1 : Number(member.rttP50Ms.toFixed(3)),
    rttP99Ms: member.rttP99Ms === undefined ? -1 : Number(member.rttP99Ms.toFixed(3)),
    lossRatio: Number(member.lossRatio.toFixed(3)),
    ...(member.coordinate === undefined ? {} : { coordinate: member.coordinate }),
  };
}

/** Gossip statistics as flat `gossip.*` counters for `node status`. */
export function gossipCounters(stats: GossipStats): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (prefix: string, value: unknown): void => {
    if (typeof value === 'number') {
      if (Number.isFinite(value) && value >= 0) out[prefix] = Math.round(value);
    } else if (value !== null && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) walk(`${prefix}.${key}`, inner);
    }
  };
  walk('gossip', stats);
  return out;
}
