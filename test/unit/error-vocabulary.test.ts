/**
 * One error vocabulary: a bad setting is a typed RDB_CONFIG_INVALID naming its field (never a
 * RangeError), callers decide by code or field (never by message text), and src holds no
 * untyped throw a user could meet: only `invariant violated` assertions.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { NodeConfig } from '../../src/core/config/node-config.ts';
import { resolveNodeConfig } from '../../src/core/config/node-config.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { loadNodeKeyring } from '../../src/core/node/gossip.ts';
import { FRAME_BYTES_MAX, FrameDecoder } from '../../src/core/protocol/frame.ts';
import { createLogger } from '../../src/core/runtime/log.ts';
import { UnauthenticatedTable } from '../../src/core/transport/admission.ts';
import { MemoryBudget } from '../../src/core/transport/memory-budget.ts';
import { connectionOptions } from '../../src/core/transport/options.ts';
import { TransportServer } from '../../src/core/transport/server.ts';
import { tempHome } from '../helpers/processes.ts';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

/** RDB_CONFIG_INVALID naming `field` in a field of its own (a ConfigFieldError). */
function fieldError(field: string) {
  return (error: unknown) => {
    assert.ok(isRdbnetError(error, ErrorCode.ConfigInvalid), `untyped: ${String(error)}`);
    const { field: named, problem } = error as unknown as { field?: string; problem?: string };
    assert.equal(named, field);
    assert.equal(error.message, `${field} ${problem}`);
    return true;
  };
}

describe('bad settings are RDB_CONFIG_INVALID naming the field', () => {
  test('connection options', () => {
    assert.throws(() => connectionOptions({ frameBytesMax: -1 }), fieldError('frameBytesMax'));
    assert.throws(() => connectionOptions({ requestTimeoutMs: 0 }), fieldError('requestTimeoutMs'));
    assert.throws(
      () => connectionOptions({ frameBytesMax: FRAME_BYTES_MAX + 1 }),
      fieldError('frameBytesMax'),
    );
  });

  test('the frame decoder, the memory budget, the idle timeout, the pre-auth table', () => {
    for (const frameBytesMax of [0, 13, FRAME_BYTES_MAX + 1, 100.5, Number.NaN]) {
      assert.throws(() => new FrameDecoder({ frameBytesMax }), fieldError('frameBytesMax'));
    }
    assert.throws(() => new MemoryBudget(0), fieldError('bufferedBytesMax'));
    assert.throws(
      () => new UnauthenticatedTable({ totalMax: 1, perSourceMax: 1.5 }),
      fieldError('perSourceMax'),
    );
    assert.throws(
      () =>
        new TransportServer({
          local: { id: 'n1', clusterId: 'c', role: 'node', softwareVersion: 't' },
          tls: null,
          options: connectionOptions(),
          connectionsMax: 1,
          idleTimeoutMs: 0,
          handler: () => ({ echoReply: { data: new Uint8Array() } }),
        }),
      fieldError('idleTimeoutMs'),
    );
  });

  test('the node configuration blames the connection option by its field, and its source', () => {
    assert.throws(
      () =>
        resolveNodeConfig(
          {},
          {},
          {
            RDBNET_HOME: '/nonexistent-rdbnet-home',
            RDBNET_CONNECTION_FRAME_BYTES_MAX: String(FRAME_BYTES_MAX + 1),
          },
        ),
      (error: unknown) => {
        assert.ok(isRdbnetError(error, ErrorCode.ConfigInvalid), String(error));
        assert.equal(
          error.message,
          'invalid connection.frameBytesMax from env RDBNET_CONNECTION_FRAME_BYTES_MAX: ' +
            `cannot exceed the protocol limit of ${FRAME_BYTES_MAX}, got ${FRAME_BYTES_MAX + 1}`,
        );
        return true;
      },
    );
  });
});

describe('decided by code or errno, not by message text', () => {
  let home: { dir: string; cleanup(): Promise<void> };
  before(async () => {
    home = await tempHome('rdbnet-error-vocabulary-');
  });
  after(async () => {
    await home.cleanup();
  });

  function keyringConfig(certsDir: string): NodeConfig {
    return { insecure: false, certsDir, certsDirIsDefault: false, cluster: 'c' } as NodeConfig;
  }
  const log = createLogger({ level: 'error' });

  test('a gossip keyring that is not JSON is not called missing, whatever its path says', async () => {
    // A directory name that reads like the old check's pattern.
    const certsDir = join(home.dir, 'keyring not found here');
    await mkdir(certsDir, { recursive: true });
    await writeFile(join(certsDir, 'gossip.keyring'), 'not json', { mode: 0o600 });
    await assert.rejects(loadNodeKeyring(keyringConfig(certsDir), log), (error: unknown) => {
      assert.ok(isRdbnetError(error, ErrorCode.ConfigInvalid), String(error));
      assert.match(error.message, /is not JSON/);
      assert.doesNotMatch(error.message, /^gossip keyring not found/);
      return true;
    });
  });

  test('a missing gossip keyring says so, with what to do', async () => {
    const certsDir = join(home.dir, 'empty');
    await mkdir(certsDir, { recursive: true });
    await assert.rejects(loadNodeKeyring(keyringConfig(certsDir), log), (error: unknown) => {
      assert.ok(isRdbnetError(error, ErrorCode.ConfigInvalid), String(error));
      assert.equal(error.message, `gossip keyring not found: ${join(certsDir, 'gossip.keyring')}`);
      assert.match(error.hint ?? '', /rdbnet keys generate/);
      return true;
    });
  });
});

// ---- a scan of src ----------------------------------------------------------------------

/** Files allowed an untyped throw or a look at message text, each with the reason. */
const ALLOWED: Record<string, string> = {
  'core/sim/index.ts': 'the simulator runs only in tests and benchmarks',
  'core/membership/gossip/driver.ts':
    'stands in for a falsy value thrown by a stream send; counted and logged, never shown',
  'core/transport/connection.ts':
    "classifies Node's socket and OpenSSL errors, some of which carry no code",
  'cli/base-command.ts': "recognises oclif's parse errors, some re-thrown as plain Errors",
  'core/transport/dial.ts':
    'only decides whether a message already names the dialled address before prefixing it',
};

async function sourceFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await sourceFiles(path)));
    else if (entry.name.endsWith('.ts')) files.push(path);
  }
  return files;
}

/** Line numbers (1-based) of each match of `pattern` (global) in `text`. */
function linesOf(text: string, pattern: RegExp): number[] {
  return [...text.matchAll(pattern)].map((match) => text.slice(0, match.index).split('\n').length);
}

describe('src', () => {
  test('throws no RangeError, TypeError or plain Error a user could meet', async () => {
    const found: string[] = [];
    for (const file of await sourceFiles(SRC)) {
      const name = relative(SRC, file);
      if (ALLOWED[name] !== undefined) continue;
      const text = await readFile(file, 'utf8');
      for (const line of linesOf(text, /new (?:RangeError|TypeError|SyntaxError)\s*\(/g)) {
        found.push(`${name}:${line}`);
      }
      // A plain Error only as an assertion: its message starts "invariant violated".
      for (const line of linesOf(text, /new Error\s*\((?!\s*[`'"]invariant violated)/g)) {
        found.push(`${name}:${line}`);
      }
    }
    assert.deepEqual(found, [], 'untyped errors: throw an RdbnetError with a code, or assert()');
  });

  test('decides nothing by the text of an error message', async () => {
    const found: string[] = [];
    for (const file of await sourceFiles(SRC)) {
      const name = relative(SRC, file);
      if (ALLOWED[name] !== undefined) continue;
      const text = await readFile(file, 'utf8');
      const patterns = [
        /\.message\)?\.(?:includes|match|startsWith|endsWith|search)\(/g,
        /\.test\(\s*[\w.?()!]*\.message\b/g,
        /\bmessage\.includes\(/g,
      ];
      for (const pattern of patterns) {
        for (const line of linesOf(text, pattern)) found.push(`${name}:${line}`);
      }
    }
    assert.deepEqual(found, [], 'decide by error.code, a typed field, or an errno');
  });
});
