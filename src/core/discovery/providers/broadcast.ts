/**
 * `provider=broadcast`: nodes announce themselves on a subnet's broadcast address and listen
 * there for each other — discovery with no server at all, for one LAN segment. Every
 * announcement is authenticated with a key derived from the gossip key (broadcast-codec.ts),
 * so a stranger's packets (another cluster, a forger) are ignored and counted, and a captured
 * packet sent again is refused by the replay guard.
 *
 * register() announces every `interval` until close(), then says goodbye (an announcement with
 * ttl 0); a listener forgets a node that has not announced for three of its intervals.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import type { TimerHandle } from '../../runtime/timers.ts';
import { formatHostPort, parseHostPort } from '../../transport/address.ts';
import type {
  DiscoveredNode,
  DiscoveryProvider,
  ProviderContext,
  ProviderFactory,
  Registration,
  SelfRegistration,
} from '../provider.ts';
import { badValue, durationValue, portValue, valueOr } from '../values.ts';
import {
  type Announcement,
  announcementKey,
  openAnnouncement,
  ReplayGuard,
  sealAnnouncement,
} from './broadcast-codec.ts';
import {
  abortReason,
  broadcastAddressOf,
  interfaceKey,
  LAN_DURATION_BOUNDS,
  lanUnreachable,
} from './lan.ts';
import { LiveNodeTable } from './lan-table.ts';

const NAME = 'broadcast';
export const BROADCAST_PORT_DEFAULT = 7947;
export const BROADCAST_INTERVAL_MS_DEFAULT = 1000;
export const BROADCAST_TIMEOUT_MS_DEFAULT = 3000;
/** The limited broadcast address: used when neither address= nor interface= is given. */
const LIMITED_BROADCAST = '255.255.255.255';
/** A node is forgotten after this many of its own intervals without an announcement. */
const TTL_INTERVALS = 3;
/** How far a packet's send time may be from ours (clock difference on a LAN included). */
export const BROADCAST_REPLAY_WINDOW_MS = 30_000;
/** Nonces remembered within the replay window: enough for hundreds of nodes at 1 s. */
export const BROADCAST_NONCES_MAX = 8192;
/** Nodes a listener keeps; more are refused and counted. */
export const BROADCAST_NODES_MAX = 1024;
/** Failure lines logged per listener or registration; later ones are only counted. */
const LOG_LINES_MAX = 5;

export interface BroadcastOptions {
  port: number;
  /** Where announcements go (a subnet broadcast address). */
  address: string;
  /** The local IPv4 address to send from, when interface= named one. */
  sourceAddress?: string;
  intervalMs: number;
  timeoutMs: number;
}

/** What a listener did with the packets it got (tests and `node status` read these). */
export interface BroadcastStats {
  received: number;
  accepted: number;
  /** Failed the HMAC: another key, or none. */
  strangers: number;
  /** A nonce already seen within the window. */
  replays: number;
  /** Sent too long ago (or too far ahead). */
  stale: number;
  malformed: number;
  /** Refused because the nonce cache or the node table was full. */
  refused: number;
  sent: number;
  sendErrors: number;
}

export class BroadcastProvider implements DiscoveryProvider {
  readonly name = NAME;
  readonly stats: BroadcastStats = {
    received: 0,
    accepted: 0,
    strangers: 0,
    replays: 0,
    stale: 0,
    malformed: 0,
    refused: 0,
    sent: 0,
    sendErrors: 0,
  };
  private readonly key: Buffer;
  private readonly guard = new ReplayGuard(BROADCAST_REPLAY_WINDOW_MS, BROADCAST_NONCES_MAX);
  private readonly closers = new Set<() => Promise<void>>();
  private logLines = 0;
  readonly options: BroadcastOptions;
  private readonly ctx: ProviderContext;

  constructor(options: BroadcastOptions, ctx: ProviderContext, gossipKey: Uint8Array) {
    this.options = options;
    this.ctx = ctx;
    this.key = announcementKey(gossipKey);
  }

  private get endpoint(): string {
    return `${this.options.address}:${this.options.port}`;
  }

  private logOnce(message: string, fields?: Record<string, unknown>): void {
    if (this.logLines >= LOG_LINES_MAX) return;
    this.logLines++;
    this.ctx.log('warn', message, fields);
  }

  /** Opens a listening socket; each believable announcement goes to `onAnnouncement`. */
  private async listen(
    onAnnouncement: (announcement: Announcement, from: RemoteInfo) => void,
  ): Promise<Socket> {
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    socket.on('message', (packet, from) => {
      this.stats.received++;
      const opened = openAnnouncement(this.key, packet);
      if (!opened.ok) {
        if (opened.reason === 'stranger') {
          this.stats.strangers++;
          this.logOnce(`provider=${NAME}: ignored an announcement with another key`, {
            from: from.address,
          });
        } else this.stats.malformed++;
        return;
      }
      const verdict = this.guard.check(opened.nonce, opened.sentWallMs, this.ctx.clock.wallMs());
      if (verdict !== 'fresh') {
        if (verdict === 'replay') this.stats.replays++;
        else if (verdict === 'stale') this.stats.stale++;
        else this.stats.refused++;
        return;
      }
      this.stats.accepted++;
      onAnnouncement(opened.announcement, from);
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (error) => {
        socket.close();
        reject(lanUnreachable(NAME, `0.0.0.0:${this.options.port}`, error));
      });
      socket.bind({ port: this.options.port, address: '0.0.0.0', exclusive: false }, () => {
        socket.removeAllListeners('error');
        socket.on('error', (error) => this.logOnce(`provider=${NAME}: socket error: ${error}`));
        resolve();
      });
    });
    return socket;
  }

  /** The node an announcement describes; an unspecified host becomes the sender's address. */
  private nodeOf(announcement: Announcement, from: RemoteInfo): DiscoveredNode | undefined {
    let address: string;
    try {
      const hostPort = parseHostPort(announcement.address, 'announced address');
      if (hostPort.host === '0.0.0.0' || hostPort.host === '::') hostPort.host = from.address;
      address = formatHostPort(hostPort);
    } catch {
      this.stats.malformed++;
      return undefined;
    }
    return {
      address,
      id: announcement.id,
      source: `${NAME}:${this.endpoint}`,
      meta: { ...announcement.meta },
    };
  }

  private track(table: LiveNodeTable, announcement: Announcement, from: RemoteInfo): boolean {
    if (announcement.ttlMs === 0) return table.remove(announcement.id);
    const node = this.nodeOf(announcement, from);
    if (node === undefined) return false;
    const before = table.refused;
    const changed = table.upsert(announcement.id, node, this.ctx.clock.nowMs(), announcement.ttlMs);
    if (table.refused !== before) this.stats.refused++;
    return changed;
  }

  async discover(signal: AbortSignal): Promise<DiscoveredNode[]> {
    signal.throwIfAborted();
    const table = new LiveNodeTable(BROADCAST_NODES_MAX);
    const socket = await this.listen((announcement, from) => {
      this.track(table, announcement, from);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = this.ctx.clock.setTimer(this.options.timeoutMs, () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
        const onAbort = (): void => {
          this.ctx.clock.clearTimer(timer);
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', onAbort, { once: true });
      });
    } finally {
      socket.close();
    }
    table.expire(this.ctx.clock.nowMs());
    return table.list();
  }

  async watch(onChange: (nodes: DiscoveredNode[]) => void, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const table = new LiveNodeTable(BROADCAST_NODES_MAX);
    let expiryTimer: TimerHandle | undefined;
    const armExpiry = (): void => {
      if (expiryTimer !== undefined) this.ctx.clock.clearTimer(expiryTimer);
      expiryTimer = undefined;
      const next = table.nextExpiryMs();
      if (next === undefined) return;
      expiryTimer = this.ctx.clock.setTimer(Math.max(0, next - this.ctx.clock.nowMs()), () => {
        expiryTimer = undefined;
        if (table.expire(this.ctx.clock.nowMs())) onChange(table.list());
        armExpiry();
      });
    };
    const socket = await this.listen((announcement, from) => {
      if (this.track(table, announcement, from)) onChange(table.list());
      armExpiry();
    });
    await new Promise<void>((resolve) => {
      const stop = async (): Promise<void> => {
        this.closers.delete(stop);
        signal.removeEventListener('abort', onAbort);
        if (expiryTimer !== undefined) this.ctx.clock.clearTimer(expiryTimer);
        socket.close();
        resolve();
      };
      const onAbort = (): void => void stop();
      this.closers.add(stop);
      if (signal.aborted) void stop();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  async register(self: SelfRegistration, signal: AbortSignal): Promise<Registration> {
    signal.throwIfAborted();
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (error) => {
        socket.close();
        reject(lanUnreachable(NAME, this.options.sourceAddress ?? '0.0.0.0', error));
      });
      socket.bind({ port: 0, address: this.options.sourceAddress }, () => {
        socket.removeAllListeners('error');
        socket.on('error', (error) => this.logOnce(`provider=${NAME}: socket error: ${error}`));
        socket.setBroadcast(true);
        resolve();
      });
    });
    const announcement = (ttlMs: number): Buffer =>
      sealAnnouncement(
        this.key,
        { id: self.id, address: self.address, ttlMs, meta: self.meta },
        this.ctx.clock.wallMs(),
        randomBytes(16),
      );
    const send = (packet: Buffer): Promise<void> =>
      new Promise((resolve, reject) => {
        socket.send(packet, this.options.port, this.options.address, (error) => {
          if (error) {
            this.stats.sendErrors++;
            reject(lanUnreachable(NAME, this.endpoint, error));
          } else {
            this.stats.sent++;
            resolve();
          }
        });
      });
    const ttlMs = this.options.intervalMs * TTL_INTERVALS;
    // The first announcement proves the address can be reached at all; a failure is the
    // caller's (exit 69), later ones are logged and the announcing goes on.
    try {
      await send(announcement(ttlMs));
    } catch (error) {
      socket.close();
      throw error;
    }
    let closed = false;
    let timer: TimerHandle | undefined;
    const tick = (): void => {
      timer = this.ctx.clock.setTimer(this.options.intervalMs, () => {
        if (closed) return;
        send(announcement(ttlMs)).catch((error: unknown) =>
          this.logOnce(`provider=${NAME}: announcement not sent: ${(error as Error).message}`),
        );
        tick();
      });
    };
    tick();
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      this.closers.delete(close);
      signal.removeEventListener('abort', onAbort);
      if (timer !== undefined) this.ctx.clock.clearTimer(timer);
      // A goodbye, so listeners drop this node now rather than after its ttl.
      await send(announcement(0)).catch(() => {});
      socket.close();
    };
    const onAbort = (): void => void close();
    signal.addEventListener('abort', onAbort, { once: true });
    this.closers.add(close);
    return { close };
  }

  async close(): Promise<void> {
    await Promise.all([...this.closers].map((closer) => closer()));
  }
}

export const broadcastProvider: ProviderFactory = {
  name: NAME,
  summary:
    'Nodes announce themselves on a subnet broadcast address and listen for each other; announcements are authenticated with the gossip key',
  example: 'provider=broadcast interface=eth0 port=7947',
  keys: [
    {
      name: 'port',
      required: false,
      doc: `UDP port announcements go to and are heard on (default ${BROADCAST_PORT_DEFAULT})`,
    },
    {
      name: 'address',
      required: false,
      doc: `IPv4 broadcast address to announce on (default: the interface's, else ${LIMITED_BROADCAST})`,
    },
    {
      name: 'interface',
      required: false,
      doc: 'local interface (name or address) whose subnet broadcast address is used',
    },
    {
      name: 'interval',
      required: false,
      doc: `time between announcements of a registered node (default ${BROADCAST_INTERVAL_MS_DEFAULT / 1000}s)`,
    },
    {
      name: 'timeout',
      required: false,
      doc: `how long one discover listens (default ${BROADCAST_TIMEOUT_MS_DEFAULT / 1000}s)`,
    },
  ],
  create(args, ctx) {
    const port = valueOr(args.get('port'), BROADCAST_PORT_DEFAULT, (text) =>
      portValue(NAME, 'port', text),
    );
    const intervalMs = valueOr(args.get('interval'), BROADCAST_INTERVAL_MS_DEFAULT, (text) =>
      durationValue(NAME, 'interval', text, LAN_DURATION_BOUNDS),
    );
    const timeoutMs = valueOr(args.get('timeout'), BROADCAST_TIMEOUT_MS_DEFAULT, (text) =>
      durationValue(NAME, 'timeout', text, LAN_DURATION_BOUNDS),
    );
    const addressText = args.get('address');
    const interfaceText = args.get('interface');
    if (addressText !== undefined && !isIPv4(addressText)) {
      throw badValue(NAME, 'address', `must be an IPv4 broadcast address, got "${addressText}"`);
    }
    let address = addressText ?? LIMITED_BROADCAST;
    let sourceAddress: string | undefined;
    if (interfaceText !== undefined) {
      const local = interfaceKey(NAME, 'interface', interfaceText);
      if (local.ipv4 === undefined) {
        throw badValue(NAME, 'interface', `"${interfaceText}" has no IPv4 address to broadcast on`);
      }
      sourceAddress = local.ipv4.address;
      if (addressText === undefined) {
        address = broadcastAddressOf(local.ipv4.address, local.ipv4.netmask);
      }
    }
    if (ctx.gossipKey === undefined || ctx.gossipKey.length === 0) {
      throw new RdbnetError(
        ErrorCode.DiscoverySyntax,
        `provider=${NAME}: needs the gossip key to authenticate announcements, and there is none`,
        { hint: 'give the node its gossip keyring (certs dir), or use another provider' },
      );
    }
    const options: BroadcastOptions = { port, address, intervalMs, timeoutMs };
    if (sourceAddress !== undefined) options.sourceAddress = sourceAddress;
    return new BroadcastProvider(options, ctx, ctx.gossipKey);
  },
};
