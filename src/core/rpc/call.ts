/**
 * Typed request helpers over a connection or a reconnecting link: send one Envelope,
 * insist on the reply kind that belongs to it.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type {
  DecodedEnvelope,
  Envelope,
  EnvelopeBody,
  EnvelopeKind,
} from '../protocol/messages.ts';

export interface RequestSender {
  request(envelope: Envelope, timeoutMs?: number): Promise<DecodedEnvelope>;
}

export async function call<K extends EnvelopeKind>(
  sender: RequestSender,
  envelope: Envelope,
  replyKind: K,
  timeoutMs?: number,
): Promise<EnvelopeBody<K>> {
  const reply = await sender.request(envelope, timeoutMs);
  if (reply.kind !== replyKind) {
    throw new RdbnetError(
      ErrorCode.MessageMalformed,
      `expected ${replyKind} in reply, got ${reply.kind}`,
    );
  }
  return reply.body as EnvelopeBody<K>;
}
