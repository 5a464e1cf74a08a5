import { ErrorCode, RdbnetError } from '../errors.ts';

export type Role = 'node' | 'client';

/** Who a certificate speaks for; carried in the certificate as one `rdbnet://` URI SAN. */
export interface Identity {
  cluster: string;
  role: Role;
  id: string;
}

// One DNS label's worth of characters, so names stay safe in URIs, file names and hostnames.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const URI_PATTERN = /^rdbnet:\/\/([^/]+)\/(node|client)\/([^/]+)$/;
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
 * The identity named by the certificate's single rdbnet URI SAN. More than one rdbnet URI is
 * ambiguous, so it yields null rather than picking one.
 */
export function identityFromSubjectAltName(san: string | undefined): Identity | null {
  const uris = parseSubjectAltName(san).filter(
    (entry) => entry.type === 'URI' && entry.value.toLowerCase().startsWith('rdbnet:'),
  );
  if (uris.length !== 1) return null;
  return parseIdentityUri(uris[0]!.value);
}
