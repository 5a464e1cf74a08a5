import { RdbnetCommand } from '../cli/base-command.ts';
import {
  askTopic,
  checkMemberId,
  DELIVERY_FLAGS_HELP,
  deliveryFields,
  deliveryFlags,
  readTopicInput,
  toFlag,
  topicFlags,
} from '../cli/dataplane.ts';
import { nodeFlags, withNode } from '../cli/node-client.ts';
import { type PayloadEncoding, payloadText } from '../core/dataplane/encoding.ts';
import { TopicKindCode } from '../core/protocol/messages.ts';

export interface RequestResult {
  to: string;
  topic: string;
  /** The handler's reply: UTF-8 text when it is valid UTF-8, base64 otherwise. */
  reply: string;
  encoding: PayloadEncoding;
  /** From the command's send to the reply, as this command measured it. */
  latencyMs: number;
}

export default class Request extends RdbnetCommand<RequestResult> {
  static override summary = "Send a message to a topic on a member and print the handler's reply.";
  static override description =
    'The node given by --node forwards the message to the member --to (by its id in the ' +
    "node's gossip view) and returns the reply of that member's topic handler. Every node " +
    'answers the topic `echo` with what it was sent. Errors: RDB_TOPIC_UNKNOWN (no handler), ' +
    'RDB_TARGET_UNKNOWN (no such member), RDB_TARGET_DEAD (exit 69), RDB_DEADLINE_PASSED, ' +
    'RDB_MESSAGE_TOO_LARGE (exit 64), RDB_QUEUE_FULL.' +
    DELIVERY_FLAGS_HELP;
  static override examples = [
    '<%= config.bin %> <%= command.id %> --to n2 --topic echo --data hi',
    '<%= config.bin %> <%= command.id %> --to n2 --topic echo --data @payload.bin --json | jq -r .reply',
    '<%= config.bin %> <%= command.id %> --to n2 --topic echo --data hi --delivery at-least-once',
  ];
  static override flags = {
    ...nodeFlags,
    ...toFlag,
    ...topicFlags,
    ...deliveryFlags,
  };

  protected override async execute(): Promise<RequestResult> {
    const { flags } = await this.parse(Request);
    const to = checkMemberId(flags.to);
    const { topic, payload } = await readTopicInput(flags);
    const guarantee = deliveryFields(flags);
    return withNode(flags, async (node) => {
      const startedMs = performance.now();
      const reply = await askTopic(node, {
        topic,
        priority: flags.priority,
        payload,
        deadlineMs: flags.deadline,
        kind: TopicKindCode.Request,
        to,
        guarantee,
      });
      const latencyMs = Number((performance.now() - startedMs).toFixed(3));
      const { text, encoding } = payloadText(reply.payload ?? new Uint8Array(0));
      return { to, topic, reply: text, encoding, latencyMs };
    });
  }

  protected override render(result: RequestResult): void {
    this.log(result.reply);
  }
}
