import { ErrorCode, RdbnetError } from '../errors.ts';

export type Role = 'node' | 'client';

/**
 * What a client certificate may do on a node: `read` asks (status, health, members, …),
 * `admin` also changes things (certificates, keyring, membership). The full table of which
 * operation needs which role is in src/core/api/authorization.ts.
 */
export type ClientRole = 'read' | 'admin';
export const CLIENT_ROLES: readonly ClientRole[] = ['read', 'admin'];
/** The role of a client certificate that names none (issued before roles existed). */
export const LEGACY_CLIENT_ROLE: ClientRole = 'read';

/**
 * Who a certificate speaks for; carried in the certificate as one `rdbnet://` URI SAN, and
 * for clients a second URI SAN `urn:rdbnet:role:<role>` (see roleUri).
 */
export interface Identity {
  cluster: string;
  role: Role;
  id: string;
  /**
   * Client certificates only: the role the certificate grants. Absent on node certificates
   * and on client certificates made before roles existed (those count as LEGACY_CLIENT_ROLE).
   */
  clientRole?: ClientRole;
}

// One DNS label's worth of characters, so names stay safe in URIs, file names and hostnames.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const URI_PATTERN = /^rdbnet:\/\/([^/]+)\/(node|client)\/([^/]+)$/;
/**
 * The role rides in its own URI SAN, in another scheme than the identity's `rdbnet:`, so a
 * node or tool that predates roles still finds exactly one identity URI and accepts the
 * certificate (as an unprivileged client).
 */
const ROLE_URI_PREFIX = 'urn:rdbnet:role:';
const MAX_SHOWN_CHARS = 80;

/** Returns `value` unchanged when it is a valid cluster name, node id or client name. */
export function validateName(kind: string, value: string): string {
  if (typeof value === 'string' && NAME_PATTERN.test(value)) return value;
  const shown = typeof value === 'string' ? value.slice(0, MAX_SHOWN_CHARS) : String(value);
  throw new RdbnetError(
    ErrorCode.Usage,
    `invalid ${kind} ${JSON.stringify(shown)}: use 1-63 characters from A-Z a-z 0-9 . _ -, ` +
      'starting with a letter or digit',
  );
}

export function identityUri(identity: Identity): string {
  validateName('cluster name', identity.cluster);
  if (identity.role !== 'node' && identity.role !== 'client') {
    throw new RdbnetError(ErrorCode.Usage, `invalid role ${JSON.stringify(identity.role)}`);
  }
  validateName(identity.role === 'node' ? 'node id' : 'client name', identity.id);
  return `rdbnet://${identity.cluster}/${identity.role}/${identity.id}`;
}

/** The URI SAN naming a client certificate's role: `urn:rdbnet:role:admin`. */
export function roleUri(role: ClientRole): string {
  if (!CLIENT_ROLES.includes(role)) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `invalid client role ${JSON.stringify(role)}: use ${CLIENT_ROLES.join(' or ')}`,
    );
  }
  return `${ROLE_URI_PREFIX}${role}`;
}

/** Returns `value` as a ClientRole, or a usage error naming the choices. */
export function parseClientRole(value: string): ClientRole {
  const role = CLIENT_ROLES.find((known) => known === value);
  if (role === undefined) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `invalid client role ${JSON.stringify(String(value).slice(0, MAX_SHOWN_CHARS))}: use ` +
        CLIENT_ROLES.join(' or '),
    );
  }
  return role;
}

/** Every URI SAN a certificate for `identity` carries: the identity, then a client's role. */
export function identityUris(identity: Identity): string[] {
  const uri = identityUri(identity);
  if (identity.role === 'node') {
    if (identity.clientRole !== undefined) {
      throw new RdbnetError(ErrorCode.Usage, 'a node certificate carries no client role');
    }
    return [uri];
  }
  return [uri, roleUri(identity.clientRole ?? LEGACY_CLIENT_ROLE)];
}

export function parseIdentityUri(uri: string): Identity | null {
  const match = URI_PATTERN.exec(uri);
  if (match === null) return null;
  const [, cluster, role, id] = match;
  if (cluster === undefined || id === undefined || (role !== 'node' && role !== 'client')) {
    return null;
  }
  if (!NAME_PATTERN.test(cluster) || !NAME_PATTERN.test(id)) return null;
  return { cluster, role, id };
}

export interface SubjectAltNameEntry {
  type: string;
  value: string;
}

/**
 * Splits Node's `X509Certificate.subjectAltName` text into entries. Node JSON-quotes any value
 * holding a comma or quote, so a DNS name like `a, URI:rdbnet://...` cannot forge an extra
 * entry; a plain split on ', ' would be fooled by exactly that.
 */
export function parseSubjectAltName(san: string | undefined): SubjectAltNameEntry[] {
  const entries: SubjectAltNameEntry[] = [];
  if (san === undefined || san === '') return entries;
  let pos = 0;
  while (pos < san.length) {
    const colon = san.indexOf(':', pos);
    if (colon === -1) break;
    const type = san.slice(pos, colon);
    let value: string;
    if (san[colon + 1] === '"') {
      const end = closingQuote(san, colon + 2);
      if (end === -1) break;
      try {
        value = JSON.parse(san.slice(colon + 1, end + 1)) as string;
      } catch {
        break;
      }
      pos = end + 1;
    } else {
      const end = san.indexOf(', ', colon + 1);
      value = san.slice(colon + 1, end === -1 ? san.length : end);
      pos = end === -1 ? san.length : end;
    }
    entries.push({ type, value });
    if (san.startsWith(', ', pos)) pos += 2;
    else if (pos < san.length) break;
  }
  return entries;
}

function closingQuote(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}

/**
 * The identity named by the certificate's single rdbnet URI SAN, with the client role of its
 * single role URI SAN. More than one of either is ambiguous, a role on a node certificate or
 * an unknown role is malformed: each yields null rather than a guess.
 */
export function identityFromSubjectAltName(san: string | undefined): Identity | null {
  const uris = parseSubjectAltName(san).filter((entry) => entry.type === 'URI');
  const identities = uris.filter((entry) => entry.value.toLowerCase().startsWith('rdbnet:'));
  if (identities.length !== 1) return null;
  const identity = parseIdentityUri(identities[0]!.value);
  if (identity === null) return null;
  const roles = uris.filter((entry) => entry.value.toLowerCase().startsWith(ROLE_URI_PREFIX));
  if (roles.length === 0) return identity;
  if (roles.length > 1 || identity.role !== 'client') return null;
  const named = roles[0]!.value.slice(ROLE_URI_PREFIX.length);
  const clientRole = CLIENT_ROLES.find((role) => role === named);
  return clientRole === undefined ? null : { ...identity, clientRole };
}

/** The role a client identity grants: its own, or LEGACY_CLIENT_ROLE when it names none. */
export function clientRoleOf(identity: Identity): ClientRole {
  return identity.clientRole ?? LEGACY_CLIENT_ROLE;
}
