/**
 * The library API: `import { startNode } from 'rdbnet'` runs a whole node in-process — the
 * same RdbnetNode `rdbnet node start` runs — and gives its data plane, membership and leader
 * events a typed face. It holds no logic of its own (practice 11): every call goes to the
 * node's DataPlane (src/core/dataplane) or to the node facade.
 */
import { type NodeConfigFile, resolveNodeConfigWithSources } from './core/config/node-config.ts';
import type {
  AckResult,
  DataPlane,
  DataPlaneMember,
  GatherResult,
  ManyOptions,
  MessageOptions,
  QuorumResult,
  RequestResult,
  SendResult,
  Target,
} from './core/dataplane/dataplane.ts';
import type { DataPlaneLimits } from './core/dataplane/limits.ts';
import type { TopicHandler } from './core/dataplane/topics.ts';
import { assert, ErrorCode, RdbnetError } from './core/errors.ts';
import type { GraphqlSource } from './core/graphql/admin-requests.ts';
import type { MetricsRegistry } from './core/metrics/registry.ts';
import { RdbnetNode } from './core/node/node.ts';
import { createLogger, type Logger } from './core/runtime/log.ts';

export type { Principal } from './core/api/authorization.ts';
export type {
  AckResult,
  DataPlaneLimits,
  DataPlaneMember,
  Delivery,
  GatherResult,
  ManyOptions,
  MessageOptions,
  QuorumResult,
  RequestResult,
  SendResult,
  Target,
} from './core/dataplane/index.ts';
export { DATA_PLANE_LIMITS_DEFAULT, ECHO_TOPIC, QuorumError } from './core/dataplane/index.ts';
export type { TopicAnswer, TopicDelivery, TopicHandler } from './core/dataplane/topics.ts';
export { ErrorCode, isRdbnetError, RdbnetError } from './core/errors.ts';
export {
  attachGraphqlWs,
  executeGraphql,
  GRAPHQL_WS_PATH,
  type GraphqlRequest,
  type GraphqlSource,
  type GraphqlWsHandle,
  type GraphqlWsOptions,
} from './core/graphql/index.ts';
export type { StrategyName } from './core/lb/strategy.ts';
export { listenMetrics, METRICS_PATH, metricsRequestListener } from './core/metrics/http.ts';
export { MetricsRegistry } from './core/metrics/registry.ts';
export type { Logger } from './core/runtime/log.ts';
export type { PriorityName } from './core/transport/priority.ts';

/**
 * A node's configuration as the library takes it: the fields of a `--config` file
 * (`rdbnet node config --json` prints every one), e.g. `{ id, listen, join, groups,
 * dataDir, certsDir, insecure }`. Precedence as for `rdbnet node start`: these values, then
 * the RDBNET_* environment (of `env`), then presets and defaults.
 */
export type NodeConfigInput = NodeConfigFile;

export interface StartNodeOptions {
  /** The environment RDBNET_* values are read from. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where the node logs. Default JSON lines on stderr at the config's logLevel. */
  logger?: Logger;
  /** The data plane's bounds; DATA_PLANE_LIMITS_DEFAULT for what is not given. */
  dataPlane?: Partial<DataPlaneLimits>;
}

export interface MemberEvent {
  /** join, suspect, alive, dead, left or update. */
  type: string;
  id: string;
  address: string;
}

export interface LeaderEvent {
  /** The leader's node id; '' while none is known. */
  leader: string;
  term: number;
}

type Listener<T> = (event: T) => void;

/** waitForMembers(): how long by default and at most, and how often it looks. */
const MEMBERS_WAIT_DEFAULT_MS = 10_000;
const MEMBERS_WAIT_MAX_MS = 600_000;
const MEMBERS_POLL_MS = 50;

/** A running node, in this process. */
export class Node {
  private readonly node: RdbnetNode;
  private readonly plane: DataPlane;
  private readonly leaderListeners = new Set<Listener<LeaderEvent>>();
  private lastLeader: LeaderEvent = { leader: '', term: 0 };

  /** @internal use startNode() */
  constructor(
    node: RdbnetNode,
    leaderEvents: { subscribe(listener: Listener<LeaderEvent>): void },
  ) {
    this.node = node;
    const plane = node.dataPlane;
    assert(plane !== null, 'a started node has a data plane');
    this.plane = plane;
    leaderEvents.subscribe((event) => {
      this.lastLeader = event;
      for (const listener of this.leaderListeners) listener(event);
    });
  }

  get id(): string {
    return this.node.id;
  }

  /** host:port others reach this node at. */
  get address(): string {
    return this.node.address;
  }

  /** The Raft leader this node knows of; '' while none is known. */
  get leader(): string {
    return this.lastLeader.leader;
  }

  /** Registers the handler of `topic` (replacing one); returns a function that removes it. */
  handle(topic: string, handler: TopicHandler): () => void {
    return this.plane.register(topic, handler);
  }

  send(
    target: Target,
    topic: string,
    payload: Uint8Array | string,
    options?: MessageOptions,
  ): Promise<SendResult> {
    return this.plane.send(target, topic, payload, options);
  }

  request(
    target: Target,
    topic: string,
    payload: Uint8Array | string,
    options?: MessageOptions,
  ): Promise<RequestResult> {
    return this.plane.request(target, topic, payload, options);
  }

  broadcast(
    topic: string,
    payload: Uint8Array | string,
    options?: ManyOptions,
  ): Promise<AckResult> {
    return this.plane.broadcast(topic, payload, options);
  }

  multicast(
    group: string,
    topic: string,
    payload: Uint8Array | string,
    options?: ManyOptions,
  ): Promise<AckResult> {
    return this.plane.multicast(group, topic, payload, options);
  }

  scatterGather(
    targets: Target,
    topic: string,
    payload: Uint8Array | string,
    options?: ManyOptions & { minResponses?: number },
  ): Promise<GatherResult> {
    return this.plane.scatterGather(targets, topic, payload, options);
  }

  quorum(
    targets: Target,
    topic: string,
    payload: Uint8Array | string,
    options: ManyOptions & { acks: number },
  ): Promise<QuorumResult> {
    return this.plane.quorum(targets, topic, payload, options);
  }

  fanOut(
    targets: Target,
    topic: string,
    payload: Uint8Array | string,
    options?: ManyOptions,
  ): Promise<GatherResult> {
    return this.plane.fanOut(targets, topic, payload, options);
  }

  /** The gossip view, this node included. */
  members(): DataPlaneMember[] {
    return this.node.members();
  }

  /**
   * Resolves once `count` members (this node included) are alive in this node's gossip
   * view; RDB_DEADLINE_PASSED after `timeoutMs` (default 10 s, at most 10 minutes).
   */
  async waitForMembers(count: number, timeoutMs = MEMBERS_WAIT_DEFAULT_MS): Promise<void> {
    if (!Number.isInteger(count) || count < 1) {
      throw new RdbnetError(ErrorCode.Usage, `count must be a positive integer, got ${count}`);
    }
    if (!(timeoutMs > 0 && timeoutMs <= MEMBERS_WAIT_MAX_MS)) {
      throw new RdbnetError(ErrorCode.Usage, `timeoutMs must be from 1 to ${MEMBERS_WAIT_MAX_MS}`);
    }
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const alive = this.members().filter((m) => m.isSelf || m.state === 'alive').length;
      if (alive >= count) return;
      if (performance.now() >= deadline) {
        throw new RdbnetError(
          ErrorCode.DeadlinePassed,
          `${alive} of ${count} members alive after ${timeoutMs} ms`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, MEMBERS_POLL_MS));
    }
  }

  /** Membership events about other members; returns the unsubscribe. */
  onMember(listener: Listener<MemberEvent>): () => void {
    return this.node.onMemberEvent(listener);
  }

  /** Leader changes this node sees; returns the unsubscribe. */
  onLeader(listener: Listener<LeaderEvent>): () => void {
    this.leaderListeners.add(listener);
    return () => this.leaderListeners.delete(listener);
  }

  /** The node's Prometheus metrics: serve them with metricsRequestListener(node.metrics). */
  get metrics(): MetricsRegistry {
    return this.node.metrics;
  }

  /** What executeGraphql and attachGraphqlWs run on: this node and its admin handler. */
  get graphqlSource(): GraphqlSource {
    const handler = this.node.requestHandler;
    return handler === null ? { admin: this.node } : { admin: this.node, handler };
  }

  /** Every counter `rdbnet node status` shows (dataplane.*, gossip.*, connections.* …). */
  stats(): Record<string, number> {
    return this.node.status().counters;
  }

  /** Leaves gossip and stops, within a few seconds. */
  stop(): Promise<void> {
    return this.node.stop();
  }
}

/**
 * Starts a node in this process from `config` (validated first: a bad field is
 * RDB_CONFIG_INVALID naming it) and resolves once it listens and gossips.
 */
export async function startNode(
  config: NodeConfigInput = {},
  options: StartNodeOptions = {},
): Promise<Node> {
  const resolved = resolveNodeConfigWithSources({
    file: config,
    env: options.env ?? process.env,
    filePath: 'startNode()',
  }).config;
  const logger = options.logger ?? createLogger({ level: resolved.logLevel });
  const listeners = new Set<Listener<LeaderEvent>>();
  // Leader changes can arrive while the node starts; the last one is replayed to the facade.
  let early: LeaderEvent | null = null;
  const node = await RdbnetNode.start(resolved, logger, {
    ...(options.dataPlane === undefined ? {} : { dataPlane: options.dataPlane }),
    onLeaderChange: (leader, term) => {
      const event = { leader, term };
      if (listeners.size === 0) early = event;
      for (const listener of listeners) listener(event);
    },
  });
  return new Node(node, {
    subscribe(listener) {
      listeners.add(listener);
      if (early !== null) listener(early);
    },
  });
}
