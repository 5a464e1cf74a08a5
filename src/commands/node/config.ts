import { RdbnetCommand } from '../../cli/base-command.ts';
import {
  nodeConfigExitCode,
  nodeConfigFlags,
  resolveNodeConfigFromFlags,
} from '../../cli/node-config-flags.ts';
import { table } from '../../cli/output.ts';
import {
  type ConfigSource,
  type NodeConfigJson,
  nodeConfigJson,
} from '../../core/config/node-config.ts';
import type { RdbnetError } from '../../core/errors.ts';

/** `node config --json`: the effective configuration and the source of every value. */
export interface NodeConfigResult {
  /** Every field, as a --config file would hold it (null: not set). */
  config: NodeConfigJson;
  /** Where each value came from, keyed by field path ('listen', 'raft.electionTimeoutMs'). */
  sources: Record<string, ConfigSource>;
}

export default class NodeConfigCommand extends RdbnetCommand<NodeConfigResult> {
  static override summary =
    'Show the configuration `node start` would run with, and where each value came from.';
  static override description =
    'Takes the same flags as `rdbnet node start` and resolves them the same way: a flag, else an RDBNET_* ' +
    'environment variable, else the --config file, else the preset, else the default. Each value is listed with ' +
    'its source (flag, env, file, preset or default). Nothing is started, created or written. A bad value exits 64 ' +
    'naming the field and its source. With --json: {"config": {...}, "sources": {"raft.tickMs": "preset", ...}}; ' +
    'config is itself a valid --config file.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --preset wan --json',
    'RDBNET_LISTEN=127.0.0.1:7002 <%= config.bin %> <%= command.id %> --config node.json',
  ];
  static override flags = { ...nodeConfigFlags };

  protected override async execute(): Promise<NodeConfigResult> {
    const { flags } = await this.parse(NodeConfigCommand);
    const { config, sources, warnings } = await resolveNodeConfigFromFlags(flags);
    // Warnings go to stderr so that stdout stays one JSON document.
    for (const warning of warnings) process.stderr.write(`Warning: ${warning}\n`);
    return { config: nodeConfigJson(config), sources };
  }

  protected override exitCodeForFailure(error: RdbnetError): number {
    return nodeConfigExitCode(error);
  }

  protected override render(result: NodeConfigResult): void {
    const rows = Object.entries(result.sources).map(([path, source]) => [
      path,
      shownValue(valueAt(result.config, path)),
      source,
    ]);
    this.log(table(['field', 'value', 'source'], rows));
  }
}

function valueAt(config: NodeConfigJson, path: string): unknown {
  let value: unknown = config;
  for (const key of path.split('.')) value = (value as Record<string, unknown>)[key];
  return value;
}

function shownValue(value: unknown): string {
  if (value === null) return '-';
  if (Array.isArray(value)) return value.length === 0 ? '(none)' : value.join(',');
  return String(value);
}
