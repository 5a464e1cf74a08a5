/**
 * One GraphQL operation over HTTP (POST, or GET for queries), as the caller: `executeGraphql`
 * checks the text length, parses, validates, bounds depth and cost (limits.ts), then runs the
 * operation with resolvers that ask the node through its admin handler as `principal`. Errors
 * carry the node's error code in `extensions.code` (RDB_FORBIDDEN, RDB_NOT_LEADER, …).
 */
import {
  type DocumentNode,
  type ExecutionResult,
  execute,
  type FormattedExecutionResult,
  GraphQLError,
  getOperationAST,
  type OperationDefinitionNode,
  parse,
  validate,
} from 'graphql';
import type { Principal } from '../api/authorization.ts';
import { ErrorCode, isRdbnetError } from '../errors.ts';
import { systemClock } from '../runtime/index.ts';
import { adminAsk, type GraphqlSource } from './admin-requests.ts';
import { NodeStreams } from './events.ts';
import {
  checkLimits,
  checkQueryLength,
  GRAPHQL_LIMITS_DEFAULT,
  type GraphqlLimits,
} from './limits.ts';
import { type GraphqlContext, rootValue, schema, subscriberOf } from './schema.ts';

export interface GraphqlRequest {
  source: GraphqlSource;
  /** Who asks: what the HTTP face authenticated (a client certificate or a token's role). */
  principal: Principal;
  query: string;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
  /** GET may only run queries (GraphQL over HTTP); default POST. */
  method?: 'GET' | 'POST';
  limits?: GraphqlLimits;
}

/** Polls the node's streams as a reader; each subscriber's own role is checked on subscribe. */
const STREAMS_PRINCIPAL: Principal = {
  role: 'read',
  name: 'client/graphql-subscriptions',
  source: 'certificate',
};

const streamsBySource = new WeakMap<object, NodeStreams>();

/** The member, leader and health streams of `source`'s node, made on first use. */
export function streamsOf(source: GraphqlSource): NodeStreams {
  let streams = streamsBySource.get(source.admin);
  if (streams === undefined) {
    streams = new NodeStreams({ ask: adminAsk(source, STREAMS_PRINCIPAL), clock: systemClock });
    streamsBySource.set(source.admin, streams);
  }
  return streams;
}

/** The context of one caller's operation. */
export function contextOf(source: GraphqlSource, principal: Principal): GraphqlContext {
  const ask = adminAsk(source, principal);
  return { ask, subscribe: subscriberOf(ask, streamsOf(source)) };
}

function usageError(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: ErrorCode.Usage } });
}

/** A node error keeps its code; anything else is RDB_INTERNAL without its details. */
export function formatResult(result: ExecutionResult): FormattedExecutionResult {
  const errors = result.errors?.map((error) => {
    const original = error.originalError;
    if (original === undefined || original === null || original instanceof GraphQLError) {
      const formatted = error.toJSON();
      return {
        ...formatted,
        extensions: { code: ErrorCode.Usage, ...formatted.extensions },
      };
    }
    const code = isRdbnetError(original) ? original.code : ErrorCode.Internal;
    const message = isRdbnetError(original) ? original.message : 'internal error';
    return { ...error.toJSON(), message, extensions: { code } };
  });
  return {
    ...(result.data === undefined ? {} : { data: result.data }),
    ...(errors === undefined ? {} : { errors }),
  };
}

/**
 * Parses, validates and bounds `query`; the document and its operation, or the errors that
 * refuse it (nothing has run).
 */
export function prepare(
  query: string,
  operationName: string | null | undefined,
  limits: GraphqlLimits = GRAPHQL_LIMITS_DEFAULT,
):
  | { document: DocumentNode; operation: OperationDefinitionNode }
  | { errors: readonly GraphQLError[] } {
  if (typeof query !== 'string' || query.trim() === '') {
    return { errors: [usageError('a GraphQL request needs a query')] };
  }
  const tooLong = checkQueryLength(query, limits);
  if (tooLong.length > 0) return { errors: tooLong };
  let document: DocumentNode;
  try {
    document = parse(query, { maxTokens: limits.queryCharsMax });
  } catch (error) {
    return { errors: [error as GraphQLError] };
  }
  const invalid = validate(schema, document);
  if (invalid.length > 0) return { errors: invalid };
  const operation = getOperationAST(document, operationName ?? undefined);
  if (operation === null || operation === undefined) {
    return { errors: [usageError('name the operation to run (operationName)')] };
  }
  const overLimits = checkLimits(schema, document, operation, limits);
  if (overLimits.length > 0) return { errors: overLimits };
  return { document, operation };
}

/** Runs one query or mutation for an HTTP request; a JSON-ready result. */
export async function executeGraphql(request: GraphqlRequest): Promise<FormattedExecutionResult> {
  const prepared = prepare(request.query, request.operationName, request.limits);
  if ('errors' in prepared) return formatResult({ errors: prepared.errors });
  const { document, operation } = prepared;
  if (operation.operation === 'subscription') {
    return formatResult({
      errors: [
        usageError('subscriptions are served over graphql-ws at /api/v1/network/graphql/ws'),
      ],
    });
  }
  if (operation.operation === 'mutation' && request.method === 'GET') {
    return formatResult({ errors: [usageError('a mutation needs POST')] });
  }
  const result = await execute({
    schema,
    document,
    rootValue,
    contextValue: contextOf(request.source, request.principal),
    variableValues: request.variables ?? null,
    operationName: request.operationName ?? null,
  });
  return formatResult(result);
}
