/**
 * The revocation list: certificate serials a node refuses at every handshake. A plain file
 * of upper-case hex serials, one per line, so operators can read and diff it.
 */
import { readFile } from 'node:fs/promises';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { CERT_FILE_MODE, writeFileAtomic } from './certs-dir.ts';

/** A list larger than this is refused: revocation is for incidents, not for lifecycle. */
export const REVOKED_SERIALS_MAX = 100_000;

export function normalizeSerial(serial: string): string {
  const hex = serial.trim().replace(/:/g, '').toUpperCase();
  if (!/^[0-9A-F]{1,64}$/.test(hex)) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `invalid certificate serial '${serial}': expected hex digits`,
    );
  }
  // One canonical spelling, the one X509Certificate.serialNumber and `certs list` show: whole
  // bytes without leading zero bytes, so 00AB, AB and 0AB are one serial and 0FEB stays 0FEB.
  const stripped = hex.replace(/^0+(?=.)/, '');
  return stripped.length % 2 === 1 ? `0${stripped}` : stripped;
}

export async function readRevocations(path: string): Promise<Set<string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw error;
  }
  const serials = text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line !== '')
    .map(normalizeSerial);
  if (serials.length > REVOKED_SERIALS_MAX) {
    throw new RdbnetError(
      ErrorCode.ConfigInvalid,
      `${path} lists more than ${REVOKED_SERIALS_MAX} serials`,
    );
  }
  return new Set(serials);
}

export async function writeRevocations(
  path: string,
  serials: Iterable<string>,
): Promise<Set<string>> {
  const set = new Set([...serials].map(normalizeSerial));
  if (set.size > REVOKED_SERIALS_MAX) {
    throw new RdbnetError(ErrorCode.Usage, `revocation list over ${REVOKED_SERIALS_MAX} serials`);
  }
  const body = [...set].sort().join('\n');
  await writeFileAtomic(
    path,
    `# revoked certificate serials, one per line\n${body}${body ? '\n' : ''}`,
    CERT_FILE_MODE,
  );
  return set;
}

export function isRevoked(revoked: ReadonlySet<string>, serialNumber: string): boolean {
  return revoked.size > 0 && revoked.has(normalizeSerial(serialNumber));
}
