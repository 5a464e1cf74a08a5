/**
 * GraphQL on the HTTP face: POST and GET at /api/v1/network/graphql (executeGraphql) and
 * subscriptions over graphql-ws at /api/v1/network/graphql/ws (attachGraphqlWs), each caller
 * authenticated like every other route (client certificate or bearer token) and then run as
 * that principal through the node's one admin handler.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { principalOf } from '../api/authorization.ts';
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { GraphqlSource } from '../graphql/admin-requests.ts';
import { executeGraphql } from '../graphql/execute.ts';
import { attachGraphqlWs, GRAPHQL_WS_PATH } from '../graphql/ws.ts';
import type { PeerIdentity } from '../rpc/peer.ts';
import { API_PREFIX } from './routes.ts';
import type { AuthenticatedRequest, HttpMounts } from './server.ts';

const GRAPHQL_PATH = `${API_PREFIX}/graphql`;

interface GraphqlInput {
  query?: unknown;
  variables?: unknown;
  operationName?: unknown;
}

function parseInput(input: GraphqlInput, method: 'GET' | 'POST') {
  if (typeof input.query !== 'string' || input.query === '') {
    throw new RdbnetError(ErrorCode.Usage, 'query: a GraphQL document is required');
  }
  let variables = input.variables ?? null;
  // GET carries variables as JSON in the query string (GraphQL over HTTP).
  if (method === 'GET' && typeof variables === 'string') {
    try {
      variables = JSON.parse(variables);
    } catch {
      throw new RdbnetError(ErrorCode.Usage, 'variables: not JSON');
    }
  }
  if (variables !== null && (typeof variables !== 'object' || Array.isArray(variables))) {
    throw new RdbnetError(ErrorCode.Usage, 'variables: an object is required');
  }
  if (input.operationName != null && typeof input.operationName !== 'string') {
    throw new RdbnetError(ErrorCode.Usage, 'operationName: a string is required');
  }
  return {
    query: input.query,
    variables: variables as Record<string, unknown> | null,
    operationName: (input.operationName as string | undefined) ?? null,
  };
}

/** The `graphql` mount of HttpMounts, over `source` (the node and its admin handler). */
export function graphqlMount(source: () => GraphqlSource): NonNullable<HttpMounts['graphql']> {
  return async (
    app: FastifyInstance,
    authenticate: (request: AuthenticatedRequest) => Promise<PeerIdentity>,
  ) => {
    const run = async (request: FastifyRequest, method: 'GET' | 'POST') => {
      const identity = await authenticate(request);
      const input = (method === 'GET' ? request.query : request.body) as GraphqlInput | null;
      const parsed = parseInput(input ?? {}, method);
      return executeGraphql({
        source: source(),
        principal: principalOf(identity.peer),
        ...parsed,
        method,
      });
    };
    app.post(GRAPHQL_PATH, { schema: { hide: true } }, (request) => run(request, 'POST'));
    app.get(GRAPHQL_PATH, { schema: { hide: true } }, (request) => run(request, 'GET'));
    const subscriptions = attachGraphqlWs(app.server, GRAPHQL_WS_PATH, {
      source: source(),
      authenticate: async (request) => {
        try {
          return principalOf((await authenticate(request)).peer);
        } catch {
          return null;
        }
      },
    });
    app.addHook('onClose', async () => {
      await subscriptions.close();
    });
  };
}
