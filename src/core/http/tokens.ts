/**
 * Bearer tokens for the HTTP API: `rdbnet tokens create|list|revoke` write them, the node's
 * HTTP server checks them. A token is `rdbt_<id>_<secret>` where the secret is 256 random
 * bits; only the SHA-256 of the secret is kept (a 256-bit random secret cannot be guessed, so
 * a slow hash would add cost per request and no safety). The store is one JSON file in the
 * node's data dir (docs/data-dir.md), written atomically; a running node re-reads it at most
 * every TOKEN_RELOAD_MS, so a revoked token stops working within that time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { writeFileAtomic } from '../security/certs-dir.ts';
import type { ClientRole } from '../security/identity.ts';

export const TOKENS_FILE_NAME = 'http-tokens.json';
/** How often a running node looks at the tokens file again (ms). */
export const TOKEN_RELOAD_MS = 1000;
/** Tokens one store keeps (revoked ones are removed): a bound on the file and on lookups. */
export const TOKENS_MAX = 1024;
/** Longest lifetime a token may be given: 10 years. */
export const TOKEN_TTL_MS_MAX = 10 * 365 * 86_400_000;

const TOKEN_PATTERN = /^rdbt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export interface StoredToken {
  id: string;
  name: string;
  role: ClientRole;
  /** Hex SHA-256 of the secret part. */
  sha256: string;
  createdAt: string;
  /** ISO time after which the token is refused; null: never. */
  expiresAt: string | null;
}

/** What `tokens list` shows: a token without its hash. */
export type TokenInfo = Omit<StoredToken, 'sha256'>;

export function tokensPath(dataDir: string): string {
  return join(dataDir, TOKENS_FILE_NAME);
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function parseStore(text: string, path: string): StoredToken[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new RdbnetError(ErrorCode.ConfigInvalid, `${path} is not valid JSON`, { cause });
  }
  const tokens = (parsed as { tokens?: unknown }).tokens;
  if (!Array.isArray(tokens)) {
    throw new RdbnetError(ErrorCode.ConfigInvalid, `${path} holds no "tokens" array`);
  }
  return tokens as StoredToken[];
}

export async function readTokens(dataDir: string): Promise<StoredToken[]> {
  const path = tokensPath(dataDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new RdbnetError(ErrorCode.StorageIo, `cannot read ${path}: ${(error as Error).message}`);
  }
  return parseStore(text, path);
}

async function writeTokens(dataDir: string, tokens: StoredToken[]): Promise<void> {
  await writeFileAtomic(tokensPath(dataDir), `${JSON.stringify({ tokens }, null, 2)}\n`, 0o600);
}

export function validateTokenName(name: string): string {
  if (NAME_PATTERN.test(name)) return name;
  throw new RdbnetError(
    ErrorCode.Usage,
    `invalid token name ${JSON.stringify(name.slice(0, 80))}: use 1-63 characters from ` +
      'A-Z a-z 0-9 . _ -, starting with a letter or digit',
  );
}

/** Creates a token; the returned `token` is the only time its secret exists outside hashes. */
export async function createToken(
  dataDir: string,
  request: { role: ClientRole; name: string; ttlMs: number | null; nowMs: number },
): Promise<{ token: string; info: TokenInfo }> {
  validateTokenName(request.name);
  if (request.ttlMs !== null && (request.ttlMs <= 0 || request.ttlMs > TOKEN_TTL_MS_MAX)) {
    throw new RdbnetError(ErrorCode.Usage, `--ttl must be above 0 and at most 10 years`);
  }
  const tokens = await readTokens(dataDir);
  if (tokens.length >= TOKENS_MAX) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `${tokensPath(dataDir)} already holds ${TOKENS_MAX} tokens`,
      { hint: 'revoke tokens no longer used: rdbnet tokens revoke ID' },
    );
  }
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const stored: StoredToken = {
    id,
    name: request.name,
    role: request.role,
    sha256: sha256Hex(secret),
    createdAt: new Date(request.nowMs).toISOString(),
    expiresAt:
      request.ttlMs === null ? null : new Date(request.nowMs + request.ttlMs).toISOString(),
  };
  await writeTokens(dataDir, [...tokens, stored]);
  const { sha256: _hash, ...info } = stored;
  return { token: `rdbt_${id}_${secret}`, info };
}

export async function listTokens(dataDir: string): Promise<TokenInfo[]> {
  return (await readTokens(dataDir)).map(({ sha256: _hash, ...info }) => info);
}

/** Removes token `id`; RDB_USAGE when there is none. */
export async function revokeToken(dataDir: string, id: string): Promise<TokenInfo> {
  const tokens = await readTokens(dataDir);
  const found = tokens.find((token) => token.id === id);
  if (found === undefined) {
    throw new RdbnetError(ErrorCode.Usage, `no token with id ${JSON.stringify(id.slice(0, 40))}`, {
      hint: 'rdbnet tokens list shows the ids',
    });
  }
  await writeTokens(
    dataDir,
    tokens.filter((token) => token.id !== id),
  );
  const { sha256: _hash, ...info } = found;
  return info;
}

/** Who a valid token speaks for. */
export interface TokenPrincipal {
  id: string;
  name: string;
  role: ClientRole;
}

/**
 * The node's view of the tokens file: re-read (when its mtime changed) at most every
 * TOKEN_RELOAD_MS. `nowMs` is injected so expiry can be tested without waiting.
 */
export class TokenVerifier {
  private tokens = new Map<string, StoredToken>();
  private checkedAtMs = Number.NEGATIVE_INFINITY;
  /** The file's inode, mtime and size when last read: a rename changes the inode. */
  private version = '';
  private reloading: Promise<void> | null = null;
  private readonly dataDir: string;
  private readonly nowMs: () => number;

  constructor(dataDir: string, nowMs: () => number) {
    this.dataDir = dataDir;
    this.nowMs = nowMs;
  }

  /** The token's principal, or null when it is unknown, malformed, revoked or expired. */
  async verify(bearer: string): Promise<TokenPrincipal | null> {
    const match = TOKEN_PATTERN.exec(bearer);
    if (match === null) return null;
    await this.refresh();
    const stored = this.tokens.get(match[1]!);
    if (stored === undefined) return null;
    const given = Buffer.from(sha256Hex(match[2]!), 'hex');
    const kept = Buffer.from(stored.sha256, 'hex');
    if (given.length !== kept.length || !timingSafeEqual(given, kept)) return null;
    if (stored.expiresAt !== null && Date.parse(stored.expiresAt) <= this.nowMs()) return null;
    return { id: stored.id, name: stored.name, role: stored.role };
  }

  private refresh(): Promise<void> {
    if (this.nowMs() - this.checkedAtMs < TOKEN_RELOAD_MS) return Promise.resolve();
    this.reloading ??= this.reload().finally(() => {
      this.checkedAtMs = this.nowMs();
      this.reloading = null;
    });
    return this.reloading;
  }

  private async reload(): Promise<void> {
    let version: string;
    try {
      const info = await stat(tokensPath(this.dataDir));
      version = `${info.ino}:${info.mtimeMs}:${info.size}`;
    } catch {
      this.tokens = new Map();
      this.version = '';
      return;
    }
    if (version === this.version) return;
    let tokens: StoredToken[];
    try {
      tokens = await readTokens(this.dataDir);
    } catch {
      // Fail closed: a file that cannot be read or parsed accepts no token (401), rather
      // than failing every request (500); `rdbnet tokens list` names what is wrong with it.
      tokens = [];
    }
    this.tokens = new Map(tokens.slice(0, TOKENS_MAX).map((token) => [token.id, token]));
    this.version = version;
  }
}
