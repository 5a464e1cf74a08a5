/**
 * Admin RPCs: what `rdbnet node status`, `rdbnet health` and the protocol benchmark ask
 * a node. Handlers are synchronous where they can be, so a reply leaves in the same
 * event-loop turn as the request arrived.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type {
  DecodedEnvelope,
  EchoMessage,
  Envelope,
  HealthReply,
  StatusReply,
} from '../protocol/messages.ts';
import type { RequestHandler } from '../transport/connection.ts';

/** What the admin API needs from a node; the node facade implements it. */
export interface AdminSource {
  status(): StatusReply;
  health(): HealthReply;
}

export function adminHandler(source: AdminSource): RequestHandler {
  return (request: DecodedEnvelope): Envelope => {
    switch (request.kind) {
      case 'statusRequest':
        return { statusReply: source.status() };
      case 'healthRequest':
        return { healthReply: source.health() };
      case 'echoRequest':
        return { echoReply: { data: (request.body as EchoMessage).data } };
      default:
        throw new RdbnetError(ErrorCode.MethodUnknown, `no handler for ${request.kind}`);
    }
  };
}
