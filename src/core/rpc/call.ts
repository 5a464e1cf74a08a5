/**
 * The older request helper, where the request and the reply kind are given separately.
 * @deprecated Use `request(sender, kind, body)` (request.ts) or `NodeClient.ask`, which take
 * the reply kind from REPLY_OF. src/ and test/ no longer use it; bench/ still does (left to
 * the benchmarks' own change), then it goes.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { Envelope, EnvelopeBody, EnvelopeKind } from '../protocol/messages.ts';
import type { RequestSender } from './request.ts';

export type { RequestSender } from './request.ts';

/** @deprecated Use `request(sender, kind, body)` from request.ts. */
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
