/**
 * Bounds on what one GraphQL operation may ask, checked after the standard validation and
 * before anything runs: its text length, its depth (nested fields) and its cost (one per field,
 * a field under a list counted LIST_COST_FACTOR times, since it runs once per element). A
 * refused operation is an error naming the limit and the measured value, with the code
 * RDB_QUERY_TOO_COMPLEX. Introspection (__schema, __type) is exempt: it reads the fixed schema.
 */
import {
  type DocumentNode,
  type FragmentDefinitionNode,
  GraphQLError,
  type GraphQLNamedType,
  type GraphQLOutputType,
  type GraphQLSchema,
  getNamedType,
  isListType,
  isNonNullType,
  isObjectType,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { ErrorCode } from '../errors.ts';

export interface GraphqlLimits {
  /** Characters of query text. */
  queryCharsMax: number;
  /** Fields nested inside one another (a top-level field is depth 1). */
  depthMax: number;
  /** Fields, each under a list counted listCostFactor times per list level. */
  costMax: number;
  listCostFactor: number;
}

export const GRAPHQL_LIMITS_DEFAULT: GraphqlLimits = {
  queryCharsMax: 16_384,
  depthMax: 8,
  costMax: 5_000,
  listCostFactor: 10,
};

function limitError(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: ErrorCode.QueryTooComplex } });
}

function isList(type: GraphQLOutputType): boolean {
  const inner = isNonNullType(type) ? type.ofType : type;
  return isListType(inner);
}

interface Measure {
  depth: number;
  cost: number;
}

function measureSelection(
  schema: GraphQLSchema,
  selectionSet: SelectionSetNode,
  parent: GraphQLNamedType,
  fragments: Map<string, FragmentDefinitionNode>,
  limits: GraphqlLimits,
): Measure {
  let depth = 0;
  let cost = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      const name = selection.name.value;
      if (name.startsWith('__')) continue;
      const field = isObjectType(parent) ? parent.getFields()[name] : undefined;
      if (field === undefined) continue;
      let inner: Measure = { depth: 0, cost: 0 };
      if (selection.selectionSet !== undefined) {
        inner = measureSelection(
          schema,
          selection.selectionSet,
          getNamedType(field.type),
          fragments,
          limits,
        );
      }
      depth = Math.max(depth, 1 + inner.depth);
      cost += 1 + inner.cost * (isList(field.type) ? limits.listCostFactor : 1);
      continue;
    }
    const fragment =
      selection.kind === Kind.FRAGMENT_SPREAD ? fragments.get(selection.name.value) : selection;
    if (fragment === undefined) continue;
    const typeName = fragment.typeCondition?.name.value;
    const type = typeName === undefined ? parent : (schema.getType(typeName) ?? parent);
    const inner = measureSelection(schema, fragment.selectionSet, type, fragments, limits);
    depth = Math.max(depth, inner.depth);
    cost += inner.cost;
  }
  return { depth, cost };
}

/**
 * The limit errors of `document`'s operation (empty: within limits). Run after validate(), so
 * fragments have no cycles and every field exists.
 */
export function checkLimits(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  limits: GraphqlLimits = GRAPHQL_LIMITS_DEFAULT,
): GraphQLError[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) {
      fragments.set(definition.name.value, definition);
    }
  }
  const root =
    operation.operation === 'query'
      ? schema.getQueryType()
      : operation.operation === 'mutation'
        ? schema.getMutationType()
        : schema.getSubscriptionType();
  if (root === null || root === undefined) return [];
  const measured = measureSelection(schema, operation.selectionSet, root, fragments, limits);
  const errors: GraphQLError[] = [];
  if (measured.depth > limits.depthMax) {
    errors.push(
      limitError(`query depth ${measured.depth} is over the limit of ${limits.depthMax}`),
    );
  }
  if (measured.cost > limits.costMax) {
    errors.push(
      limitError(
        `query cost ${measured.cost} is over the limit of ${limits.costMax} ` +
          `(one per field, ×${limits.listCostFactor} under each list)`,
      ),
    );
  }
  return errors;
}

/** The text-length limit, checked before parsing. */
export function checkQueryLength(
  query: string,
  limits: GraphqlLimits = GRAPHQL_LIMITS_DEFAULT,
): GraphQLError[] {
  return query.length > limits.queryCharsMax
    ? [
        limitError(
          `query of ${query.length} characters is over the limit of ${limits.queryCharsMax}`,
        ),
      ]
    : [];
}
