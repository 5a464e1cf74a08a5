import { Flags } from '@oclif/core';
import { type AclChangeResult, aclRequest, changeResult } from '../../cli/acl.ts';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { ACL_ACTIONS, ACL_PRIORITY_MAX, parseAclRule } from '../../core/security/acl.ts';

export default class AclAdd extends RdbnetCommand<AclChangeResult> {
  static override summary = "Add a rule to the cluster's access control list.";
  static override description =
    'Rules are evaluated in ascending --priority (0 first; each priority is held by one rule) and the first that ' +
    'matches the source address, the identity and the operation decides; no match: the default policy (`acl default`). ' +
    'The list is in the Raft-replicated configuration: every member enforces it once applied, without a restart, at ' +
    'accept (source), at the handshake (identity) and on every message (operation class). Refused with exit 64, ' +
    'nothing applied: a malformed CIDR, an unknown operation class, a priority another rule holds, or a rule that ' +
    'would leave no admin able to change anything (unless --force).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --source 169.254.2.0/24 --action deny --priority 100',
    '<%= config.bin %> <%= command.id %> --source 127.0.0.0/8 --action allow --priority 10 --identity role:admin --op admin-write',
    '<%= config.bin %> <%= command.id %> --source any --action deny --priority 500 --op "data:orders.*" --identity "client/*" --json',
  ];
  static override flags = {
    ...nodeFlags,
    source: Flags.string({
      description: 'Source CIDR (169.254.2.0/24, ::1/128), one address, or any.',
      required: true,
      helpValue: 'cidr',
    }),
    action: Flags.string({
      description: 'allow or deny.',
      required: true,
      options: [...ACL_ACTIONS],
    }),
    priority: Flags.integer({
      description: 'Evaluation order: lower first; unique in the list.',
      required: true,
      min: 0,
      max: ACL_PRIORITY_MAX,
      helpValue: 'n',
    }),
    op: Flags.string({
      description:
        'Operation class: gossip, raft, admin-read, admin-write, data or data:TOPIC-PATTERN (* any). Default: every operation.',
      helpValue: 'class',
    }),
    identity: Flags.string({
      description:
        'client/NAME, node/ID (a trailing * matches any rest) or role:admin|read|node. Default: everyone.',
      helpValue: 'name',
    }),
    force: Flags.boolean({
      description: 'Apply even if no admin could change anything afterwards.',
    }),
  };

  protected override async execute(): Promise<AclChangeResult> {
    const { flags } = await this.parse(AclAdd);
    // Checked here first: a bad rule never leaves the shell.
    const rule = parseAclRule({
      source: flags.source,
      action: flags.action as 'allow' | 'deny',
      priority: flags.priority,
      ...(flags.op === undefined ? {} : { op: flags.op }),
      ...(flags.identity === undefined ? {} : { identity: flags.identity }),
    });
    const reply = await withNode(flags, (node) =>
      node.ask(
        'aclRequest',
        aclRequest({
          op: 'add',
          force: flags.force,
          rule: {
            id: '',
            source: rule.source,
            action: rule.action,
            priority: rule.priority,
            op: rule.op ?? '',
            identity: rule.identity ?? '',
            hits: 0,
          },
        }),
      ),
    );
    return changeResult(reply);
  }

  protected override render(result: AclChangeResult): void {
    this.log(`added ${result.id}`);
  }
}
