/**
 * `rdbnet lb select`: one service with two sources of candidates — a given list (weights as
 * written) or a node's gossip view (the live members). The same membership and the same key
 * give the same answer on every node: hashing strategies see only the sorted ids of the
 * alive members, all of weight 1, because health scores are each node's own measurement and
 * would differ from node to node. The other strategies weigh members by their health score
 * (and p2c-ewma starts from the node's measured RTTs).
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import { type Random, systemRandom } from '../runtime/index.ts';
import { Balancer } from './balancer.ts';
import type { Endpoint } from './endpoints.ts';
import { KEY_STRATEGIES, type StrategyName } from './strategy.ts';

export interface SelectRequest {
  strategy: StrategyName;
  /** The request's key; required by the hashing strategies, ignored by the others. */
  key: string | null;
  /** Distinct nodes wanted, in preference order. */
  count: number;
  random?: Random;
}

export interface SelectResult {
  strategy: StrategyName;
  key: string | null;
  /** Chosen nodes, best first. */
  nodes: string[];
  /** nodes[0], for scripts written against the first contract. */
  selected: string;
  /** How many nodes there were to choose from. */
  candidates: number;
}

/** A gossip member as `cluster members` reports it. */
export interface MemberCandidate {
  id: string;
  address: string;
  state: string;
  score: number;
  rttMs: number | null;
}

export interface LiveSelectResult extends SelectResult {
  /** host:port of each chosen node, in the same order. */
  addresses: string[];
  /** Members left out, by reason: dead, left, suspect (draining), score 0 (unavailable). */
  excluded: { id: string; reason: string }[];
}

function usage(message: string, hint?: string): never {
  throw new RdbnetError(ErrorCode.Usage, message, hint === undefined ? undefined : { hint });
}

/** Checks what the request asks before any node is chosen (or asked). */
export function validateSelect(request: SelectRequest): void {
  if (KEY_STRATEGIES.has(request.strategy) && request.key === null) {
    usage(
      `strategy ${request.strategy} hashes a key: give --key`,
      'e.g. --key user:42; or use a strategy without a key, such as p2c',
    );
  }
  if (!Number.isInteger(request.count) || request.count < 1) {
    usage(`--count must be a positive integer, got ${request.count}`);
  }
}

/** Over a list of endpoints (ids with weights), in-process. */
export function selectFromList(
  endpoints: readonly Endpoint[],
  request: SelectRequest,
): SelectResult {
  validateSelect(request);
  const balancer = new Balancer({
    strategy: request.strategy,
    endpoints,
    random: request.random ?? systemRandom,
  });
  return choose(balancer, request, new Map());
}

/** Over a node's gossip view: the alive members only. */
export function selectFromMembers(
  members: readonly MemberCandidate[],
  request: SelectRequest,
): LiveSelectResult {
  validateSelect(request);
  const hashing = KEY_STRATEGIES.has(request.strategy);
  const excluded: { id: string; reason: string }[] = [];
  const endpoints: Endpoint[] = [];
  const latencies = new Map<string, number>();
  for (const member of members) {
    if (member.state !== 'alive') {
      excluded.push({
        id: member.id,
        reason: member.state === 'suspect' ? 'suspect (draining)' : member.state,
      });
      continue;
    }
    if (!hashing && !(member.score > 0)) {
      excluded.push({ id: member.id, reason: 'health score 0' });
      continue;
    }
    endpoints.push({ id: member.id, weight: hashing ? 1 : member.score });
    if (member.rttMs !== null && member.rttMs >= 0) latencies.set(member.id, member.rttMs);
  }
  if (endpoints.length === 0) {
    const why = excluded.map((entry) => `${entry.id} ${entry.reason}`).join(', ');
    throw new RdbnetError(
      ErrorCode.LbNoCandidates,
      `no live member to choose from${why === '' ? '' : ` (${why})`}`,
      { hint: 'see `rdbnet cluster members`' },
    );
  }
  const balancer = new Balancer({
    strategy: request.strategy,
    endpoints,
    random: request.random ?? systemRandom,
  });
  const result = choose(balancer, request, latencies);
  const addressOf = new Map(members.map((member) => [member.id, member.address]));
  return {
    ...result,
    addresses: result.nodes.map((id) => addressOf.get(id) ?? ''),
    excluded,
  };
}

function choose(
  balancer: Balancer,
  request: SelectRequest,
  latencies: ReadonlyMap<string, number>,
): SelectResult {
  if (request.count > balancer.size) {
    usage(
      `--count ${request.count} is more than the ${balancer.size} candidate node${balancer.size === 1 ? '' : 's'}`,
    );
  }
  if (request.strategy === 'p2c-ewma' && latencies.size > 0) {
    // Start from what the node measured; members without an RTT (the node itself) count as
    // the median, neither favoured nor avoided.
    const sorted = [...latencies.values()].sort((a, b) => a - b);
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    for (const { id } of balancer.endpoints) {
      balancer.start(id);
      balancer.finish(id, { ok: true, latencyMs: latencies.get(id) ?? median });
    }
  }
  const key = request.key ?? undefined;
  const nodes = balancer.pickN(request.count, key);
  return {
    strategy: request.strategy,
    key: request.key,
    nodes,
    selected: nodes[0]!,
    candidates: balancer.size,
  };
}
