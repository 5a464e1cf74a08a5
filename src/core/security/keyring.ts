/**
 * The cluster keyring: the shared AES-256-GCM keys that seal every gossip packet, so that
 * only holders of a key can join, read or forge membership traffic.
 *
 * One key is primary: it seals everything we send and is tried first when opening. The
 * others are only accepted, which is what makes rotation non-disruptive (the memberlist /
 * serf scheme): install the new key everywhere, then make it primary everywhere, then
 * remove the old one everywhere. Between the steps, members on either side still
 * understand each other.
 *
 * Packet format (version 1):
 *
 *   [u8 version = 1][12-byte random nonce][ciphertext][16-byte GCM tag]
 *
 * The version byte and the caller's additional data (a cluster id, a transport name) are
 * authenticated, not sent: a packet sealed for another cluster or another transport fails
 * exactly like one under a key we do not hold.
 *
 * Nonces are random. With 96-bit random nonces the chance that two packets under one key
 * share a nonce stays below 2^-32 for the first 2^32 packets sealed with that key across
 * the whole cluster (NIST SP 800-38D §8.3); a GCM nonce collision leaks the authentication
 * key, so rotate the primary key well before that (at 1,000 packets/s cluster-wide, 2^32
 * is about 50 days).
 */
import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';
import { link, open, readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { inspect } from 'node:util';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { KEY_FILE_MODE, writeFileAtomic } from './certs-dir.ts';

/** AES-256 key size. */
export const KEY_BYTES = 32;
/** The only packet format so far; a new one gets a new number, never a changed meaning. */
export const KEYRING_PACKET_VERSION = 1;
export const KEYRING_VERSION_BYTES = 1;
export const KEYRING_NONCE_BYTES = 12;
export const KEYRING_TAG_BYTES = 16;
/** Bytes a sealed packet adds to its plaintext (29): subtract it from a packet budget. */
export const KEYRING_OVERHEAD_BYTES =
  KEYRING_VERSION_BYTES + KEYRING_NONCE_BYTES + KEYRING_TAG_BYTES;
/** Keys held at once, the primary included. Opening a packet may try every key, so this also
 * bounds the work a forged packet costs us. */
export const KEYRING_KEYS_MAX = 16;

const CIPHER = 'aes-256-gcm';
const EMPTY = new Uint8Array(0);

/** Why a packet could not be opened. `unknown-key`: no installed key authenticates it (sealed
 * under a key we do not hold, for another cluster id, or altered on the way — GCM cannot tell
 * these apart). */
export type KeyringOpenFailure = 'unknown-key' | 'malformed' | 'version';

/**
 * A packet that `Keyring.open` refused. The code is stable per reason: unknown-key →
 * RDB_CLUSTER_MISMATCH (the sender is not in our cluster, as far as we can tell),
 * malformed → RDB_MESSAGE_MALFORMED, version → RDB_VERSION_INCOMPATIBLE.
 */
export class KeyringOpenError extends RdbnetError {
  readonly reason: KeyringOpenFailure;

  constructor(reason: KeyringOpenFailure, message: string) {
    super(
      reason === 'unknown-key'
        ? ErrorCode.ClusterMismatch
        : reason === 'version'
          ? ErrorCode.VersionIncompatible
          : ErrorCode.MessageMalformed,
      message,
    );
    this.name = 'KeyringOpenError';
    this.reason = reason;
  }
}

/** The keyring file: every installed key, base64; `primary` is also listed in `keys`. */
export interface KeyringFile {
  primary: string;
  keys: string[];
}

interface Key {
  text: string;
  bytes: Buffer;
}

/** A fresh random key, base64 (what `install`, `use` and the keyring file take). */
export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/** Decodes a base64 key (or takes raw bytes), rejecting anything but exactly 32 bytes. */
export function decodeKey(key: string | Uint8Array): Buffer {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'base64') : Buffer.from(key);
  // Buffer.from(…, 'base64') skips characters it does not know; re-encoding catches typos
  // and truncation instead of silently using a different key.
  if (
    bytes.length !== KEY_BYTES ||
    (typeof key === 'string' && bytes.toString('base64') !== key.trim())
  ) {
    bytes.fill(0);
    throw new RdbnetError(
      ErrorCode.ConfigInvalid,
      `a keyring key must be ${KEY_BYTES} bytes, base64-encoded (44 characters)`,
      { hint: 'generate one with `openssl rand -base64 32`' },
    );
  }
  return bytes;
}

export class Keyring {
  /** keys[0] is the primary. */
  private readonly keys: Key[] = [];
  readonly keysMax: number;

  constructor(
    primary: string | Uint8Array,
    others: readonly (string | Uint8Array)[] = [],
    keysMax = KEYRING_KEYS_MAX,
  ) {
    if (!Number.isInteger(keysMax) || keysMax < 1) {
      throw new RdbnetError(ErrorCode.ConfigInvalid, 'keysMax must be an integer ≥ 1');
    }
    this.keysMax = keysMax;
    this.install(primary);
    for (const key of others) this.install(key);
  }

  /** A keyring holding one new random key. */
  static generate(): Keyring {
    return new Keyring(generateKey());
  }

  static fromFile(file: KeyringFile): Keyring {
    if (
      typeof file !== 'object' ||
      file === null ||
      typeof file.primary !== 'string' ||
      !Array.isArray(file.keys) ||
      !file.keys.every((k) => typeof k === 'string')
    ) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        'a keyring must be {"primary": "<base64>", "keys": ["<base64>", …]}',
      );
    }
    return new Keyring(file.primary, file.keys);
  }

  /** The primary key, base64. */
  get primary(): string {
    return this.keys[0]!.text;
  }

  get size(): number {
    return this.keys.length;
  }

  /** Every installed key, base64, primary first. */
  /** The primary key's bytes (a copy): what discovery's broadcast derives its own key from. */
  primaryBytes(): Uint8Array {
    return Uint8Array.from(this.keys[0]!.bytes);
  }

  list(): string[] {
    return this.keys.map((k) => k.text);
  }

  has(key: string | Uint8Array): boolean {
    return this.find(key) >= 0;
  }

  /** Adds a key that packets may be opened with. Returns false if it was installed already
   * (every keyring operation is idempotent, so a rotation script can simply be re-run). */
  install(key: string | Uint8Array): boolean {
    const bytes = decodeKey(key);
    if (this.indexOf(bytes) >= 0) {
      bytes.fill(0);
      return false;
    }
    if (this.keys.length >= this.keysMax) {
      bytes.fill(0);
      throw new RdbnetError(ErrorCode.Usage, `the keyring is full (${this.keysMax} keys)`, {
        hint: 'remove a key that is no longer in use first',
      });
    }
    this.keys.push({ text: bytes.toString('base64'), bytes });
    return true;
  }

  /** Makes an installed key the primary. Returns false if it already was. */
  use(key: string | Uint8Array): boolean {
    const index = this.find(key);
    if (index < 0) {
      throw new RdbnetError(ErrorCode.Usage, 'that key is not installed', {
        hint: 'install it (on every member) before making it primary',
      });
    }
    if (index === 0) return false;
    const [chosen] = this.keys.splice(index, 1);
    this.keys.unshift(chosen!);
    return true;
  }

  /** Forgets a key; packets under it fail from now on. Returns false if it was not installed.
   * The primary cannot be removed: `use` another key first. */
  remove(key: string | Uint8Array): boolean {
    const index = this.find(key);
    if (index < 0) return false;
    if (index === 0) {
      throw new RdbnetError(ErrorCode.Usage, 'cannot remove the primary key', {
        hint: 'make another key primary with `use` first',
      });
    }
    const [removed] = this.keys.splice(index, 1);
    removed!.bytes.fill(0);
    return true;
  }

  /** Seals `plaintext` with the primary key: version, nonce, ciphertext, tag. */
  seal(plaintext: Uint8Array, aad: Uint8Array | string = EMPTY): Buffer {
    const out = Buffer.allocUnsafe(KEYRING_OVERHEAD_BYTES + plaintext.length);
    out[0] = KEYRING_PACKET_VERSION;
    const nonce = randomBytes(KEYRING_NONCE_BYTES);
    nonce.copy(out, KEYRING_VERSION_BYTES);
    const cipher = createCipheriv(CIPHER, this.keys[0]!.bytes, nonce, {
      authTagLength: KEYRING_TAG_BYTES,
    });
    cipher.setAAD(additionalData(KEYRING_PACKET_VERSION, aad));
    const headerBytes = KEYRING_VERSION_BYTES + KEYRING_NONCE_BYTES;
    let offset = headerBytes;
    offset += cipher.update(plaintext).copy(out, offset);
    offset += cipher.final().copy(out, offset);
    cipher.getAuthTag().copy(out, offset);
    return out;
  }

  /** Opens a sealed packet with the primary key, then each other key. Throws
   * KeyringOpenError when it is too short, of an unknown version, or no key opens it. */
  open(packet: Uint8Array, aad: Uint8Array | string = EMPTY): Buffer {
    if (packet.length < KEYRING_OVERHEAD_BYTES) {
      throw new KeyringOpenError(
        'malformed',
        `sealed packet of ${packet.length} bytes is shorter than its ${KEYRING_OVERHEAD_BYTES}-byte envelope`,
      );
    }
    const version = packet[0]!;
    if (version !== KEYRING_PACKET_VERSION) {
      throw new KeyringOpenError('version', `sealed packet version ${version} is not supported`);
    }
    const headerBytes = KEYRING_VERSION_BYTES + KEYRING_NONCE_BYTES;
    const nonce = packet.subarray(KEYRING_VERSION_BYTES, headerBytes);
    const ciphertext = packet.subarray(headerBytes, packet.length - KEYRING_TAG_BYTES);
    const tag = packet.subarray(packet.length - KEYRING_TAG_BYTES);
    const data = additionalData(version, aad);
    for (const key of this.keys) {
      const decipher = createDecipheriv(CIPHER, key.bytes, nonce, {
        authTagLength: KEYRING_TAG_BYTES,
      });
      decipher.setAAD(data);
      decipher.setAuthTag(tag);
      const head = decipher.update(ciphertext);
      try {
        const tail = decipher.final();
        return tail.length === 0 ? head : Buffer.concat([head, tail]);
      } catch {
        // Authentication failed under this key: try the next one.
      }
    }
    throw new KeyringOpenError('unknown-key', 'no installed key opens the packet');
  }

  toFile(): KeyringFile {
    return { primary: this.primary, keys: this.list() };
  }

  /** Keys never show up in logs or a REPL by accident; `toFile()` is the one way out. */
  [inspect.custom](): string {
    return `Keyring { keys: ${this.keys.length} }`;
  }

  toJSON(): { keys: number } {
    return { keys: this.keys.length };
  }

  private find(key: string | Uint8Array): number {
    const bytes = decodeKey(key);
    const index = this.indexOf(bytes);
    bytes.fill(0);
    return index;
  }

  private indexOf(bytes: Buffer): number {
    return this.keys.findIndex((k) => timingSafeEqual(k.bytes, bytes));
  }
}

function additionalData(version: number, aad: Uint8Array | string): Buffer {
  const extra = typeof aad === 'string' ? Buffer.from(aad, 'utf8') : aad;
  const out = Buffer.allocUnsafe(1 + extra.length);
  out[0] = version;
  out.set(extra, 1);
  return out;
}

// --- the keyring file -----------------------------------------------------------------------

/** Writes the keyring atomically, mode 0600 (readers never see a torn or world-readable file). */
export async function saveKeyring(path: string, keyring: Keyring): Promise<void> {
  await writeFileAtomic(path, serialize(keyring), KEY_FILE_MODE);
}

/**
 * Reads a keyring file. Refuses one that group or others may read or write (as ssh does
 * with private keys): the keyring is the cluster's membership secret.
 */
export async function loadKeyring(path: string): Promise<Keyring> {
  let text: string;
  try {
    const info = await stat(path);
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `keyring file ${path} is accessible by others (mode ${(info.mode & 0o777).toString(8)})`,
        { hint: `chmod 600 ${path}` },
      );
    }
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof RdbnetError) throw error;
    const code = errorCode(error);
    throw new RdbnetError(
      ErrorCode.ConfigInvalid,
      code === 'ENOENT'
        ? `keyring file not found: ${path}`
        : `cannot read keyring file ${path} (${code})`,
      { cause: error },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new RdbnetError(ErrorCode.ConfigInvalid, `keyring file ${path} is not JSON`, {
      cause: error,
    });
  }
  try {
    return Keyring.fromFile(parsed as KeyringFile);
  } catch (error) {
    if (!(error instanceof RdbnetError)) throw error;
    throw new RdbnetError(ErrorCode.ConfigInvalid, `keyring file ${path}: ${error.message}`, {
      hint: error.hint,
      cause: error,
    });
  }
}

/**
 * Loads the keyring at `path`, creating it with one new key if there is none. Several nodes
 * started together on one directory (a local cluster) all end up with the same keyring:
 * the file is published with link(2), which fails if it exists, so exactly one creator wins
 * and the others read the winner's complete file.
 */
export async function ensureKeyring(path: string): Promise<{ keyring: Keyring; created: boolean }> {
  try {
    return { keyring: await loadKeyring(path), created: false };
  } catch (error) {
    if (!(error instanceof RdbnetError) || errorCode(error.cause) !== 'ENOENT') throw error;
  }
  const keyring = Keyring.generate();
  const temp = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
  // writeFileAtomic creates the directory and sets the mode exactly; publishing is the link.
  await writeFileAtomic(temp, serialize(keyring), KEY_FILE_MODE);
  let created = false;
  try {
    await link(temp, path);
    created = true;
  } catch (error) {
    if (errorCode(error) !== 'EEXIST') throw error;
  } finally {
    await rm(temp, { force: true });
  }
  if (created) {
    await syncDirectory(dirname(path));
    return { keyring, created };
  }
  return { keyring: await loadKeyring(path), created: false };
}

function serialize(keyring: Keyring): string {
  return `${JSON.stringify(keyring.toFile(), null, 2)}\n`;
}

async function syncDirectory(dir: string): Promise<void> {
  // Makes the new directory entry durable; where a directory cannot be opened for fsync,
  // the link is as durable as it gets.
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // best effort
  } finally {
    await handle?.close();
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}
