import { Flags } from '@oclif/core';
import { aclRequest } from '../../cli/acl.ts';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';

export interface AclTestResult {
  allowed: boolean;
  /** The deciding rule's id; null when the default policy decided. */
  rule: string | null;
  /** The node whose applied list answered. */
  node: string;
}

export default class AclTest extends RdbnetCommand<AclTestResult> {
  static override summary =
    'Would a peer at this address, with this identity, be allowed this operation?';
  static override description =
    'Evaluated by the node on the list it has applied, exactly as a message would be; changes nothing and counts nothing. Exit 0 either way: read `allowed`.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --source 169.254.2.2 --op admin-read --json',
    '<%= config.bin %> <%= command.id %> --source 127.0.0.1 --op admin-write --identity client/admin --role admin',
    '<%= config.bin %> <%= command.id %> --source 169.254.1.2 --op data:orders.eu --identity node/n2',
  ];
  static override flags = {
    ...nodeFlags,
    source: Flags.string({
      description: 'The peer address (an IP).',
      required: true,
      helpValue: 'ip',
    }),
    op: Flags.string({
      description: 'gossip, raft, admin-read, admin-write or data:TOPIC.',
      required: true,
      helpValue: 'class',
    }),
    identity: Flags.string({
      description: 'client/NAME or node/ID. Default: none (as a UDP datagram).',
      helpValue: 'name',
    }),
    role: Flags.string({
      description: 'The identity role, for role: rules (node/ID is node). Default: none.',
      options: ['admin', 'read', 'node'],
    }),
  };

  protected override async execute(): Promise<AclTestResult> {
    const { flags } = await this.parse(AclTest);
    const reply = await withNode(flags, (node) =>
      node.ask(
        'aclRequest',
        aclRequest({
          op: 'test',
          testSource: flags.source,
          testOp: flags.op,
          testIdentity: flags.identity ?? '',
          testRole: flags.role ?? '',
        }),
      ),
    );
    return {
      allowed: reply.allowed,
      rule: reply.rule === '' ? null : reply.rule,
      node: reply.node,
    };
  }

  protected override render(result: AclTestResult): void {
    this.log(`${result.allowed ? 'allowed' : 'denied'} by ${result.rule ?? 'the default policy'}`);
  }
}
