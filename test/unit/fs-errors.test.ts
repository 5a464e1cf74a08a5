/**
 * File-system failures mapped to typed errors that name the file and say what to do: every
 * errno the node handles, including EACCES, which root cannot provoke with chmod. (Real
 * ENOSPC and EROFS, on a tmpfs: raft-storage-loss.test.ts and integration/disk-full.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, isRdbnetError, RdbnetError } from '../../src/core/errors.ts';
import { fileSystemError, onFile } from '../../src/core/fs-errors.ts';

function errno(code: string, syscall = 'write'): NodeJS.ErrnoException {
  const error = new Error(`${code}: something, ${syscall}`) as NodeJS.ErrnoException;
  error.code = code;
  error.syscall = syscall;
  return error;
}

describe('fileSystemError', () => {
  const path = '/var/lib/rdbnet/node/raft/0000000000000001-0000000000000001.wal';

  const cases: [string, ErrorCode, RegExp][] = [
    [
      'ENOSPC',
      ErrorCode.StorageFull,
      /^free space on the filesystem holding \/var\/lib\/rdbnet\/node\/raft/,
    ],
    ['EDQUOT', ErrorCode.StorageFull, /quota/],
    ['EROFS', ErrorCode.StorageDenied, /read-write/],
    ['EACCES', ErrorCode.StorageDenied, /read and write \/var\/lib\/rdbnet\/node\/raft/],
    ['EPERM', ErrorCode.StorageDenied, /read and write/],
    ['EIO', ErrorCode.StorageIo, /dmesg/],
  ];
  for (const [code, expected, hint] of cases) {
    test(`${code} → ${expected}, naming the file`, () => {
      const error = fileSystemError(errno(code), path, 'write');
      assert.ok(isRdbnetError(error, expected), String(error));
      assert.ok(error.message.startsWith(`cannot write ${path}: `), error.message);
      assert.ok(error.message.endsWith(`(${code})`), error.message);
      assert.match(error.hint ?? '', hint);
      assert.equal((error.cause as NodeJS.ErrnoException).code, code);
    });
  }

  test('the hint names the directory it is given', () => {
    const error = fileSystemError(
      errno('ENOSPC'),
      '/data/n1/LOCK',
      'write',
      '/data/n1',
    ) as RdbnetError;
    assert.match(error.hint!, /holding \/data\/n1 /);
  });

  test('typed errors and unknown failures pass through unchanged', () => {
    const typed = new RdbnetError(ErrorCode.StorageCorrupt, 'x');
    assert.equal(fileSystemError(typed, path, 'read'), typed);
    const other = errno('ENOENT', 'open');
    assert.equal(fileSystemError(other, path, 'read'), other);
    const bug = new TypeError('not a file-system failure');
    assert.equal(fileSystemError(bug, path, 'read'), bug);
  });

  test('onFile wraps a failed operation and passes a result through', async () => {
    assert.equal(await onFile(path, 'read', async () => 42), 42);
    await assert.rejects(
      onFile(path, 'sync', () => Promise.reject(errno('EIO', 'fsync'))),
      (error: Error) => isRdbnetError(error, ErrorCode.StorageIo) && error.message.includes(path),
    );
  });
});
