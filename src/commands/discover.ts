import { Args, Flags } from '@oclif/core';
import { RdbnetCommand } from '../cli/base-command.ts';
import { certsDirFlag, certsDirOf } from '../cli/certs-flags.ts';
import { printJsonLine, table } from '../cli/output.ts';
import {
  closeSources,
  type DiscoveredNode,
  type DiscoveryEvent,
  openSources,
  PROVIDERS,
  type ProviderContext,
  resolveSources,
  WATCH_INTERVAL_MS_DEFAULT,
  WATCH_INTERVAL_MS_MAX,
  WATCH_INTERVAL_MS_MIN,
  watchSources,
} from '../core/discovery/index.ts';
import { ErrorCode, RdbnetError } from '../core/errors.ts';
import { gossipKeyringPath } from '../core/node/gossip.ts';
import { systemClock } from '../core/runtime/index.ts';
import { loadKeyring } from '../core/security/keyring.ts';

export interface DiscoverResult {
  /** The provider's name; `multiple` when several entries were given; `addresses` for plain ones. */
  provider: string;
  nodes: DiscoveredNode[];
  /** Entries that failed while others answered (each also a warning on stderr). */
  failures: { entry: string; provider: string; code: string; message: string }[];
}

export default class Discover extends RdbnetCommand<DiscoverResult> {
  static override summary = 'Find peers through a discovery provider (go-discover syntax).';
  static override description =
    'Each argument is a spec, `provider=NAME key=value ...` (quote it), or plain host:port addresses; several are ' +
    'asked at once and their answers merged (de-duplicated by address). Prints a table (address, id, source, meta); ' +
    '--json prints {"provider", "nodes": [{"address", "id", "source", "meta"}], "failures"}; --format addresses prints ' +
    'one host:port a line, for `| rdbnet cluster join --seeds -`. --watch prints NDJSON events ' +
    '{"event": "added"|"removed", "node": {...}} as the list changes, until SIGINT. Exit 64 for a bad spec ' +
    '(nothing is asked), 69 when a source cannot be reached, 1 when nothing is found. ' +
    `Providers: ${[...PROVIDERS.keys()].join(', ')}.`;
  static override examples = [
    '<%= config.bin %> <%= command.id %> "provider=dns name=_rdbnet._tcp.db.internal server=127.0.0.1:5353"',
    '<%= config.bin %> <%= command.id %> "provider=static file=/etc/rdbnet/peers" --json',
    '<%= config.bin %> <%= command.id %> "provider=dns name=_rdbnet._tcp.db.internal" --format addresses | rdbnet cluster join --seeds -',
    '<%= config.bin %> <%= command.id %> "provider=static file=peers.json" --watch',
    ...[...PROVIDERS.values()].map(
      (factory) => `<%= config.bin %> <%= command.id %> "${factory.example}"`,
    ),
  ];
  static override strict = false;
  static override args = {
    spec: Args.string({
      description:
        'A spec "provider=NAME key=value ..." or host:port addresses; several may be given.',
      required: true,
    }),
  };
  static override flags = {
    ...certsDirFlag,
    format: Flags.string({
      description: 'table (default), or addresses: one host:port a line.',
      options: ['table', 'addresses'],
      default: 'table',
    }),
    watch: Flags.boolean({
      description: 'Print NDJSON events as nodes come and go, until interrupted (SIGINT).',
    }),
    interval: Flags.integer({
      description: `--watch: milliseconds between lookups of providers that cannot push changes (${WATCH_INTERVAL_MS_MIN}..${WATCH_INTERVAL_MS_MAX}).`,
      default: WATCH_INTERVAL_MS_DEFAULT,
      min: WATCH_INTERVAL_MS_MIN,
      max: WATCH_INTERVAL_MS_MAX,
      helpValue: 'ms',
    }),
  };

  private watching = false;

  protected override async execute(): Promise<DiscoverResult> {
    const { argv, flags } = await this.parse(Discover);
    const entries = argv as string[];
    // provider=broadcast authenticates with the gossip key: the one in the certs dir, if any.
    const keyring = await loadKeyring(gossipKeyringPath(certsDirOf(flags['certs-dir']))).catch(
      () => null,
    );
    const ctx: ProviderContext = {
      ...(keyring === null ? {} : { gossipKey: keyring.primaryBytes() }),
      env: process.env,
      clock: systemClock,
      log: (level, message) =>
        process.stderr.write(`${level === 'warn' ? 'Warning' : 'Info'}: ${message}\n`),
    };
    // Validate, then act: a bad spec is refused (exit 64) before any source is asked.
    const sources = openSources(entries, ctx);
    const provider = sources.length === 1 ? sources[0]!.provider : 'multiple';
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      if (flags.watch) {
        this.watching = true;
        const current = new Map<string, DiscoveredNode>();
        await watchSources(
          sources,
          flags.interval,
          ctx,
          (events: DiscoveryEvent[]) => {
            for (const event of events) {
              if (event.event === 'added') current.set(event.node.address, event.node);
              else current.delete(event.node.address);
              printJsonLine(event);
            }
          },
          (error, source) => process.stderr.write(`Warning: ${source.text}: ${error.message}\n`),
          controller.signal,
        );
        return { provider, nodes: [...current.values()], failures: [] };
      }
      const { nodes, failures } = await resolveSources(sources, controller.signal);
      if (nodes.length === 0) {
        if (failures.length > 0) throw failures[0]!.error;
        throw new RdbnetError(
          ErrorCode.DiscoveryFailed,
          `no node found through ${entries.join(' ')}`,
        );
      }
      for (const failure of failures) {
        process.stderr.write(`Warning: ${failure.source.text}: ${failure.error.message}\n`);
      }
      return {
        provider,
        nodes,
        failures: failures.map(({ source, error }) => ({
          entry: source.text,
          provider: source.provider,
          code: error.code,
          message: error.message,
        })),
      };
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await closeSources(sources);
    }
  }

  override async run(): Promise<DiscoverResult> {
    const result = await this.execute();
    // --watch said everything as it went.
    if (!this.watching) {
      const { flags } = await this.parse(Discover);
      if (this.json) await this.printResult(result);
      else if (flags.format === 'addresses') this.render(result, true);
      else await this.printResult(result);
    }
    process.exitCode = 0;
    return result;
  }

  protected override render(result: DiscoverResult, addressesOnly = false): void {
    if (addressesOnly) {
      for (const node of result.nodes) this.log(node.address);
      return;
    }
    this.log(
      table(
        ['address', 'id', 'source', 'meta'],
        result.nodes.map((node) => [
          node.address,
          node.id ?? '',
          node.source,
          Object.entries(node.meta)
            .map(([key, value]) => `${key}=${value}`)
            .join(' '),
        ]),
      ),
    );
  }
}
