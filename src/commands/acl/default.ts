import { Args, Flags } from '@oclif/core';
import { type AclChangeResult, aclRequest, changeResult } from '../../cli/acl.ts';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { ACL_ACTIONS } from '../../core/security/acl.ts';

export default class AclDefault extends RdbnetCommand<AclChangeResult> {
  static override summary =
    'Set what happens when no ACL rule matches: allow (the default) or deny.';
  static override description =
    'Applied by every member once committed. Refused with exit 64 when deny would leave no admin able to change ' +
    'anything (add an allow rule for admins first), unless --force.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> deny',
    '<%= config.bin %> <%= command.id %> allow --json',
  ];
  static override args = {
    action: Args.string({
      description: 'allow or deny.',
      required: true,
      options: [...ACL_ACTIONS],
    }),
  };
  static override flags = {
    ...nodeFlags,
    force: Flags.boolean({
      description: 'Apply even if no admin could change anything afterwards.',
    }),
  };

  protected override async execute(): Promise<AclChangeResult> {
    const { args, flags } = await this.parse(AclDefault);
    const reply = await withNode(flags, (node) =>
      node.ask(
        'aclRequest',
        aclRequest({ op: 'default', defaultAction: args.action, force: flags.force }),
      ),
    );
    return changeResult(reply);
  }

  protected override render(result: AclChangeResult): void {
    this.log(`default: ${result.defaultAction}`);
  }
}
