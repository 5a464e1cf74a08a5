import { type AclRuleView, aclRequest, ruleView } from '../../cli/acl.ts';
import { RdbnetCommand } from '../../cli/base-command.ts';
import { nodeFlags, withNode } from '../../cli/node-client.ts';
import { table } from '../../cli/output.ts';

export interface AclListResult {
  /** The node that answered (the counters are its own). */
  node: string;
  defaultAction: string;
  /** Connections and messages the default policy decided on that node. */
  defaultHits: number;
  /** In evaluation order (ascending priority). */
  rules: AclRuleView[];
}

export default class AclList extends RdbnetCommand<AclListResult> {
  static override summary =
    "The cluster's access control list, with each rule's counters on the node asked.";
  static override description =
    'Rules in evaluation order (ascending priority). `hits` counts the connections refused at accept or handshake ' +
    'and the messages each rule decided on the node asked, since it started.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json | jq .rules',
  ];
  static override flags = { ...nodeFlags };

  protected override async execute(): Promise<AclListResult> {
    const { flags } = await this.parse(AclList);
    const reply = await withNode(flags, (node) =>
      node.ask('aclRequest', aclRequest({ op: 'list' })),
    );
    return {
      node: reply.node,
      defaultAction: reply.defaultAction,
      defaultHits: Number(reply.defaultHits ?? 0),
      rules: reply.rules.map(ruleView),
    };
  }

  protected override render(result: AclListResult): void {
    this.log(
      table(
        ['id', 'priority', 'action', 'source', 'op', 'identity', 'hits'],
        [
          ...result.rules.map((rule) => [
            rule.id,
            rule.priority,
            rule.action,
            rule.source,
            rule.op ?? '*',
            rule.identity ?? '*',
            rule.hits,
          ]),
          ['default', '-', result.defaultAction, '*', '*', '*', result.defaultHits],
        ],
      ),
    );
  }
}
