/**
 * Flags, input and the one message shared by the data-plane commands (`send`, `request`,
 * `broadcast`): the topic, the payload (`--data STRING|@file|-`), the deadline and `--to`;
 * everything is read and checked before a connection is opened.
 */
import { readFile, stat } from 'node:fs/promises';
import { Flags } from '@oclif/core';
import type { NodeClient } from '../core/client/node-client.ts';
import {
  DELIVERIES,
  type Delivery,
  deliveryCode,
  validateIdempotencyKey,
} from '../core/dataplane/delivery.ts';
import { DATA_PLANE_LIMITS_DEFAULT } from '../core/dataplane/limits.ts';
import { validateTopicName } from '../core/dataplane/topics.ts';
import { ErrorCode, RdbnetError } from '../core/errors.ts';
import type { TopicKindCode } from '../core/protocol/messages.ts';
import { validateName } from '../core/security/identity.ts';
import { PRIORITY_NAMES, parsePriority, priorityToWire } from '../core/transport/priority.ts';

/** The most a command reads for --data: a node's default messageBytesMax (1 MiB). */
export const DATA_BYTES_MAX = DATA_PLANE_LIMITS_DEFAULT.messageBytesMax;
/** Extra wait for the node's answer beyond the message's deadline, so that the node's own
 * RDB_DEADLINE_PASSED arrives before the connection's timeout. */
export const REPLY_SLACK_MS = 1000;

export const topicFlags = {
  topic: Flags.string({
    description: 'Topic the message goes to (every node answers `echo`).',
    required: true,
    helpValue: 'name',
  }),
  data: Flags.string({
    description: `The payload: a string, @file to read a file, or - to read stdin (at most ${DATA_BYTES_MAX} bytes).`,
    default: '',
    helpValue: 'string|@file|-',
  }),
  deadline: Flags.integer({
    description: 'Milliseconds until the message must be delivered (and answered, for request).',
    default: DATA_PLANE_LIMITS_DEFAULT.deadlineDefaultMs,
    min: 1,
    max: DATA_PLANE_LIMITS_DEFAULT.deadlineMaxMs,
    helpValue: 'ms',
  }),
  priority: Flags.string({
    description:
      'Scheduling of the message and its reply on every connection they cross: a large ' +
      'message goes in chunks, and chunks of more urgent messages go first (weighted, so low ' +
      'still moves).',
    options: [...PRIORITY_NAMES],
    default: 'normal',
  }),
};

/** `send` and `request`: how the message is delivered (src/core/dataplane/delivery.ts). */
export const deliveryFlags = {
  delivery: Flags.string({
    description:
      'at-most-once: sent once. at-least-once: acknowledged after the handler accepted it, ' +
      'retried with backoff until then (bounded). exactly-once: as at-least-once, and the ' +
      'receiver runs the handler once per idempotency key.',
    options: [...DELIVERIES],
    default: 'at-most-once',
  }),
  'idempotency-key': Flags.string({
    description:
      'exactly-once: the key the receiver deduplicates on (at most 128 bytes); the same key ' +
      'sent again gets the stored reply. Default: one the node makes.',
    helpValue: 'key',
  }),
};

/** What the commands with deliveryFlags add to their description. */
export const DELIVERY_FLAGS_HELP =
  ' With --delivery at-least-once or exactly-once the node forwarding the message retries it ' +
  'until the member acknowledges it (its handler accepted it); RDB_DELIVERY_FAILED when the ' +
  'attempts or the deadline run out. exactly-once: a repeated --idempotency-key runs the ' +
  'handler once while the receiving node lives (its window is in memory).';

/** The TopicMessage fields of --delivery and --idempotency-key, checked (RDB_USAGE). */
export function deliveryFields(flags: {
  delivery: string;
  'idempotency-key'?: string | undefined;
}): {
  delivery: number;
  idempotencyKey: string;
} {
  const delivery = flags.delivery as Delivery;
  const key = flags['idempotency-key'];
  if (key !== undefined && delivery !== 'exactly-once') {
    throw new RdbnetError(ErrorCode.Usage, '--idempotency-key needs --delivery exactly-once');
  }
  return {
    delivery: deliveryCode(delivery),
    idempotencyKey: key === undefined ? '' : validateIdempotencyKey(key),
  };
}

/** `--to`: the member `send` and `request` deliver to. */
export const toFlag = {
  to: Flags.string({
    description: 'Id of the member to deliver to.',
    required: true,
    helpValue: 'id',
  }),
};

function tooLarge(bytes: number, where: string): RdbnetError {
  return new RdbnetError(
    ErrorCode.MessageTooLarge,
    `--data ${where} is ${bytes} bytes; at most ${DATA_BYTES_MAX}`,
  );
}

/** The payload --data names, read whole (bounded); a file that cannot be read is a usage error. */
export async function readData(value: string): Promise<Uint8Array> {
  if (value === '-') {
    if (process.stdin.isTTY) {
      throw new RdbnetError(
        ErrorCode.Usage,
        '--data - reads the payload from stdin, which is a terminal',
        {
          hint: 'pipe the payload in, e.g. echo hi | rdbnet request … --data -',
        },
      );
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of process.stdin) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      bytes += buffer.length;
      if (bytes > DATA_BYTES_MAX) throw tooLarge(bytes, 'from stdin');
      chunks.push(buffer);
    }
    return new Uint8Array(Buffer.concat(chunks));
  }
  if (value.startsWith('@')) {
    const path = value.slice(1);
    try {
      const info = await stat(path);
      if (info.size > DATA_BYTES_MAX) throw tooLarge(info.size, `file ${path}`);
      return new Uint8Array(await readFile(path));
    } catch (error) {
      if (error instanceof RdbnetError) throw error;
      throw new RdbnetError(
        ErrorCode.Usage,
        `cannot read --data file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
    }
  }
  const bytes = new TextEncoder().encode(value);
  if (bytes.length > DATA_BYTES_MAX) throw tooLarge(bytes.length, 'string');
  return bytes;
}

/** The topic, checked as a node would (RDB_TOPIC_INVALID, exit 64) before anything is sent. */
export function checkTopic(topic: string): string {
  return validateTopicName(topic, DATA_PLANE_LIMITS_DEFAULT);
}

/** What every data-plane command reads before it connects: the topic checked, the payload read. */
export async function readTopicInput(flags: {
  topic: string;
  data: string;
}): Promise<{ topic: string; payload: Uint8Array }> {
  const topic = checkTopic(flags.topic);
  return { topic, payload: await readData(flags.data) };
}

/** The member id of `--to`, checked like every node id (exit 64 on a bad one). */
export function checkMemberId(to: string): string {
  return validateName('node id', to);
}

/**
 * Sends one topic message through `node` and waits for its answer up to the message's
 * deadline plus REPLY_SLACK_MS. `to` and `group` left out mean "the node itself" and "no group".
 */
export function askTopic(
  node: NodeClient,
  message: {
    topic: string;
    payload: Uint8Array;
    deadlineMs: number;
    kind: TopicKindCode;
    to?: string;
    group?: string;
    /** From deliveryFields; at-most-once when left out. */
    guarantee?: { delivery: number; idempotencyKey: string };
    /** critical, high, normal (when left out) or low. */
    priority?: string;
  },
) {
  return node.ask(
    'topicRequest',
    {
      topic: message.topic,
      payload: message.payload,
      deadlineMs: message.deadlineMs,
      id: '',
      kind: message.kind,
      to: message.to ?? '',
      group: message.group ?? '',
      forwarded: false,
      ...message.guarantee,
      priority: priorityToWire(parsePriority(message.priority ?? 'normal')),
    },
    message.deadlineMs + REPLY_SLACK_MS,
  );
}
