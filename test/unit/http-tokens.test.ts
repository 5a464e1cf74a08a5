/**
 * Bearer tokens of the HTTP face: the store keeps only hashes, a token is accepted with its
 * role until it expires (injected clock) or is revoked (seen after TOKEN_RELOAD_MS), and a
 * token with one character changed, or of another shape, is refused.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isRdbnetError } from '../../src/core/errors.ts';
import {
  createToken,
  listTokens,
  revokeToken,
  TOKEN_RELOAD_MS,
  TokenVerifier,
  tokensPath,
} from '../../src/core/http/tokens.ts';
import { tempHome } from '../helpers/processes.ts';

let home: { dir: string; cleanup(): Promise<void> };

before(async () => {
  home = await tempHome('rdbnet-tokens-');
});
after(() => home.cleanup());

test('created tokens verify with their role; the file holds no secret', async () => {
  const dataDir = join(home.dir, 'a');
  let now = Date.parse('2026-01-01T00:00:00Z');
  const read = await createToken(dataDir, { role: 'read', name: 'dash', ttlMs: null, nowMs: now });
  const admin = await createToken(dataDir, {
    role: 'admin',
    name: 'ops',
    ttlMs: 60_000,
    nowMs: now,
  });
  const stored = await readFile(tokensPath(dataDir), 'utf8');
  // The secret is base64url, which may itself hold '_': everything after the 16-digit id.
  const secretOf = (token: string) => /^rdbt_[0-9a-f]{16}_(.+)$/.exec(token)![1]!;
  for (const { token } of [read, admin]) {
    assert.equal(secretOf(token).length, 43);
    assert.ok(!stored.includes(secretOf(token)));
  }
  assert.deepEqual(
    (await listTokens(dataDir)).map((t) => [t.name, t.role, t.expiresAt]),
    [
      ['dash', 'read', null],
      ['ops', 'admin', '2026-01-01T00:01:00.000Z'],
    ],
  );
  const verifier = new TokenVerifier(dataDir, () => now);
  assert.deepEqual(await verifier.verify(read.token), {
    id: read.info.id,
    name: 'dash',
    role: 'read',
  });
  assert.equal((await verifier.verify(admin.token))?.role, 'admin');

  // One character of the secret changed; wrong shapes.
  const last = read.token.at(-1) === 'A' ? 'B' : 'A';
  assert.equal(await verifier.verify(`${read.token.slice(0, -1)}${last}`), null);
  for (const bad of [
    '',
    'rdbt_',
    'Bearer x',
    `${read.token}x`,
    read.token.replace('rdbt_', 'rdbx_'),
  ]) {
    assert.equal(await verifier.verify(bad), null, bad);
  }

  // Expiry, by the injected clock.
  now += 60_000;
  assert.equal(await verifier.verify(admin.token), null);
  assert.notEqual(await verifier.verify(read.token), null);
});

test('a revoked token is refused once the verifier looks at the file again', async () => {
  const dataDir = join(home.dir, 'b');
  let now = 1_000_000;
  const made = await createToken(dataDir, { role: 'admin', name: 'x', ttlMs: null, nowMs: now });
  const verifier = new TokenVerifier(dataDir, () => now);
  assert.notEqual(await verifier.verify(made.token), null);
  await revokeToken(dataDir, made.info.id);
  now += TOKEN_RELOAD_MS;
  assert.equal(await verifier.verify(made.token), null);
  await assert.rejects(revokeToken(dataDir, made.info.id), (error) =>
    isRdbnetError(error, 'RDB_USAGE'),
  );
});

test('bad names and lifetimes are RDB_USAGE, and nothing is written', async () => {
  const dataDir = join(home.dir, 'c');
  await assert.rejects(
    createToken(dataDir, { role: 'read', name: 'no spaces', ttlMs: null, nowMs: 0 }),
    (error) => isRdbnetError(error, 'RDB_USAGE'),
  );
  await assert.rejects(
    createToken(dataDir, { role: 'read', name: 'ok', ttlMs: 0, nowMs: 0 }),
    (error) => isRdbnetError(error, 'RDB_USAGE'),
  );
  assert.deepEqual(await listTokens(dataDir), []);
});

test('a tokens file that cannot be parsed accepts no token (fail closed, not a crash)', async () => {
  const dataDir = join(home.dir, 'd');
  let now = 5_000_000;
  const made = await createToken(dataDir, { role: 'admin', name: 'x', ttlMs: null, nowMs: now });
  const verifier = new TokenVerifier(dataDir, () => now);
  assert.notEqual(await verifier.verify(made.token), null);
  await writeFile(tokensPath(dataDir), '{ not json');
  now += TOKEN_RELOAD_MS;
  assert.equal(await verifier.verify(made.token), null);
  await assert.rejects(listTokens(dataDir), (error) => isRdbnetError(error, 'RDB_CONFIG_INVALID'));
});
