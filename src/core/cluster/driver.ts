/**
 * RaftDriver: runs the pure Raft core (RawNode) inside a node. It ticks it every `tickMs`
 * on the injected clock's timers, feeds it messages from peers, and handles every Ready in
 * the one safe order:
 *
 * 1. persist snapshot, entries and hard state with the storage (FileRaftStorage in a node,
 *    MemoryStorage in the simulator) and wait for the fsync;
 * 2. only then hand the Ready's messages to the transport (`send`);
 * 3. apply the snapshot and committed entries to the cluster configuration state machine;
 * 4. advance, and compact the log when the core says so.
 *
 * Proposals made here (leader only) resolve when their entry is applied, with the time from
 * proposal to apply; a lost leadership or a deadline rejects them.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { AppliedChange } from '../membership/raft/cluster-config.ts';
import {
  ClusterConfig,
  type ConfigCommand,
  encodeConfigCommand,
} from '../membership/raft/cluster-config.ts';
import type { RaftConfig } from '../membership/raft/config.ts';
import { RaftProposalError } from '../membership/raft/raft.ts';
import { type BasicStatus, type RaftStatus, RawNode } from '../membership/raft/raw-node.ts';
import { type PersistentRaftStorage, persistReady } from '../membership/raft/storage.ts';
import type { ConfChange, Entry, Message, NodeId, RaftRole } from '../membership/raft/types.ts';
import { decodeConfChange, NONE } from '../membership/raft/types.ts';
import {
  type Clock,
  type Logger,
  type Random,
  type RepeatingTimer,
  setRepeating,
  type TimerHandle,
  type Timers,
  timersOf,
} from '../runtime/index.ts';

export interface RaftDriverEvents {
  /** The leader this node knows changed (NONE while there is none). */
  onLeaderChange?(leader: NodeId, term: number): void;
  /** One configuration change was applied (every member sees the same sequence). */
  onApplied?(change: AppliedChange): void;
  /** The state machine was replaced by a snapshot from the leader. */
  onRestored?(config: ClusterConfig): void;
  /** After every tick and every handled Ready: a chance for leader housekeeping. */
  onTick?(): void;
  /** Storage failed: what is on disk is unknown, so the node must stop. */
  onFatal(error: Error): void;
}

/** What the driver persists to: the Raft storage, and a close when it holds files. */
export interface RaftDriverStorage extends PersistentRaftStorage {
  /** Called once by stop(), after the last Ready; absent for storage that holds nothing open. */
  close?(): void | Promise<void>;
}

export interface RaftDriverInit {
  id: NodeId;
  storage: RaftDriverStorage;
  raft?: Partial<RaftConfig>;
  tickMs: number;
  random: Random;
  /** Time, and through timersOf the ticker and proposal deadlines: the simulator's or the system's. */
  clock: Clock;
  log: Logger;
  /** Sends one Ready's messages for one peer, in order. Delivery is best effort. */
  send(to: NodeId, messages: Message[]): void;
  events: RaftDriverEvents;
}

export interface ProposalResult {
  index: number;
  term: number;
  /** From the proposal to its apply on this node (the leader). */
  commitMs: number;
}

interface ProposalWaiter {
  term: number;
  proposedAtMs: number;
  timer: TimerHandle;
  resolve(result: ProposalResult): void;
  reject(error: RdbnetError): void;
}

/** Proposals waiting for their apply at once; more are refused (they would only queue). */
export const PROPOSALS_WAITING_MAX = 1024;

export class RaftDriver {
  config: ClusterConfig;
  private readonly init: RaftDriverInit;
  private readonly node: RawNode;
  private readonly waiters = new Map<number, ProposalWaiter>();
  private readonly timers: Timers;
  private ticker: RepeatingTimer | null = null;
  private processing: Promise<void> | null = null;
  private scheduled = false;
  private stopped = false;
  private failed: Error | null = null;
  private lastLeader: NodeId = NONE;
  /** Member ids named by add entries in the log that are not applied yet. */
  private unapplied = new Set<NodeId>();

  constructor(init: RaftDriverInit) {
    this.init = init;
    this.timers = timersOf(init.clock);
    // Restart: the state machine is the latest snapshot; the core hands out every committed
    // entry after it again, and they are applied on top (README "Using it").
    this.config = ClusterConfig.fromSnapshot(init.storage.snapshot());
    this.node = new RawNode({
      id: init.id,
      storage: init.storage,
      config: init.raft ?? {},
      random: init.random,
    });
  }

  get id(): NodeId {
    return this.node.id;
  }

  get raftConfig(): RaftConfig {
    return this.node.config;
  }

  get tickMs(): number {
    return this.init.tickMs;
  }

  get leader(): NodeId {
    return this.node.basicStatus().lead;
  }

  get term(): number {
    return this.node.basicStatus().term;
  }

  get role(): RaftRole {
    return this.node.basicStatus().role;
  }

  /** Term, leader, role, commit and applied index: the cheap part of status(). */
  basicStatus(): BasicStatus {
    return this.node.basicStatus();
  }

  get isLeader(): boolean {
    return this.node.basicStatus().role === 'leader';
  }

  /** Member ids this node may accept Raft traffic from: applied members and pending adds. */
  isKnownMember(id: NodeId): boolean {
    return this.config.isMember(id) || this.unapplied.has(id);
  }

  start(): void {
    if (this.ticker !== null || this.stopped) return;
    this.ticker = setRepeating(this.timers, this.init.tickMs, () => {
      if (this.stopped || this.failed !== null) return;
      this.node.tick();
      this.schedule();
      this.init.events.onTick?.();
    });
    this.schedule();
  }

  /** Messages from one peer; throws RDB_MESSAGE_MALFORMED for one the core refuses. */
  step(messages: readonly Message[]): void {
    if (this.stopped) return;
    for (const message of messages) this.node.step(message);
    this.schedule();
  }

  campaign(): void {
    this.node.campaign();
    this.schedule();
  }

  transferLeader(to: NodeId): void {
    this.node.transferLeader(to);
    this.schedule();
  }

  reportUnreachable(id: NodeId): void {
    if (this.stopped) return;
    this.node.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, succeeded: boolean): void {
    if (this.stopped) return;
    this.node.reportSnapshot(id, succeeded);
    this.schedule();
  }

  status(): RaftStatus {
    return this.node.status();
  }

  /** Proposes a configuration command; resolves once applied here. Leader only. */
  proposeCommand(command: ConfigCommand, timeoutMs: number): Promise<ProposalResult> {
    const data = encodeConfigCommand(command);
    return this.proposeWith(() => this.node.propose(data), timeoutMs);
  }

  /** Proposes a membership change; resolves once applied here. Leader only. */
  proposeConfChange(change: ConfChange, timeoutMs: number): Promise<ProposalResult> {
    return this.proposeWith(() => this.node.proposeConfChange(change), timeoutMs);
  }

  private proposeWith(propose: () => void, timeoutMs: number): Promise<ProposalResult> {
    if (this.stopped || this.failed !== null) {
      return Promise.reject(new RdbnetError(ErrorCode.NotLeader, 'this node is stopping'));
    }
    const before = this.node.basicStatus();
    if (before.role !== 'leader') {
      return Promise.reject(
        new RdbnetError(
          ErrorCode.NotLeader,
          `${this.id} is not the leader (leader: ${before.lead || 'none'})`,
        ),
      );
    }
    if (this.waiters.size >= PROPOSALS_WAITING_MAX) {
      return Promise.reject(
        new RdbnetError(ErrorCode.InflightLimit, `${this.waiters.size} proposals already wait`),
      );
    }
    try {
      propose();
    } catch (error) {
      return Promise.reject(error);
    }
    // A leader appends at once: the proposal is the last entry of its log now.
    const after = this.node.basicStatus();
    const index = after.lastIndex;
    const proposedAtMs = this.init.clock.nowMs();
    this.schedule();
    return new Promise<ProposalResult>((resolve, reject) => {
      const timer = this.timers.setTimer(timeoutMs, () => {
        this.waiters.delete(index);
        reject(
          new RdbnetError(
            ErrorCode.RequestTimeout,
            `entry ${index} was not committed within ${timeoutMs} ms (no quorum?)`,
          ),
        );
      });
      this.waiters.set(index, { term: after.term, proposedAtMs, timer, resolve, reject });
    });
  }

  /** Stops ticking, lets the Ready being persisted finish, closes the storage. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.ticker?.stop();
    this.ticker = null;
    await this.processing?.catch(() => {});
    this.rejectWaiters(new RdbnetError(ErrorCode.NotLeader, 'this node is stopping'));
    await this.init.storage.close?.();
  }

  // ---------------------------------------------------------------- the Ready loop

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      if (this.processing === null) {
        this.processing = this.drain().finally(() => {
          this.processing = null;
        });
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (!this.stopped && this.failed === null && this.node.hasReady()) {
        const ready = this.node.ready();
        // 1. durable before anything of this Ready leaves the node
        await persistReady(this.init.storage, ready);
        if (this.stopped) return;
        // 2. send
        if (ready.messages.length > 0) this.sendAll(ready.messages);
        if (ready.softState !== undefined && ready.softState.lead !== this.lastLeader) {
          this.lastLeader = ready.softState.lead;
          this.init.events.onLeaderChange?.(this.lastLeader, this.node.basicStatus().term);
        }
        // 3. apply
        if (ready.snapshot !== undefined) {
          this.config = ClusterConfig.fromSnapshot(ready.snapshot);
          this.rejectWaitersUpTo(
            ready.snapshot.metadata.index,
            new RdbnetError(ErrorCode.NoLeader, 'outcome unknown: replaced by a snapshot'),
          );
          this.init.events.onRestored?.(this.config);
        }
        for (const entry of ready.committedEntries) this.apply(entry);
        // 4.
        this.node.advance();
        if (ready.entries.length > 0 || ready.committedEntries.length > 0 || ready.snapshot) {
          this.refreshUnapplied();
        }
        if (this.node.compactionDue()) {
          this.node.compact(this.config.appliedIndex, this.config.encode());
        }
        this.init.events.onTick?.();
      }
    } catch (error) {
      this.failed = error as Error;
      this.rejectWaiters(new RdbnetError(ErrorCode.Internal, 'raft storage failed'));
      this.init.log.error('raft storage failed; the node must stop', {
        reason: (error as Error).message,
      });
      this.init.events.onFatal(error as Error);
    }
  }

  private sendAll(messages: Message[]): void {
    const byPeer = new Map<NodeId, Message[]>();
    for (const message of messages) {
      let list = byPeer.get(message.to);
      if (list === undefined) {
        list = [];
        byPeer.set(message.to, list);
      }
      list.push(message);
    }
    for (const [to, list] of byPeer) this.init.send(to, list);
  }

  private apply(entry: Entry): void {
    const change = this.config.apply(entry);
    const waiter = this.waiters.get(entry.index);
    if (waiter !== undefined) {
      this.waiters.delete(entry.index);
      this.timers.clearTimer(waiter.timer);
      if (waiter.term === entry.term) {
        waiter.resolve({
          index: entry.index,
          term: entry.term,
          commitMs: this.init.clock.nowMs() - waiter.proposedAtMs,
        });
      } else {
        waiter.reject(
          new RdbnetError(
            ErrorCode.NoLeader,
            `entry ${entry.index} was replaced: leadership changed before it committed`,
          ),
        );
      }
    }
    if (change !== undefined) this.init.events.onApplied?.(change);
  }

  private refreshUnapplied(): void {
    const storage = this.init.storage;
    const lo = Math.max(this.config.appliedIndex + 1, storage.firstIndex());
    const hi = storage.lastIndex();
    const found = new Set<NodeId>();
    if (lo <= hi) {
      for (const entry of storage.entries(lo, hi + 1, Number.MAX_SAFE_INTEGER)) {
        if (entry.type !== 'confChange') continue;
        try {
          const change = decodeConfChange(entry.data);
          if (change.type !== 'removeNode') found.add(change.nodeId);
        } catch {
          // Skipped when applied, too.
        }
      }
    }
    this.unapplied = found;
  }

  private rejectWaiters(error: RdbnetError): void {
    for (const waiter of this.waiters.values()) {
      this.timers.clearTimer(waiter.timer);
      waiter.reject(error);
    }
    this.waiters.clear();
  }

  private rejectWaitersUpTo(index: number, error: RdbnetError): void {
    for (const [at, waiter] of this.waiters) {
      if (at > index) continue;
      this.waiters.delete(at);
      this.timers.clearTimer(waiter.timer);
      waiter.reject(error);
    }
  }
}

export function isRetryableProposalError(error: unknown): boolean {
  return (
    error instanceof RaftProposalError &&
    (error.reason === 'conf-change-pending' ||
      error.reason === 'no-commit-in-term' ||
      error.reason === 'transfer-in-progress')
  );
}
