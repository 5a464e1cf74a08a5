import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isRdbnetError } from '../../src/core/errors.ts';
import { createCertificateAuthority } from '../../src/core/security/pki.ts';
import {
  isRevoked,
  normalizeSerial,
  readRevocations,
  writeRevocations,
} from '../../src/core/security/revocations.ts';

test('serials have one spelling: whole bytes, upper case, no leading zero bytes', () => {
  assert.equal(normalizeSerial('0febd3'), '0FEBD3');
  assert.equal(normalizeSerial('FEBD3'), '0FEBD3');
  assert.equal(normalizeSerial('00:ab'), 'AB');
  assert.equal(normalizeSerial(' 0AB '), 'AB');
  assert.throws(
    () => normalizeSerial('xyz'),
    (error) => isRdbnetError(error, 'RDB_USAGE'),
  );
});

test('a certificate is matched whatever spelling of its serial was revoked', () => {
  for (let i = 0; i < 40; i++) {
    const serial = new X509Certificate(createCertificateAuthority({ cluster: 'c' }).certPem)
      .serialNumber;
    const revoked = new Set([normalizeSerial(serial.replace(/^0+/, '').toLowerCase())]);
    assert.ok(isRevoked(revoked, serial), serial);
    assert.ok(!isRevoked(new Set(['ABCDEF']), serial));
  }
});

test('the list survives a write and a read, sorted and de-duplicated', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rdbnet-revoked-'));
  try {
    const path = join(dir, 'revoked.txt');
    assert.equal((await readRevocations(path)).size, 0, 'a missing file is an empty list');
    await writeRevocations(path, ['0b', 'AA', '0B']);
    assert.deepEqual([...(await readRevocations(path))], ['0B', 'AA']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
