/**
 * The node's one configuration: presets that set gossip and Raft together, the precedence
 * flag > environment > file > preset > default with the source of every value, and bad values
 * refused as RDB_CONFIG_INVALID naming the field and where the value came from.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as nodeConfig from '../../src/core/config/node-config.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { SWIM_PRESETS } from '../../src/core/membership/swim/index.ts';

/** A clean environment: only what a test sets decides. */
const HOME_ENV = { RDBNET_HOME: '/tmp/rdbnet-unit-home' };

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

describe('presets', () => {
  test('wan sets Raft timings suited to ~300 ms RTTs, local faster ones, lan the defaults', () => {
    const lan = nodeConfig.resolveNodeConfig({}, {}, HOME_ENV);
    const wan = nodeConfig.resolveNodeConfig({}, { preset: 'wan' }, HOME_ENV);
    const local = nodeConfig.resolveNodeConfig({ preset: 'local' }, {}, HOME_ENV);
    assert.equal(lan.preset, 'lan');
    assert.equal(wan.preset, 'wan');
    assert.equal(local.preset, 'local');
    assert.ok(wan.raft.tickMs > lan.raft.tickMs);
    assert.ok(wan.raft.electionTimeoutMs >= 10 * 300, 'election timeout ≥ 10 WAN RTTs');
    assert.ok(wan.raft.heartbeatIntervalMs > lan.raft.heartbeatIntervalMs);
    assert.ok(wan.raft.proposalTimeoutMs > lan.raft.proposalTimeoutMs);
    assert.ok(local.raft.electionTimeoutMs < lan.raft.electionTimeoutMs);
    // lan is what nodes ran with before presets reached Raft: 50 ms ticks, 10-tick elections.
    assert.deepEqual(lan.raft, { ...nodeConfig.NODE_PRESETS.lan.raft });
    assert.equal(lan.raft.tickMs, 50);
    assert.equal(lan.raft.electionTimeoutMs, 500);
    assert.equal(lan.raft.heartbeatIntervalMs, 50);
  });

  test('gossipPreset in a config file (deprecated alias of preset) moves Raft too', () => {
    const config = nodeConfig.resolveNodeConfig({}, { gossipPreset: 'wan' }, HOME_ENV);
    assert.equal(config.preset, 'wan');
    assert.deepEqual(config.raft, { ...nodeConfig.NODE_PRESETS.wan.raft });
    const resolved = nodeConfig.resolveNodeConfigWithSources({
      file: { gossipPreset: 'wan' },
      env: HOME_ENV,
    });
    assert.equal(resolved.sources['preset'], 'file');
    assert.match(resolved.warnings.join('\n'), /gossipPreset.*deprecated/);
  });
});

describe('precedence', () => {
  test('flag over environment over file over default', () => {
    const file = { id: 'from-file', cluster: 'c-file', listen: '127.0.0.1:7101' };
    const env = { ...HOME_ENV, RDBNET_ID: 'from-env', RDBNET_LISTEN: '127.0.0.1:7102' };
    const config = nodeConfig.resolveNodeConfig({ listen: '127.0.0.1:7103' }, file, env);
    assert.equal(config.listen.port, 7103, 'flag beats env and file');
    assert.equal(config.id, 'from-env', 'env beats file');
    assert.equal(config.cluster, 'c-file', 'file beats default');
    assert.equal(config.dataDir, join('/tmp/rdbnet-unit-home', 'node'), 'default');
    assert.equal(config.advertise.port, 7103, 'advertise defaults to listen');
  });

  test('defaults, all from no source at all', () => {
    const { config, sources } = nodeConfig.resolveNodeConfigWithSources({ env: HOME_ENV });
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 7000 });
    assert.deepEqual(config.advertise, { host: '127.0.0.1', port: 7000 });
    assert.equal(config.id, undefined);
    assert.equal(config.cluster, 'rdbnet');
    assert.equal(config.dataDir, join('/tmp/rdbnet-unit-home', 'node'));
    assert.equal(config.certsDir, join('/tmp/rdbnet-unit-home', 'certs'));
    assert.equal(config.certsDirIsDefault, true);
    assert.equal(config.insecure, false);
    assert.equal(config.join, undefined);
    assert.equal(config.bootstrapExpect, undefined);
    assert.equal(config.connectionsMax, 4096);
    assert.equal(config.shutdownGraceMs, 3000);
    assert.equal(config.deadVoterRemoveAfterMs, 30_000);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.preset, 'lan');
    assert.equal(nodeConfig.nodeConfigJson(config).listen, '127.0.0.1:7000');
    for (const [path, source] of Object.entries(sources)) {
      const expected =
        path.startsWith('raft.') ||
        path === 'deadVoterRemoveAfterMs' ||
        path === 'idReclaimAfterMs';
      assert.equal(source, expected ? 'preset' : 'default', path);
    }
    // Listed in the order of the fields (and of `node config`).
    assert.deepEqual(
      Object.keys(sources),
      nodeConfig.NODE_CONFIG_FIELDS.map((field) => field.path),
    );
  });

  test('every value says where it came from', () => {
    const { config, sources } = nodeConfig.resolveNodeConfigWithSources({
      flags: { listen: '127.0.0.1:7103' },
      env: {
        ...HOME_ENV,
        RDBNET_PRESET: 'wan',
        RDBNET_ID: 'from-env',
        RDBNET_RAFT_ELECTION_TIMEOUT_MS: '4000',
        RDBNET_CONNECTION_REQUEST_TIMEOUT_MS: '7000',
      },
      file: { cluster: 'c-file', raft: { heartbeatIntervalMs: 400 } },
      filePath: 'node.json',
    });
    assert.equal(config.raft.electionTimeoutMs, 4000);
    assert.equal(config.raft.heartbeatIntervalMs, 400);
    assert.equal(config.raft.tickMs, nodeConfig.NODE_PRESETS.wan.raft.tickMs);
    assert.equal(config.connection.requestTimeoutMs, 7000);
    assert.equal(sources['listen'], 'flag');
    assert.equal(sources['id'], 'env');
    assert.equal(sources['preset'], 'env');
    assert.equal(sources['cluster'], 'file');
    assert.equal(sources['raft.electionTimeoutMs'], 'env');
    assert.equal(sources['raft.heartbeatIntervalMs'], 'file');
    assert.equal(sources['raft.tickMs'], 'preset');
    assert.equal(sources['deadVoterRemoveAfterMs'], 'preset');
    assert.equal(sources['connection.requestTimeoutMs'], 'env');
    assert.equal(sources['connection.frameBytesMax'], 'default');
    assert.equal(sources['dataDir'], 'default');
    assert.equal(sources['advertise'], 'default');
    // One source per leaf of the JSON form, and nothing else.
    assert.deepEqual(
      Object.keys(sources).sort(),
      leafPaths(nodeConfig.nodeConfigJson(config)).sort(),
    );
  });

  test('empty environment variables count as unset', () => {
    const { config, sources } = nodeConfig.resolveNodeConfigWithSources({
      env: { ...HOME_ENV, RDBNET_LISTEN: '', RDBNET_PRESET: '', RDBNET_RAFT_TICK_MS: '' },
      file: { listen: '127.0.0.1:7201' },
    });
    assert.equal(config.listen.port, 7201);
    assert.equal(sources['listen'], 'file');
    assert.equal(sources['preset'], 'default');
  });

  test('booleans and lists from the environment', () => {
    const config = nodeConfig.resolveNodeConfig(
      {},
      { insecure: true },
      {
        ...HOME_ENV,
        RDBNET_INSECURE: 'false',
        RDBNET_JOIN: '127.0.0.1:7301, 127.0.0.1:7302',
        RDBNET_RAFT_PRE_VOTE: 'no',
        RDBNET_BOOTSTRAP_EXPECT: '3',
      },
    );
    assert.equal(config.insecure, false);
    assert.deepEqual(config.join, ['127.0.0.1:7301', '127.0.0.1:7302']);
    assert.equal(config.raft.preVote, false);
    assert.equal(config.bootstrapExpect, 3);
    assert.deepEqual(config.groups, []);
    const grouped = nodeConfig.resolveNodeConfig(
      {},
      { groups: ['replicas', 'eu'] },
      { ...HOME_ENV, RDBNET_GROUPS: 'cache, replicas,cache' },
    );
    assert.deepEqual(grouped.groups, ['cache', 'replicas']);
  });

  test('RDBNET_CERTS_DIR still lets a node create missing certificates there', () => {
    const fromEnv = nodeConfig.resolveNodeConfig({}, {}, { ...HOME_ENV, RDBNET_CERTS_DIR: '/x' });
    assert.equal(fromEnv.certsDir, '/x');
    assert.equal(fromEnv.certsDirIsDefault, true);
    const fromFlag = nodeConfig.resolveNodeConfig({ certsDir: '/y' }, {}, HOME_ENV);
    assert.equal(fromFlag.certsDirIsDefault, false);
  });

  test('every environment variable is RDBNET_ + the upper snake case of its field', () => {
    const fields = nodeConfig.NODE_CONFIG_FIELDS;
    assert.ok(fields.some((field) => field.env === 'RDBNET_DATA_DIR'));
    assert.ok(fields.some((field) => field.env === 'RDBNET_RAFT_ELECTION_TIMEOUT_MS'));
    for (const field of fields) {
      const snake = field.path
        .replaceAll('.', '_')
        .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
        .toUpperCase();
      assert.equal(field.env, `RDBNET_${snake}`, field.path);
    }
  });
});

describe('bad values', () => {
  const cases: {
    name: string;
    field: string;
    where: RegExp;
    source: nodeConfig.ConfigSource;
    inputs: nodeConfig.NodeConfigInputs;
  }[] = [
    {
      name: 'a tick that is not a number, from the environment',
      field: 'raft.tickMs',
      where: /RDBNET_RAFT_TICK_MS/,
      source: 'env',
      inputs: { env: { RDBNET_RAFT_TICK_MS: 'abc' } },
    },
    {
      name: 'a negative tick in the file',
      field: 'raft.tickMs',
      where: /file node\.json/,
      source: 'file',
      inputs: { file: { raft: { tickMs: -5 } }, filePath: 'node.json' },
    },
    {
      name: 'a listen address that is not host:port, from a flag',
      field: 'listen',
      where: /flag --listen/,
      source: 'flag',
      inputs: { flags: { listen: 'nonsense' } },
    },
    {
      name: 'a negative connection limit (was a RangeError)',
      field: 'connection.frameBytesMax',
      where: /file/,
      source: 'file',
      inputs: { file: { connection: { frameBytesMax: -1 } } },
    },
    {
      name: 'a frame limit above the protocol limit (was a RangeError)',
      field: 'connection.frameBytesMax',
      where: /RDBNET_CONNECTION_FRAME_BYTES_MAX/,
      source: 'env',
      inputs: { env: { RDBNET_CONNECTION_FRAME_BYTES_MAX: String(2 ** 40) } },
    },
    {
      name: 'a connection option of the wrong type',
      field: 'connection.checksum',
      where: /file/,
      source: 'file',
      inputs: { file: { connection: { checksum: 'yes' as unknown as boolean } } },
    },
    {
      name: 'an unknown preset',
      field: 'preset',
      where: /RDBNET_PRESET/,
      source: 'env',
      inputs: { env: { RDBNET_PRESET: 'moon' } },
    },
    {
      name: 'a shutdown grace beyond the 5 s stop',
      field: 'shutdownGraceMs',
      where: /file/,
      source: 'file',
      inputs: { file: { shutdownGraceMs: 10_000 } },
    },
    {
      name: 'a boolean that is neither',
      field: 'insecure',
      where: /RDBNET_INSECURE/,
      source: 'env',
      inputs: { env: { RDBNET_INSECURE: 'maybe' } },
    },
    {
      name: 'bootstrapExpect out of range (was RDB_USAGE)',
      field: 'bootstrapExpect',
      where: /flag --bootstrap-expect/,
      source: 'flag',
      inputs: { flags: { bootstrapExpect: '100' } },
    },
    {
      name: 'a heartbeat not shorter than the election timeout blames the value that was set',
      field: 'raft.heartbeatIntervalMs',
      where: /RDBNET_RAFT_HEARTBEAT_INTERVAL_MS.*raft\.electionTimeoutMs/,
      source: 'env',
      inputs: { env: { RDBNET_RAFT_HEARTBEAT_INTERVAL_MS: '1000' } },
    },
    {
      name: 'an election timeout that is not a whole number of ticks',
      field: 'raft.electionTimeoutMs',
      where: /flag/,
      source: 'flag',
      inputs: { flags: { raft: { electionTimeoutMs: 510 } } },
    },
    {
      name: 'a wildcard advertise address',
      field: 'advertise',
      where: /file/,
      source: 'file',
      inputs: { file: { advertise: '0.0.0.0:7000' } },
    },
    {
      name: 'a group name with a slash',
      field: 'groups',
      where: /RDBNET_GROUPS/,
      source: 'env',
      inputs: { env: { RDBNET_GROUPS: 'replicas,bad/group' } },
    },
    {
      name: 'nine groups',
      field: 'groups',
      where: /flag --groups/,
      source: 'flag',
      inputs: { flags: { groups: 'g1,g2,g3,g4,g5,g6,g7,g8,g9' } },
    },
    {
      name: 'a node id with a space',
      field: 'id',
      where: /RDBNET_ID/,
      source: 'env',
      inputs: { env: { RDBNET_ID: 'bad id' } },
    },
    {
      name: 'gossipPreset contradicting preset',
      field: 'gossipPreset',
      where: /file/,
      source: 'file',
      inputs: { file: { preset: 'lan', gossipPreset: 'wan' } },
    },
    {
      name: 'a number where a file wants a string',
      field: 'dataDir',
      where: /file/,
      source: 'file',
      inputs: { file: { dataDir: 7 as unknown as string } },
    },
  ];
  for (const item of cases) {
    test(item.name, () => {
      const inputs = { ...item.inputs, env: { ...HOME_ENV, ...item.inputs.env } };
      assert.throws(
        () => nodeConfig.resolveNodeConfigWithSources(inputs),
        (error: unknown) => {
          refused(item.field, item.where)(error);
          assert.ok(error instanceof nodeConfig.ConfigValueError, String(error));
          assert.equal(error.field, item.field);
          assert.equal(error.source, item.source);
          return true;
        },
      );
    });
  }

  test('connection options out of range are RDB_CONFIG_INVALID, never a RangeError', () => {
    for (const connection of [{ frameBytesMax: -1 }, { requestTimeoutMs: 0 }]) {
      assert.throws(
        () => nodeConfig.resolveNodeConfig({}, { connection }, HOME_ENV),
        refused(`connection.${Object.keys(connection)[0]}`, /file/),
      );
    }
  });
});

describe('config files', () => {
  test('an unknown nested field is refused naming it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rdbnet-node-config-'));
    try {
      const path = join(dir, 'node.json');
      await writeFile(path, JSON.stringify({ raft: { tickMS: 100 } }));
      await assert.rejects(nodeConfig.readConfigFile(path), refused('raft.tickMS', /node\.json/));
      await writeFile(path, JSON.stringify({ connection: { frameBytes: 100 } }));
      await assert.rejects(
        nodeConfig.readConfigFile(path),
        refused('connection.frameBytes', /node\.json/),
      );
      await writeFile(path, JSON.stringify({ raft: 5 }));
      await assert.rejects(nodeConfig.readConfigFile(path), refused('raft', /object/));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the JSON form of a configuration is a config file giving the same configuration', () => {
    const original = nodeConfig.resolveNodeConfig(
      { listen: '127.0.0.1:7401', join: '127.0.0.1:7402' },
      { preset: 'wan', raft: { proposalTimeoutMs: 12_000 }, connection: { checksum: false } },
      { ...HOME_ENV, RDBNET_ID: 'n1', RDBNET_BOOTSTRAP_EXPECT: '3' },
    );
    const json = nodeConfig.nodeConfigJson(original);
    const again = nodeConfig.resolveNodeConfig({}, JSON.parse(JSON.stringify(json)), HOME_ENV);
    assert.deepEqual({ ...again, certsDirIsDefault: true }, { ...original });
    // null stands for "not set" (id recorded in the data dir, no --join, no bootstrap-expect).
    const defaults = nodeConfig.nodeConfigJson(nodeConfig.resolveNodeConfig({}, {}, HOME_ENV));
    assert.equal(defaults.id, null);
    assert.equal(defaults.join, null);
    assert.equal(defaults.bootstrapExpect, null);
  });
});

function leafPaths(value: object, prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, item] of Object.entries(value)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    if (item !== null && typeof item === 'object' && !Array.isArray(item)) {
      out.push(...leafPaths(item, path));
    } else {
      out.push(path);
    }
  }
  return out;
}

describe('idReclaimAfterMs', () => {
  test('defaults to the preset gossip reclaim time', () => {
    assert.equal(nodeConfig.resolveNodeConfig({}, {}, HOME_ENV).idReclaimAfterMs, 5000);
    for (const preset of ['lan', 'wan', 'local'] as const) {
      assert.equal(
        nodeConfig.resolveNodeConfig({}, { preset }, HOME_ENV).idReclaimAfterMs,
        SWIM_PRESETS[preset].deadReclaimMs,
      );
    }
  });

  test('a config file sets it; bad values are refused naming it', () => {
    const set = (value: number) =>
      nodeConfig.resolveNodeConfig({}, { idReclaimAfterMs: value }, HOME_ENV).idReclaimAfterMs;
    assert.equal(set(0), 0);
    assert.equal(set(12_000), 12_000);
    for (const bad of [-1, 1.5, 86_400_001]) {
      assert.throws(() => set(bad), refused('idReclaimAfterMs', /file/));
    }
  });
});
