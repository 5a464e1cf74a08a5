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
import { TopicKindCode } from '../core/protocol/messages.ts';

export interface SendResult {
  to: string;
  topic: string;
  /** Payload bytes sent. */
  bytes: number;
  /** The member's topic queue took the message (its handler runs later; no reply). */
  queued: true;
}

export default class Send extends RdbnetCommand<SendResult> {
  static override summary =
    'Send a one-way message to a topic on a member (acknowledged at its queue).';
  static override description =
    'The node given by --node forwards the message to the member --to; the command succeeds ' +
    "once that member's topic queue has taken it. The handler's answer is not returned (see " +
    '`rdbnet request`). Errors as for `rdbnet request`; a full queue is RDB_QUEUE_FULL.' +
    DELIVERY_FLAGS_HELP;
  static override examples = [
    '<%= config.bin %> <%= command.id %> --to n2 --topic echo --data hi',
    '<%= config.bin %> <%= command.id %> --to n2 --topic orders --data @order.json --delivery exactly-once --idempotency-key order-42',
  ];
  static override flags = {
    ...nodeFlags,
    ...toFlag,
    ...topicFlags,
    ...deliveryFlags,
  };

  protected override async execute(): Promise<SendResult> {
    const { flags } = await this.parse(Send);
    const to = checkMemberId(flags.to);
    const { topic, payload } = await readTopicInput(flags);
    const guarantee = deliveryFields(flags);
    const reply = await withNode(flags, (node) =>
      askTopic(node, {
        topic,
        priority: flags.priority,
        payload,
        deadlineMs: flags.deadline,
        kind: TopicKindCode.Send,
        to,
        guarantee,
      }),
    );
    return { to: reply.from || to, topic, bytes: payload.length, queued: true };
  }

  protected override render(result: SendResult): void {
    this.log(`sent ${result.bytes} bytes to ${result.topic} on ${result.to} (queued)`);
  }
}
