import { Flags } from '@oclif/core';
import { RdbnetCommand } from '../cli/base-command.ts';
import { askTopic, readTopicInput, topicFlags } from '../cli/dataplane.ts';
import { ExitCode } from '../cli/exit-codes.ts';
import { nodeFlags, withNode } from '../cli/node-client.ts';
import { table } from '../cli/output.ts';
import { TopicKindCode } from '../core/protocol/messages.ts';
import { validateName } from '../core/security/identity.ts';

export interface BroadcastResult {
  topic: string;
  /** The group of a multicast (--group); null for every member. */
  group: string | null;
  /** Members whose topic queue took the message. */
  acked: string[];
  /** Members that did not, with the error code of each. */
  missing: { id: string; code: string; message: string }[];
}

export default class Broadcast extends RdbnetCommand<BroadcastResult> {
  static override summary =
    'Send a message to a topic on every live member (or every live member of a group).';
  static override description =
    'The node given by --node sends the message to every member its gossip view calls alive ' +
    'or suspect (itself included), or with --group to every such member of that group (node config ' +
    '`groups`), and lists who acknowledged it and who did not. Exit 1 when any member is missing.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --topic echo --data hi',
    '<%= config.bin %> <%= command.id %> --topic cache.flush --group replicas --json',
  ];
  static override flags = {
    ...nodeFlags,
    group: Flags.string({
      description: 'Only the members of this group (a multicast).',
      helpValue: 'name',
    }),
    ...topicFlags,
  };

  protected override async execute(): Promise<BroadcastResult> {
    const { flags } = await this.parse(Broadcast);
    const group = flags.group === undefined ? null : validateName('group name', flags.group);
    const { topic, payload } = await readTopicInput(flags);
    const reply = await withNode(flags, (node) =>
      askTopic(node, {
        topic,
        priority: flags.priority,
        payload,
        deadlineMs: flags.deadline,
        kind: group === null ? TopicKindCode.Broadcast : TopicKindCode.Multicast,
        group: group ?? '',
      }),
    );
    return {
      topic,
      group,
      acked: [...(reply.acked ?? [])],
      missing: (reply.missing ?? []).map((miss) => ({
        id: miss.id,
        code: miss.code,
        message: miss.message,
      })),
    };
  }

  protected override exitCodeFor(result: BroadcastResult): number {
    return result.missing.length === 0 ? ExitCode.Ok : ExitCode.Failed;
  }

  protected override render(result: BroadcastResult): void {
    this.log(
      table(
        ['member', 'acknowledged', 'error'],
        [
          ...result.acked.map((id) => [id, 'yes', '']),
          ...result.missing.map((miss) => [miss.id, 'no', `${miss.code}: ${miss.message}`]),
        ],
      ),
    );
  }
}
