import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { certsDirOf } from '../../cli/certs-flags.ts';
import { ExitCode } from '../../cli/exit-codes.ts';
import { keyringRequest } from '../../cli/keyring-ops.ts';
import { nodeFlags } from '../../cli/node-client.ts';
import { table } from '../../cli/output.ts';
import { gossipKeyringPath } from '../../core/node/gossip.ts';
import { loadKeyring } from '../../core/security/keyring.ts';

/** `--local`: the keyring file in the certs dir. */
export interface KeysListLocalResult {
  file: string;
  /** The key new packets are sealed with. */
  primary: string;
  /** Every installed key (packets sealed with any of them open), primary first. */
  keys: string[];
}

/** Cluster-wide: every key held by the target node or an alive member. */
export interface KeysListClusterResult {
  /** Nodes that answered. */
  nodes: number;
  keys: {
    key: string;
    /** How many of the answering nodes hold it. */
    nodes: number;
    /** The nodes where it is the primary. */
    primaryOn: string[];
  }[];
  /** Nodes that could not be asked. */
  failed: { node: string; address: string; error: string }[];
}

export type KeysListResult = KeysListLocalResult | KeysListClusterResult;

export default class KeysList extends RdbnetCommand<KeysListResult> {
  static override summary =
    'List the gossip keys of the cluster (or, --local, of the keyring file).';
  static override description =
    'Asks the target node, which asks every alive gossip member: each key with the number of nodes that ' +
    'hold it and the nodes where it is the primary; exit 1 if a member could not be asked. With --local: ' +
    'reads gossip.keyring in --certs-dir (refused when group or others may read it) and prints its keys, primary first.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --node 127.0.0.1:7000',
    '<%= config.bin %> <%= command.id %> --local --certs-dir /etc/rdbnet/certs --json',
  ];
  static override flags = {
    ...nodeFlags,
    local: Flags.boolean({
      description: 'Read the keyring file in --certs-dir instead of asking the cluster.',
    }),
  };

  protected override async execute(): Promise<KeysListResult> {
    const { flags } = await this.parse(KeysList);
    if (flags.local) {
      const file = gossipKeyringPath(certsDirOf(flags['certs-dir']));
      const keyring = await loadKeyring(file);
      return { file, primary: keyring.primary, keys: keyring.list() };
    }
    const results = await keyringRequest(flags, 'list', '');
    const answered = results.filter((result) => result.ok);
    const keys = new Map<string, { key: string; nodes: number; primaryOn: string[] }>();
    for (const result of answered) {
      for (const key of result.keys) {
        const entry = keys.get(key) ?? { key, nodes: 0, primaryOn: [] };
        entry.nodes++;
        if (key === result.primary) entry.primaryOn.push(result.node);
        keys.set(key, entry);
      }
    }
    return {
      nodes: answered.length,
      keys: [...keys.values()].sort(
        (a, b) => b.primaryOn.length - a.primaryOn.length || b.nodes - a.nodes,
      ),
      failed: results
        .filter((result) => !result.ok)
        .map((result) => ({ node: result.node, address: result.address, error: result.error })),
    };
  }

  protected override render(result: KeysListResult): void {
    if ('file' in result) {
      this.log(
        table(
          ['key', 'primary'],
          result.keys.map((key) => [key, key === result.primary ? 'yes' : '']),
        ),
      );
      return;
    }
    this.log(
      table(
        ['key', 'nodes', 'primary on'],
        result.keys.map((k) => [k.key, `${k.nodes}/${result.nodes}`, k.primaryOn.join(', ')]),
      ),
    );
    for (const f of result.failed)
      process.stderr.write(`not asked: ${f.node} (${f.address}): ${f.error}\n`);
  }

  protected override exitCodeFor(result: KeysListResult): number {
    return 'failed' in result && result.failed.length > 0 ? ExitCode.Failed : ExitCode.Ok;
  }
}
