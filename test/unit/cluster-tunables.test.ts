/**
 * The cluster tunables as node config fields: each with the cluster's own default, set from
 * a flag, the environment or the file like every field, refused outside the cluster's bounds
 * (RDB_CONFIG_INVALID naming the field and the source), shown by `node config --json`, and
 * handed whole to the cluster service.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CLUSTER_TUNABLE_BOUNDS,
  CLUSTER_TUNABLES_DEFAULT,
  type ClusterTunables,
  resolveClusterTunables,
} from '../../src/core/cluster/init.ts';
import * as nodeConfig from '../../src/core/config/node-config.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';

/** A clean environment: only what a test sets decides. */
const HOME_ENV = { RDBNET_HOME: '/tmp/rdbnet-unit-home' };
const KEYS = Object.keys(CLUSTER_TUNABLES_DEFAULT) as (keyof ClusterTunables)[];

function refused(field: string, where: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(
      isRdbnetError(error, ErrorCode.ConfigInvalid),
      `expected RDB_CONFIG_INVALID, got ${String(error)}`,
    );
    assert.ok(error.message.includes(field), `message does not name ${field}: ${error.message}`);
    assert.match(error.message, where);
    return true;
  };
}

describe('cluster tunables in the node config', () => {
  test('each is a field with the cluster default, from source `default`', () => {
    assert.deepEqual([...KEYS].sort(), [
      'bootstrapWaitMs',
      'deadVoterCheckIntervalMs',
      'discoveryIntervalMs',
      'joinGossipWaitMs',
      'joinRetryMs',
      'peerRequestTimeoutMs',
      'promoteLagMaxEntries',
    ]);
    const { config, sources } = nodeConfig.resolveNodeConfigWithSources({ env: HOME_ENV });
    const json = nodeConfig.nodeConfigJson(config) as unknown as Record<string, unknown>;
    for (const key of KEYS) {
      assert.equal(config[key], CLUSTER_TUNABLES_DEFAULT[key], key);
      assert.equal(json[key], CLUSTER_TUNABLES_DEFAULT[key], key);
      assert.equal(sources[key], 'default', key);
      const field = nodeConfig.NODE_CONFIG_FIELDS.find((entry) => entry.path === key);
      assert.equal(field?.env, nodeConfig.envName(key), key);
    }
    assert.equal(
      nodeConfig.NODE_CONFIG_FIELDS.find((f) => f.path === 'joinRetryMs')?.env,
      'RDBNET_JOIN_RETRY_MS',
    );
  });

  test('a flag, the environment and the file set them, and the cluster gets them all', () => {
    const { config, sources } = nodeConfig.resolveNodeConfigWithSources({
      flags: { deadVoterCheckIntervalMs: '2000' },
      env: {
        ...HOME_ENV,
        RDBNET_DISCOVERY_INTERVAL_MS: '500',
        RDBNET_PEER_REQUEST_TIMEOUT_MS: '2500',
        RDBNET_JOIN_GOSSIP_WAIT_MS: '15000',
      },
      file: { joinRetryMs: 1000, promoteLagMaxEntries: 0, bootstrapWaitMs: 60_000 },
      filePath: 'node.json',
    });
    const expected: ClusterTunables = {
      discoveryIntervalMs: 500,
      peerRequestTimeoutMs: 2500,
      joinRetryMs: 1000,
      bootstrapWaitMs: 60_000,
      joinGossipWaitMs: 15_000,
      promoteLagMaxEntries: 0,
      deadVoterCheckIntervalMs: 2000,
    };
    assert.deepEqual(nodeConfig.clusterTunablesOf(config), expected);
    assert.equal(sources['deadVoterCheckIntervalMs'], 'flag');
    assert.equal(sources['discoveryIntervalMs'], 'env');
    assert.equal(sources['joinRetryMs'], 'file');
    // What `node config --json | jq .config` writes is a config file that gives them back.
    const again = nodeConfig.resolveNodeConfig(
      {},
      nodeConfig.nodeConfigJson(config) as unknown as nodeConfig.NodeConfigFile,
      HOME_ENV,
    );
    assert.deepEqual(nodeConfig.clusterTunablesOf(again), expected);
  });

  test('a value outside the bounds is refused naming the field and the source', () => {
    for (const key of KEYS) {
      const { min, max } = CLUSTER_TUNABLE_BOUNDS[key];
      assert.throws(
        () => nodeConfig.resolveNodeConfig({}, { [key]: min - 1 }, HOME_ENV),
        refused(key, /file/),
      );
      assert.throws(
        () =>
          nodeConfig.resolveNodeConfig(
            {},
            {},
            { ...HOME_ENV, [nodeConfig.envName(key)]: `${max + 1}` },
          ),
        refused(key, /env/),
      );
      assert.throws(
        () => nodeConfig.resolveNodeConfig({ [key]: '1.5' }, {}, HOME_ENV),
        refused(key, /flag/),
      );
      // The bounds themselves are accepted.
      assert.equal(nodeConfig.resolveNodeConfig({}, { [key]: min }, HOME_ENV)[key], min);
      assert.equal(nodeConfig.resolveNodeConfig({}, { [key]: max }, HOME_ENV)[key], max);
    }
  });
});

describe('resolveClusterTunables (the cluster init)', () => {
  test('absent ones are the defaults; one outside its bounds is refused, naming it', () => {
    assert.deepEqual(resolveClusterTunables(), { ...CLUSTER_TUNABLES_DEFAULT });
    assert.deepEqual(resolveClusterTunables({ joinRetryMs: 40 }), {
      ...CLUSTER_TUNABLES_DEFAULT,
      joinRetryMs: 40,
    });
    assert.throws(
      () => resolveClusterTunables({ discoveryIntervalMs: 0 }),
      refused('discoveryIntervalMs', /10\.\.60000/),
    );
    assert.throws(
      () => resolveClusterTunables({ promoteLagMaxEntries: Number.NaN }),
      refused('promoteLagMaxEntries', /got NaN/),
    );
  });
});
