/**
 * The connection limits of the typed node config: documented defaults, --config file values,
 * and refusal of values the node could not run with (validate, then act).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BUFFERED_BYTES_MAX_DEFAULT,
  IDLE_TIMEOUT_MS_DEFAULT,
  type NodeConfigFile,
  resolveNodeConfig,
} from '../../src/core/config/node-config.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';

const ENV = { RDBNET_HOME: '/nonexistent-rdbnet-home' };

function resolve(file: NodeConfigFile) {
  return resolveNodeConfig({}, file, ENV);
}

describe('node config: connection limits', () => {
  test('defaults', () => {
    const config = resolve({});
    assert.equal(config.connectionsMax, 4096);
    assert.equal(config.unauthenticatedConnectionsMax, 1024);
    assert.equal(config.unauthenticatedConnectionsPerSourceMax, 64);
    assert.equal(config.idleTimeoutMs, IDLE_TIMEOUT_MS_DEFAULT);
    assert.equal(config.idleTimeoutMs, 300_000);
    assert.equal(config.bufferedBytesMax, BUFFERED_BYTES_MAX_DEFAULT);
    assert.equal(config.bufferedBytesMax, 256 * 1024 * 1024);
  });

  test('values from the config file, and 0 turns the idle timeout off', () => {
    const config = resolve({
      unauthenticatedConnectionsMax: 64,
      unauthenticatedConnectionsPerSourceMax: 8,
      idleTimeoutMs: 0,
      bufferedBytesMax: 4 * 1024 * 1024,
      connection: { frameBytesMax: 1024 * 1024 },
    });
    assert.equal(config.unauthenticatedConnectionsMax, 64);
    assert.equal(config.unauthenticatedConnectionsPerSourceMax, 8);
    assert.equal(config.idleTimeoutMs, 0);
    assert.equal(config.bufferedBytesMax, 4 * 1024 * 1024);
  });

  const invalid: [string, NodeConfigFile][] = [
    ['no unauthenticated connections', { unauthenticatedConnectionsMax: 0 }],
    ['a fractional per-source cap', { unauthenticatedConnectionsPerSourceMax: 1.5 }],
    ['a negative idle timeout', { idleTimeoutMs: -1 }],
    ['a budget below one frame', { bufferedBytesMax: 1024 * 1024 }],
    ['a budget that is not an integer', { bufferedBytesMax: Number.NaN }],
  ];
  for (const [name, file] of invalid) {
    test(`${name} is RDB_CONFIG_INVALID`, () => {
      assert.throws(
        () => resolve(file),
        (error) => isRdbnetError(error, ErrorCode.ConfigInvalid),
      );
    });
  }
});
