/**
 * What the cloud providers (aws, azure, gce) take alike: the `port` and `timeout` keys (their
 * entries in each key table, and how their values are read), and when an access token is
 * renewed.
 */
import { API_TIMEOUT_BOUNDS, REQUEST_TIMEOUT_MS_DEFAULT } from '../../http.ts';
import type { ProviderKey } from '../../provider.ts';
import { durationValue, NODE_PORT_DEFAULT, portValue, valueOr } from '../../values.ts';

/** An access token (Azure AD, Google OAuth) is renewed this long before it expires. */
export const TOKEN_REFRESH_MARGIN_MS = 60_000;

export const PORT_KEY: ProviderKey = {
  name: 'port',
  required: false,
  doc: `the nodes' rdbnet port (default ${NODE_PORT_DEFAULT})`,
};

export const TIMEOUT_KEY: ProviderKey = {
  name: 'timeout',
  required: false,
  doc: `per-request deadline, like 5s or 500ms (default ${REQUEST_TIMEOUT_MS_DEFAULT / 1000}s)`,
};

/** `port=` of `provider`, else NODE_PORT_DEFAULT. */
export function portOf(provider: string, args: ReadonlyMap<string, string>): number {
  return valueOr(args.get('port'), NODE_PORT_DEFAULT, (text) => portValue(provider, 'port', text));
}

/** `timeout=` of `provider` within API_TIMEOUT_BOUNDS, else REQUEST_TIMEOUT_MS_DEFAULT. */
export function timeoutMsOf(provider: string, args: ReadonlyMap<string, string>): number {
  return valueOr(args.get('timeout'), REQUEST_TIMEOUT_MS_DEFAULT, (text) =>
    durationValue(provider, 'timeout', text, API_TIMEOUT_BOUNDS),
  );
}
