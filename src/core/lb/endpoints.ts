/**
 * The endpoints a balancer chooses among: an id and a weight each. Lists are validated once
 * (no duplicates, weights above zero, bounded length) and sorted by id, so that the same set
 * gives the same balancer whatever order it came in: every node that sees the same members
 * builds the same ring, table and scores.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';

export interface Endpoint {
  /** What the balancer returns: a node id or a host:port. */
  id: string;
  /** Relative share of traffic; above 0, at most WEIGHT_MAX. */
  weight: number;
}

/** Endpoints in one balancer at most (bounded like every table). */
export const ENDPOINTS_MAX = 10_000;
/** Largest weight; the ring gives a node points in proportion to it. */
export const WEIGHT_MAX = 10_000;
/** Longest endpoint id. */
export const ENDPOINT_ID_LENGTH_MAX = 255;

const ID_PATTERN = /^[^\s,=]+$/;

/** `a`, `a=3` or `127.0.0.1:7000=0.5` → an endpoint; bad text is RDB_USAGE naming `source`. */
export function parseEndpointSpec(spec: string, source = '--nodes'): Endpoint {
  const at = spec.lastIndexOf('=');
  const id = at === -1 ? spec : spec.slice(0, at);
  const weightText = at === -1 ? '1' : spec.slice(at + 1);
  const weight = /^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$/.test(weightText)
    ? Number(weightText)
    : Number.NaN;
  if (!Number.isFinite(weight) || weight <= 0 || weight > WEIGHT_MAX) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `${source}: weight of ${JSON.stringify(id)} must be a number above 0 and at most ${WEIGHT_MAX}, got ${JSON.stringify(weightText)}`,
      { hint: 'write a node as id or id=weight, e.g. --nodes a,b=3,c' },
    );
  }
  return { id, weight };
}

/**
 * Checks a list (ids well formed and distinct, weights in range, at least one and at most
 * ENDPOINTS_MAX) and returns a sorted copy. Errors are RDB_USAGE naming `source`.
 */
export function validateEndpoints(
  endpoints: readonly Endpoint[],
  source = '--nodes',
): readonly Endpoint[] {
  if (endpoints.length === 0) {
    throw new RdbnetError(ErrorCode.Usage, `${source} is empty: there is nothing to choose from`);
  }
  if (endpoints.length > ENDPOINTS_MAX) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `${source}: ${endpoints.length} nodes, at most ${ENDPOINTS_MAX}`,
    );
  }
  const seen = new Set<string>();
  for (const { id, weight } of endpoints) {
    if (id.length === 0 || id.length > ENDPOINT_ID_LENGTH_MAX || !ID_PATTERN.test(id)) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `${source}: bad node name ${JSON.stringify(id)} (1-${ENDPOINT_ID_LENGTH_MAX} characters, no spaces, commas or '=')`,
      );
    }
    if (seen.has(id)) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `${source}: node ${JSON.stringify(id)} is listed twice`,
      );
    }
    seen.add(id);
    if (!Number.isFinite(weight) || weight <= 0 || weight > WEIGHT_MAX) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `${source}: weight of ${JSON.stringify(id)} must be above 0 and at most ${WEIGHT_MAX}, got ${weight}`,
      );
    }
  }
  return [...endpoints].sort(byId);
}

/** Code-unit order: the same on every machine and locale. */
export function byId(a: Endpoint, b: Endpoint): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
