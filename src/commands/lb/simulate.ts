import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { keyValueTable } from '../../cli/output.ts';
import { ConfigFieldError, ErrorCode, RdbnetError } from '../../core/errors.ts';
import {
  type BalancerConfig,
  DEFAULT_BALANCER_CONFIG,
  parseRemoval,
  parseSlow,
  type SimulationResult,
  STRATEGIES,
  type StrategyName,
  simulate,
  validateBalancerConfig,
} from '../../core/lb/index.ts';

/** The flag that sets each balancer setting, for usage errors. */
const FLAG_OF_FIELD: Readonly<Record<string, string>> = {
  'balancer.maglevTableSize': '--table-size',
  'balancer.boundedLoadFactor': '--load-factor',
  'balancer.ringVnodesPerWeight': '--vnodes',
};

export default class LbSimulate extends RdbnetCommand<SimulationResult> {
  static override summary =
    'Distribution and remap of a strategy over simulated nodes, before a change is made.';
  static override description =
    'Picks --keys keys (key-0, key-1, …) over nodes n1…nN and reports keys per node (max/mean, ' +
    'stddev); with --remove and/or --add, the share of keys whose first pick changed against the ' +
    'least any strategy must move; with --slow ID=FACTOR, runs --requests requests on virtual time ' +
    'through a latency model (10 ms × U(0.5, 1.5) per request, 8 at once per node, Poisson arrivals ' +
    'at 50% of capacity) with that node FACTOR times slower, and reports the share it still got. ' +
    'Deterministic: the same flags give the same figures.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --strategy maglev --nodes 100 --keys 1000000 --remove 1',
    '<%= config.bin %> <%= command.id %> --strategy ring --nodes 10 --keys 100000 --remove n3 --add 2 --json',
    '<%= config.bin %> <%= command.id %> --strategy p2c-ewma --nodes 10 --slow n1=10 --requests 100000',
  ];
  static override flags = {
    strategy: Flags.string({
      char: 's',
      description: 'Balancing strategy.',
      options: [...STRATEGIES],
      default: 'maglev',
    }),
    nodes: Flags.integer({
      description: 'Simulated nodes, named n1…nN.',
      default: 10,
      min: 1,
      max: 10_000,
    }),
    keys: Flags.integer({
      description: 'Keys to distribute.',
      default: 100_000,
      min: 1,
      max: 10_000_000,
    }),
    remove: Flags.string({
      description: 'Nodes to remove: a count (the last ones) or ids (n3,n7).',
      helpValue: 'count|ids',
    }),
    add: Flags.integer({ description: 'Nodes to add (n(N+1)…).', default: 0, min: 0, max: 10_000 }),
    slow: Flags.string({
      description: 'Make node ID FACTOR times slower and measure the share of requests it gets.',
      helpValue: 'ID=FACTOR',
    }),
    requests: Flags.integer({
      description: 'Requests through the latency model (with --slow).',
      default: 100_000,
      min: 1,
      max: 10_000_000,
    }),
    seed: Flags.integer({
      description: 'Seed of the simulation.',
      default: 1,
      min: 0,
      max: 2 ** 32 - 1,
    }),
    'table-size': Flags.integer({
      description: 'Maglev table size (a prime).',
      default: 65_537,
      min: 3,
      max: 16_777_259,
    }),
    'load-factor': Flags.string({
      description: 'Bounded-load c: no node above c × the mean (a number ≥ 1).',
      default: '1.25',
      helpValue: 'c',
    }),
    vnodes: Flags.integer({
      description: 'Ring points per node (ring, bounded-load).',
      default: 160,
      min: 1,
      max: 10_000,
    }),
  };

  protected override async execute(): Promise<SimulationResult> {
    const { flags } = await this.parse(LbSimulate);
    const config: Partial<BalancerConfig> = {
      maglevTableSize: flags['table-size'],
      boundedLoadFactor: Number(flags['load-factor']),
      ringVnodesPerWeight: flags.vnodes,
    };
    try {
      validateBalancerConfig({ ...DEFAULT_BALANCER_CONFIG, ...config });
    } catch (error) {
      // A bad value of a flag is a usage error (exit 64), whatever the core calls it.
      if (!(error instanceof ConfigFieldError)) throw error;
      const flag = FLAG_OF_FIELD[error.field] ?? error.field;
      throw new RdbnetError(ErrorCode.Usage, `${flag} ${error.problem}`, {
        ...(error.hint === undefined ? {} : { hint: error.hint }),
      });
    }
    return simulate({
      strategy: flags.strategy as StrategyName,
      nodes: flags.nodes,
      keys: flags.keys,
      remove: flags.remove === undefined ? [] : parseRemoval(flags.remove, flags.nodes),
      add: flags.add,
      slow: flags.slow === undefined ? null : parseSlow(flags.slow),
      requests: flags.requests,
      seed: flags.seed,
      config,
    });
  }

  protected override render(result: SimulationResult): void {
    const percent = (share: number) => `${(share * 100).toFixed(2)}%`;
    const rows: [string, string | number][] = [
      ['strategy', result.strategy],
      ['nodes / keys', `${result.nodes} / ${result.keys}`],
      ['keys per node, max / mean', result.maxOverMean.toFixed(4)],
      ['keys per node, min / mean', result.minOverMean.toFixed(4)],
      [
        'stddev of keys per node',
        `${result.stddev} (${percent(result.relativeStddev)} of the mean)`,
      ],
    ];
    if (result.movedFraction !== null && result.idealMovedFraction !== null) {
      const change = [
        result.removed.length > 0 ? `removing ${result.removed.join(',')}` : '',
        result.added.length > 0 ? `adding ${result.added.join(',')}` : '',
      ]
        .filter(Boolean)
        .join(' and ');
      rows.push([`keys moved by ${change}`, percent(result.movedFraction)]);
      rows.push(['least possible', percent(result.idealMovedFraction)]);
      if (result.after !== null) {
        rows.push([
          `after: max / mean over ${result.after.nodes}`,
          result.after.maxOverMean.toFixed(4),
        ]);
      }
    }
    if (result.slow !== null && result.slowShare !== null) {
      rows.push([
        `share of ${result.requests} requests to ${result.slow.id} (${result.slow.factor}× slower)`,
        `${percent(result.slowShare)} (even: ${percent(1 / result.nodes)})`,
      ]);
      rows.push(['latency p50 / p99', `${result.latencyP50Ms} / ${result.latencyP99Ms} ms`]);
    }
    this.log(keyValueTable(rows));
  }
}
