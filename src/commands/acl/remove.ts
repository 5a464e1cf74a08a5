import { Args, Flags } from '@oclif/core';
import { type AclChangeResult, aclRequest, changeResult } from '../../cli/acl.ts';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { ErrorCode, RdbnetError } from '../../core/errors.ts';

export default class AclRemove extends RdbnetCommand<AclChangeResult> {
  static override summary = "Remove a rule from the cluster's access control list.";
  static override description =
    'Every member stops applying the rule once the removal is applied (no restart). Refused with exit 64, nothing ' +
    'applied: an id no rule has, or a removal that would leave no admin able to change anything (unless --force).';
  static override examples = [
    '<%= config.bin %> <%= command.id %> acl-12',
    '<%= config.bin %> <%= command.id %> acl-12 --json',
  ];
  static override args = {
    id: Args.string({
      description: 'The rule id (acl-N, from `acl add` or `acl list`).',
      required: true,
    }),
  };
  static override flags = {
    ...nodeFlags,
    force: Flags.boolean({
      description: 'Apply even if no admin could change anything afterwards.',
    }),
  };

  protected override async execute(): Promise<AclChangeResult> {
    const { args, flags } = await this.parse(AclRemove);
    if (!/^acl-\d{1,15}$/.test(args.id)) {
      throw new RdbnetError(ErrorCode.AclInvalid, `'${args.id}' is not a rule id (acl-N)`, {
        hint: 'see `rdbnet acl list`',
      });
    }
    const reply = await withNode(flags, (node) =>
      node.ask('aclRequest', aclRequest({ op: 'remove', id: args.id, force: flags.force })),
    );
    return changeResult(reply);
  }

  protected override render(result: AclChangeResult): void {
    this.log(`removed ${result.id}`);
  }
}
