/**
 * A full or read-only disk at start, for real: the node's data dir lives on a small tmpfs
 * this test mounts (it needs root; without root, or when mount fails, the tests are skipped
 * with the reason). Filled to the last byte, a restart must fail with one error line that
 * names the file it could not write and a hint about freeing space — not a bare
 * "ENOSPC: no space left on device, write" — and once space is freed the same node starts
 * again on the same cluster: the refused start damaged nothing. The same for a first start,
 * and for a filesystem remounted read-only.
 *
 * Certificates stay under $RDBNET_HOME on the ordinary temp dir; only the data dir is on
 * the tmpfs. Loopback only; every node killed and the tmpfs unmounted in teardown.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, open, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  type CliResult,
  describeResult,
  killAllNodes,
  parseJson,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const run = promisify(execFile);
/** Room for a node's data dir (a few 4 KiB pages) but small enough to fill in a moment. */
const TMPFS_BYTES = 512 * 1024;
/** A start that is refused ends in seconds; one that is not runs until this kills it. */
const REFUSED_START_TIMEOUT_MS = 40_000;

const until = poller(100);
let home: { dir: string; cleanup(): Promise<void> };
let mountPoint = '';
let mounted = false;
let skipReason: string | undefined;

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

before(async () => {
  home = await tempHome('rdbnet-disk-full-');
  mountPoint = await mkdtemp(join(tmpdir(), 'rdbnet-tmpfs-'));
  if (process.getuid?.() !== 0) {
    skipReason = 'mounting a tmpfs needs root';
    return;
  }
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES},mode=0700`, 'tmpfs', mountPoint]);
    mounted = true;
  } catch (error) {
    skipReason = `mount -t tmpfs failed: ${(error as Error).message.split('\n')[0]}`;
  }
});

after(async () => {
  await killAllNodes();
  if (mounted) {
    await run('umount', [mountPoint]).catch(() => run('umount', ['-l', mountPoint]));
  }
  await rmdir(mountPoint).catch(() => {});
  await home.cleanup();
});

/** Writes a file until the filesystem refuses more, in ever smaller pieces. */
async function fill(path: string): Promise<number> {
  const handle = await open(path, 'w');
  let written = 0;
  try {
    for (const chunkBytes of [64 * 1024, 4096, 512, 1]) {
      const chunk = Buffer.alloc(chunkBytes, 0x5a);
      for (;;) {
        try {
          const { bytesWritten } = await handle.write(chunk);
          written += bytesWritten;
          if (bytesWritten < chunkBytes) break;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
          break;
        }
      }
    }
  } finally {
    await handle.close();
  }
  return written;
}

function startArgs(dataDir: string, json = false): string[] {
  return [
    'node',
    'start',
    '--listen',
    '127.0.0.1:0',
    '--data-dir',
    dataDir,
    ...(json ? ['--json'] : []),
  ];
}

function assertOneErrorLine(result: CliResult, pathPrefix: string, hint: RegExp): void {
  assert.equal(result.code, 1, describeResult(result));
  const errors = result.stderr.split('\n').filter((line) => line.startsWith('Error: '));
  assert.equal(errors.length, 1, describeResult(result));
  assert.ok(
    errors[0]!.includes(pathPrefix),
    `the error names a file under ${pathPrefix}\n${describeResult(result)}`,
  );
  assert.match(result.stderr, hint, describeResult(result));
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
}

function assertJsonError(result: CliResult, code: string, pathPrefix: string): void {
  assert.equal(result.code, 1, describeResult(result));
  const { error } = parseJson<{ error: { code: string; message: string } }>(result);
  assert.equal(error.code, code, describeResult(result));
  assert.ok(error.message.includes(pathPrefix), describeResult(result));
}

describe('a node on a full or read-only filesystem', () => {
  test('restart on a full disk: exit 1 naming the file, a hint; starts again once space is freed', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const dataDir = join(mountPoint, 'node');
    const node = await startNode(startArgs(dataDir).slice(2), env());
    const status = async (address: string) => {
      const result = await runCli(['cluster', 'status', '--json', '--node', address], env());
      assert.equal(result.code, 0, describeResult(result));
      return parseJson<{ clusterId: string; leader: string | null; commitIndex: number }>(result);
    };
    const first = await until('the node to lead its cluster', async () => {
      const view = await status(node.address);
      return view.leader === node.info.id && view.commitIndex > 1 ? view : undefined;
    });
    assert.equal((await node.stop()).code, 0, node.stderr());

    const filler = join(mountPoint, 'filler');
    const filled = await fill(filler);
    t.diagnostic(`filled the ${TMPFS_BYTES}-byte tmpfs with ${filled} more bytes`);

    const human = await runCli(startArgs(dataDir), env(), REFUSED_START_TIMEOUT_MS);
    assertOneErrorLine(human, dataDir, /^Hint: free space on the filesystem holding /m);
    t.diagnostic(human.stderr.trim());
    const json = await runCli(startArgs(dataDir, true), env(), REFUSED_START_TIMEOUT_MS);
    assertJsonError(json, 'RDB_STORAGE_FULL', dataDir);

    await rm(filler);
    const again = await startNode(startArgs(dataDir).slice(2), env());
    const view = await until('the restarted node to lead again', async () => {
      const current = await status(again.address);
      return current.leader === again.info.id ? current : undefined;
    });
    assert.equal(view.clusterId, first.clusterId, 'the same cluster: nothing was damaged');
    assert.equal((await again.stop()).code, 0, again.stderr());
  });

  test('first start on a full disk: exit 1 naming the file it could not write', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const filler = join(mountPoint, 'filler');
    await fill(filler);
    try {
      const dataDir = join(mountPoint, 'fresh');
      const human = await runCli(startArgs(dataDir), env(), REFUSED_START_TIMEOUT_MS);
      assertOneErrorLine(human, dataDir, /^Hint: free space on the filesystem holding /m);
      t.diagnostic(human.stderr.trim());
      const json = await runCli(startArgs(dataDir, true), env(), REFUSED_START_TIMEOUT_MS);
      assertJsonError(json, 'RDB_STORAGE_FULL', dataDir);
    } finally {
      await rm(filler);
    }
  });

  test('the disk fills while the node runs: its next Raft write stops it with exit 1, naming the file', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const dataDir = join(mountPoint, 'runtime');
    const leader = await startNode(startArgs(dataDir).slice(2), env());
    const status = async (address: string) =>
      parseJson<{ clusterId: string; leader: string | null; commitIndex: number }>(
        await runCli(['cluster', 'status', '--json', '--node', address], env()),
      );
    const first = await until('the node to lead its cluster', async () => {
      const view = await status(leader.address);
      return view.leader === leader.info.id && view.commitIndex > 1 ? view : undefined;
    });
    // After the start document, `node start --json` prints its error as a second document.
    let stdout = '';
    leader.child.stdout!.on('data', (chunk) => {
      stdout += chunk;
    });
    const exited = new Promise<number | null>((resolve) => leader.child.once('exit', resolve));
    const filler = join(mountPoint, 'filler');
    await fill(filler);
    try {
      // A second node (its data dir on the ordinary disk) asks to join: the leader must
      // append the membership change to its log, on the full disk.
      const joinerDir = join(home.dir, 'joiner');
      await startNode(
        [
          '--id',
          'joiner',
          '--listen',
          '127.0.0.1:0',
          '--data-dir',
          joinerDir,
          '--join',
          leader.address,
        ],
        env(),
      );
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        exited,
        new Promise<'still running'>((resolve) => {
          timer = setTimeout(() => resolve('still running'), 30_000);
        }),
      ]);
      clearTimeout(timer);
      assert.equal(code, 1, `the leader must stop on the failed write\n${leader.stderr()}`);
      const at = stdout.indexOf('{\n  "error"');
      assert.ok(at >= 0, `an error document on stdout: ${stdout}`);
      const { error } = JSON.parse(stdout.slice(at)) as {
        error: { code: string; message: string; hint: string };
      };
      assert.equal(error.code, 'RDB_STORAGE_FULL', error.message);
      // The log's segment or the watermark, whichever write needed a new page first.
      assert.match(error.message, /^cannot write \S+: no space left on the device \(ENOSPC\)$/);
      assert.ok(error.message.includes(dataDir), error.message);
      assert.match(error.hint, /^free space on the filesystem holding /);
      assert.match(leader.stderr(), /raft storage failed; the node must stop/);
      t.diagnostic(error.message);
    } finally {
      await killAllNodes();
      await rm(filler);
    }
    // Space back: the same node starts on the same log (the cut-short write was a torn tail).
    const again = await startNode(startArgs(dataDir).slice(2), env());
    assert.equal(again.info.id, leader.info.id);
    const view = await until('the restarted node to lead', async () => {
      const current = await status(again.address);
      return current.leader === again.info.id ? current : undefined;
    });
    assert.equal(view.clusterId, first.clusterId, 'the same cluster');
    assert.equal((await again.stop()).code, 0, again.stderr());
  });

  test('restart on a read-only filesystem: exit 1 naming the file, a hint', async (t) => {
    if (skipReason !== undefined) return t.skip(skipReason);
    const dataDir = join(mountPoint, 'node');
    await run('mount', ['-o', 'remount,ro', mountPoint]);
    try {
      const human = await runCli(startArgs(dataDir), env(), REFUSED_START_TIMEOUT_MS);
      assertOneErrorLine(human, dataDir, /^Hint: .*read-write/m);
      t.diagnostic(human.stderr.trim());
      const json = await runCli(startArgs(dataDir, true), env(), REFUSED_START_TIMEOUT_MS);
      assertJsonError(json, 'RDB_STORAGE_DENIED', dataDir);
    } finally {
      await run('mount', ['-o', 'remount,rw', mountPoint]);
    }
  });
});
