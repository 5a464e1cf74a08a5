/**
 * The cluster keyring: sealing, refusal of anything it did not seal, the install → use →
 * remove rotation, bounds, and the 0600 keyring file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  decodeKey,
  ensureKeyring,
  generateKey,
  KEY_BYTES,
  KEYRING_KEYS_MAX,
  KEYRING_OVERHEAD_BYTES,
  Keyring,
  KeyringOpenError,
  type KeyringOpenFailure,
  loadKeyring,
  saveKeyring,
} from '../../src/core/security/keyring.ts';

const AAD = 'test-cluster/gossip-udp';
const text = (s: string) => new TextEncoder().encode(s);

function openFails(reason: KeyringOpenFailure) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof KeyringOpenError, `expected KeyringOpenError, got ${error}`);
    assert.equal(error.reason, reason);
    assert.equal(
      error.code,
      reason === 'unknown-key'
        ? ErrorCode.ClusterMismatch
        : reason === 'version'
          ? ErrorCode.VersionIncompatible
          : ErrorCode.MessageMalformed,
    );
    return true;
  };
}

const refused = (code: string) => (error: unknown) => isRdbnetError(error) && error.code === code;

describe('seal and open', () => {
  test('round trip, with the documented envelope', () => {
    const ring = Keyring.generate();
    const plaintext = text('ping 42');
    const sealed = ring.seal(plaintext, AAD);
    assert.equal(sealed.length, plaintext.length + KEYRING_OVERHEAD_BYTES);
    assert.equal(KEYRING_OVERHEAD_BYTES, 29);
    assert.equal(sealed[0], 1, 'version byte');
    assert.deepEqual(new Uint8Array(ring.open(sealed, AAD)), plaintext);
    // Random nonces: sealing the same plaintext twice gives different packets.
    assert.notDeepEqual(ring.seal(plaintext, AAD), sealed);
    // The empty plaintext is a valid packet too.
    assert.equal(ring.open(ring.seal(new Uint8Array(0), AAD), AAD).length, 0);
  });

  test('any altered byte, or other additional data, fails as unknown-key', () => {
    const ring = Keyring.generate();
    const sealed = ring.seal(text('alive n1 incarnation 7'), AAD);
    for (let i = 1; i < sealed.length; i++) {
      const tampered = Buffer.from(sealed);
      tampered[i]! ^= 0x01;
      assert.throws(() => ring.open(tampered, AAD), openFails('unknown-key'), `byte ${i}`);
    }
    assert.throws(() => ring.open(sealed, 'other-cluster/gossip-udp'), openFails('unknown-key'));
    assert.throws(() => ring.open(sealed.subarray(0, sealed.length - 1), AAD), /./);
  });

  test('a packet under a key we do not hold fails as unknown-key', () => {
    const ours = Keyring.generate();
    const theirs = Keyring.generate();
    assert.throws(() => ours.open(theirs.seal(text('hello'), AAD), AAD), openFails('unknown-key'));
  });

  test('short packets are malformed, other versions are refused', () => {
    const ring = Keyring.generate();
    assert.throws(() => ring.open(new Uint8Array(0), AAD), openFails('malformed'));
    assert.throws(
      () => ring.open(new Uint8Array(KEYRING_OVERHEAD_BYTES - 1).fill(1), AAD),
      openFails('malformed'),
    );
    const sealed = ring.seal(text('x'), AAD);
    sealed[0] = 2;
    assert.throws(() => ring.open(sealed, AAD), openFails('version'));
  });
});

describe('rotation', () => {
  test('install, use, remove: old packets open until their key is removed', () => {
    const oldKey = generateKey();
    const newKey = generateKey();
    const ring = new Keyring(oldKey);
    const underOld = ring.seal(text('before'), AAD);

    // Step 1, on every member: install. We still seal with the old key.
    assert.equal(ring.install(newKey), true);
    assert.equal(ring.install(newKey), false, 'idempotent');
    assert.equal(ring.primary, oldKey);
    const alsoOld = ring.seal(text('still old'), AAD);
    assert.deepEqual(ring.list(), [oldKey, newKey]);

    // Step 2: use. New packets are sealed with the new key; a member that only has the
    // new key opens them, and we still open the old ones.
    assert.equal(ring.use(newKey), true);
    assert.equal(ring.use(newKey), false, 'idempotent');
    assert.equal(ring.primary, newKey);
    assert.deepEqual(ring.list(), [newKey, oldKey]);
    const underNew = ring.seal(text('after'), AAD);
    assert.equal(new Keyring(newKey).open(underNew, AAD).toString(), 'after');
    assert.throws(() => new Keyring(oldKey).open(underNew, AAD), openFails('unknown-key'));
    assert.equal(ring.open(underOld, AAD).toString(), 'before');
    assert.equal(ring.open(alsoOld, AAD).toString(), 'still old');

    // Step 3: remove the old key. Its packets fail from now on.
    assert.equal(ring.remove(oldKey), true);
    assert.equal(ring.remove(oldKey), false, 'idempotent');
    assert.deepEqual(ring.list(), [newKey]);
    assert.throws(() => ring.open(underOld, AAD), openFails('unknown-key'));
    assert.equal(ring.open(underNew, AAD).toString(), 'after');
  });

  test('the primary cannot be removed, and only an installed key can be used', () => {
    const primary = generateKey();
    const ring = new Keyring(primary);
    assert.throws(() => ring.remove(primary), refused(ErrorCode.Usage));
    assert.throws(() => ring.use(generateKey()), refused(ErrorCode.Usage));
    assert.deepEqual(ring.list(), [primary]);
  });

  test('bounds: 32-byte base64 keys only, and at most KEYRING_KEYS_MAX keys', () => {
    const bad = [
      '',
      'c2hvcnQ=',
      Buffer.alloc(16).toString('base64'),
      Buffer.alloc(33).toString('base64'),
      `${generateKey().slice(0, -2)}!!`,
    ];
    for (const key of bad) {
      assert.throws(() => new Keyring(key), refused(ErrorCode.ConfigInvalid), JSON.stringify(key));
    }
    assert.equal(decodeKey(new Uint8Array(KEY_BYTES).fill(7)).length, KEY_BYTES);

    const ring = Keyring.generate();
    while (ring.size < KEYRING_KEYS_MAX) ring.install(generateKey());
    assert.throws(() => ring.install(generateKey()), refused(ErrorCode.Usage));
    assert.equal(ring.size, KEYRING_KEYS_MAX);
    // A packet under the last key installed still opens (every key is tried).
    const last = ring.list().at(-1)!;
    const sealed = new Keyring(last).seal(text('last'), AAD);
    assert.equal(ring.open(sealed, AAD).toString(), 'last');
    assert.throws(() => new Keyring(generateKey(), [], 0), refused(ErrorCode.ConfigInvalid));
  });

  test('keys do not leak through inspect or JSON.stringify', () => {
    const ring = Keyring.generate();
    assert.equal(inspect(ring).includes(ring.primary), false);
    assert.equal(JSON.stringify({ ring }).includes(ring.primary), false);
  });
});

describe('the keyring file', () => {
  let dir = '';
  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  test('saved 0600, reloaded with the same primary and keys', async () => {
    dir = await mkdtemp(join(tmpdir(), 'rdbnet-keyring-'));
    const path = join(dir, 'sub', 'gossip.keyring');
    const ring = Keyring.generate();
    ring.install(generateKey());
    await saveKeyring(path, ring);
    if (process.platform !== 'win32') assert.equal((await stat(path)).mode & 0o777, 0o600);
    const file = JSON.parse(await readFile(path, 'utf8'));
    assert.deepEqual(file, { primary: ring.primary, keys: ring.list() });
    const loaded = await loadKeyring(path);
    assert.equal(loaded.primary, ring.primary);
    assert.deepEqual(loaded.list(), ring.list());
    assert.equal(loaded.open(ring.seal(text('persisted'), AAD), AAD).toString(), 'persisted');

    // Rotation persisted: the new primary survives a reload.
    ring.use(ring.list()[1]!);
    await saveKeyring(path, ring);
    assert.equal((await loadKeyring(path)).primary, ring.primary);
  });

  test('refuses a missing, group-readable, malformed or invalid file', async () => {
    dir ||= await mkdtemp(join(tmpdir(), 'rdbnet-keyring-'));
    const path = join(dir, 'bad.keyring');
    await assert.rejects(loadKeyring(path), refused(ErrorCode.ConfigInvalid));
    const valid = `${JSON.stringify(Keyring.generate().toFile())}\n`;
    if (process.platform !== 'win32') {
      await writeFile(path, valid, { mode: 0o644 });
      await assert.rejects(loadKeyring(path), refused(ErrorCode.ConfigInvalid));
      await rm(path);
    }
    for (const content of ['not json', '{"primary": 1, "keys": []}', '{"primary": "abc"}']) {
      await writeFile(path, content, { mode: 0o600 });
      await assert.rejects(loadKeyring(path), refused(ErrorCode.ConfigInvalid), content);
      await rm(path);
    }
    // A primary missing from `keys` is still installed.
    const primary = generateKey();
    await writeFile(path, JSON.stringify({ primary, keys: [] }), { mode: 0o600 });
    assert.deepEqual((await loadKeyring(path)).list(), [primary]);
  });

  test('ensureKeyring: concurrent creators end up with one keyring', async () => {
    dir ||= await mkdtemp(join(tmpdir(), 'rdbnet-keyring-'));
    const path = join(dir, 'shared', 'gossip.keyring');
    const results = await Promise.all(Array.from({ length: 8 }, () => ensureKeyring(path)));
    assert.equal(results.filter((r) => r.created).length, 1);
    const primaries = new Set(results.map((r) => r.keyring.primary));
    assert.equal(primaries.size, 1);
    assert.equal((await loadKeyring(path)).primary, [...primaries][0]);
    if (process.platform !== 'win32') assert.equal((await stat(path)).mode & 0o777, 0o600);
    const again = await ensureKeyring(path);
    assert.equal(again.created, false);
    assert.equal(again.keyring.primary, [...primaries][0]);
  });
});
