/**
 * What the etcd and consul providers share about registrations: the id a node may register
 * under, the JSON value etcd stores (`{"id","address","meta"}`), comparing node lists so a
 * watch reports only changes, and a pause that an abort ends early.
 */
import { ErrorCode, RdbnetError } from '../../../errors.ts';
import type { DiscoveredNode, SelfRegistration } from '../../provider.ts';
import { endpointValue, parseEndpointText } from '../../values.ts';

/** Node ids as the rest of rdbnet names them (security/identity.ts): safe in a key and a URL. */
export const REGISTRATION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** A registration's meta holds at most this many labels; more are a mistake. */
export const REGISTRATION_META_KEYS_MAX = 64;
/** A stored registration value longer than this is not one of ours. */
export const REGISTRATION_VALUE_CHARS_MAX = 16 * 1024;

export function encodeRegistrationValue(self: SelfRegistration): string {
  return JSON.stringify({ id: self.id, address: self.address, meta: self.meta });
}

/** A stored value as a node, or a one-line reason it is not one. */
export function decodeRegistrationValue(value: string, source: string): DiscoveredNode | string {
  if (value.length > REGISTRATION_VALUE_CHARS_MAX) {
    return `value longer than ${REGISTRATION_VALUE_CHARS_MAX} characters`;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(value);
  } catch {
    return 'value is not JSON';
  }
  if (typeof doc !== 'object' || doc === null) return 'value is not a JSON object';
  const { id, address, meta } = doc as { id?: unknown; address?: unknown; meta?: unknown };
  if (typeof address !== 'string' || parseEndpointText(address) === undefined) {
    return 'address is not host:port';
  }
  const node: DiscoveredNode = { address, source, meta: {} };
  if (typeof id === 'string' && REGISTRATION_ID_PATTERN.test(id)) node.id = id;
  if (typeof meta === 'object' && meta !== null) {
    for (const [key, label] of Object.entries(meta).slice(0, REGISTRATION_META_KEYS_MAX)) {
      if (typeof label === 'string') node.meta[key] = label;
    }
  }
  return node;
}

export function sameNodeLists(a: readonly DiscoveredNode[], b: readonly DiscoveredNode[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Checks what a node registers before anything is written. */
export function checkSelfRegistration(provider: string, self: SelfRegistration): void {
  if (!REGISTRATION_ID_PATTERN.test(self.id)) {
    throw new RdbnetError(
      ErrorCode.DiscoverySyntax,
      `provider=${provider}: node id "${self.id}" cannot be registered (letters, digits, . _ -; at most 63)`,
    );
  }
  endpointValue(provider, 'address', self.address);
}
