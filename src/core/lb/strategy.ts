/** The strategies, by the names the command line and the configuration use. */
export const STRATEGIES = [
  'round-robin',
  'weighted-round-robin',
  'random',
  'least-connections',
  'p2c',
  'ring',
  'maglev',
  'rendezvous',
  'bounded-load',
  'p2c-ewma',
] as const;

export type StrategyName = (typeof STRATEGIES)[number];

/** Strategies that hash a key: the same key and the same endpoints give the same answer on
 * every node (bounded-load: as long as no load is recorded). */
export const KEY_STRATEGIES: ReadonlySet<StrategyName> = new Set<StrategyName>([
  'ring',
  'maglev',
  'rendezvous',
  'bounded-load',
]);

/** What each strategy does, for --help and docs. */
export const STRATEGY_SUMMARIES: Record<StrategyName, string> = {
  'round-robin': 'each endpoint in turn (weights ignored)',
  'weighted-round-robin': 'smooth weighted round robin (nginx): turns in proportion to weight',
  random: 'uniform, or in proportion to weight',
  'least-connections': 'the fewest requests in flight per unit of weight (full scan)',
  p2c: 'power of two choices: two at random, the one with fewer requests in flight (Envoy)',
  ring: 'consistent hashing on a ring with virtual nodes in proportion to weight (ketama)',
  maglev: 'Maglev lookup table (prime size, 65,537 by default): O(1) and even',
  rendezvous: 'highest random weight: the best score of key × node, weighted',
  'bounded-load': 'ring hashing with bounded loads: nobody above c × the mean (c = 1.25)',
  'p2c-ewma':
    'power of two choices by cost: peak-EWMA latency × (in flight + 1), error rate, CPU/memory (Finagle)',
};

export function isStrategyName(name: string): name is StrategyName {
  return (STRATEGIES as readonly string[]).includes(name);
}
