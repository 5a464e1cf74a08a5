/**
 * The GraphQL face asks the node exactly what the CLI asks it: the same request kinds, answered
 * by the same authorized admin handler (src/core/api/admin.ts), only in-process instead of over
 * the binary protocol. The caller's principal (a certificate or token the HTTP face checked)
 * becomes the request's identity, so authorization.ts decides for GraphQL as for the CLI.
 */
import { type AdminSource, adminHandler } from '../api/admin.ts';
import type { Principal } from '../api/authorization.ts';
import type { DecodedEnvelope, Envelope, EnvelopeKind } from '../protocol/messages.ts';
import type { PeerIdentity, PeerRequestHandler } from '../rpc/peer.ts';
import {
  type ReplyBody,
  type RequestBody,
  type RequestKind,
  type RequestSender,
  request,
} from '../rpc/request.ts';

/** Where GraphQL requests say they come from (logs of the node name it). */
const GRAPHQL_REMOTE_ADDRESS = 'graphql';

/** What the GraphQL face runs on: a node's admin source, and optionally its own handler. */
export interface GraphqlSource {
  /** The node (RdbnetNode implements AdminSource). */
  admin: AdminSource;
  /**
   * The node's admin handler, when the caller has it (with the node's hooks: metrics, the
   * forbidden counter); otherwise one is made over `admin`, with the same table and handlers.
   */
  handler?: PeerRequestHandler;
}

const handlers = new WeakMap<AdminSource, PeerRequestHandler>();

function handlerOf(source: GraphqlSource): PeerRequestHandler {
  if (source.handler !== undefined) return source.handler;
  let handler = handlers.get(source.admin);
  if (handler === undefined) {
    handler = adminHandler(source.admin);
    handlers.set(source.admin, handler);
  }
  return handler;
}

/** The identity whose principalOf() is `principal`. */
export function identityOf(principal: Principal): PeerIdentity {
  const slash = principal.name.indexOf('/');
  const id = slash === -1 ? principal.name : principal.name.slice(slash + 1);
  const authenticated = principal.source !== 'insecure';
  if (principal.role === 'node') {
    return { peer: { id, role: 'node', authenticated }, remoteAddress: GRAPHQL_REMOTE_ADDRESS };
  }
  return {
    peer:
      principal.source === 'certificate'
        ? { id, role: 'client', authenticated, clientRole: principal.role }
        : { id, role: 'client', authenticated },
    remoteAddress: GRAPHQL_REMOTE_ADDRESS,
  };
}

/** A typed `ask(kind, body)` through the node's admin handler, as `principal`. */
export type AdminAsk = <K extends RequestKind>(
  kind: K,
  body: RequestBody<K>,
) => Promise<ReplyBody<K>>;

export function adminAsk(source: GraphqlSource, principal: Principal): AdminAsk {
  const handler = handlerOf(source);
  const identity = identityOf(principal);
  const sender: RequestSender = {
    async request(envelope: Envelope): Promise<DecodedEnvelope> {
      const [kind, body] = Object.entries(envelope)[0] as [EnvelopeKind, unknown];
      const reply = await handler({ kind, body }, identity);
      const [replyKind, replyBody] = Object.entries(reply)[0] as [EnvelopeKind, unknown];
      return { kind: replyKind, body: replyBody };
    },
  };
  return (kind, body) => request(sender, kind, body);
}
