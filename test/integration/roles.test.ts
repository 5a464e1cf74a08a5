/**
 * Roles on real processes, driven by the real CLI: a zero-config node (its `admin` client is
 * an admin), a second node waiting for a cluster, a `read` client (`certs client` without
 * --role) and a node certificate of no member. The read client asks everything and changes
 * nothing: each change is refused with RDB_FORBIDDEN (exit 1, one line) and the node's state
 * is as before; a node certificate cannot do an operator's operations; the admin client can
 * do them all. Then a CA made by `certs init --cluster probe` names the cluster of a
 * zero-config node started on it.
 *
 * The steps share one pair of nodes, so they run in order; loopback only, ports from the kernel.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NodeClient } from '../../src/core/client/node-client.ts';
import { isRdbnetError } from '../../src/core/errors.ts';
import type { Envelope } from '../../src/core/protocol/messages.ts';
import { generateKey } from '../../src/core/security/keyring.ts';
import type { TlsMaterial } from '../../src/core/security/tls.ts';
import { parseHostPort } from '../../src/core/transport/address.ts';
import { connectionOptions } from '../../src/core/transport/options.ts';
import {
  type CliResult,
  describeResult,
  killAllNodes,
  type NodeProcess,
  parseJson,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const POLL_MS = 100;
const until = poller(POLL_MS);
/** A serial no certificate here has; revoking it harms nothing. */
const SPARE_SERIAL = 'ABCDEF0123';

let home: { dir: string; cleanup(): Promise<void> };
let certs: string;
let cluster: string;
let n1: NodeProcess;
let n2: NodeProcess;
const clients = new Set<NodeClient>();

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

async function cli(args: string[]): Promise<CliResult> {
  return runCli(args, env(), 60_000);
}

async function ok<T>(args: string[]): Promise<T> {
  const result = await cli([...args, '--json']);
  assert.equal(result.code, 0, describeResult(result));
  return parseJson<T>(result);
}

/** Runs a command that must be refused for its role: exit 1, RDB_FORBIDDEN naming both roles. */
async function forbidden(args: string[], operation: string, holder: string): Promise<void> {
  const result = await cli([...args, '--json']);
  assert.equal(result.code, 1, describeResult(result));
  const { error } = parseJson<{ error: { code: string; message: string; hint?: string } }>(result);
  assert.equal(error.code, 'RDB_FORBIDDEN', describeResult(result));
  assert.equal(
    error.message,
    `operation ${operation} needs role admin; certificate ${holder}`,
    describeResult(result),
  );
  assert.match(error.hint ?? '', /--role admin/);
}

async function pair(kind: 'node' | 'client', name: string): Promise<TlsMaterial> {
  return {
    ca: await readFile(join(certs, 'ca.crt'), 'utf8'),
    cert: await readFile(join(certs, `${kind}.${name}.crt`), 'utf8'),
    key: await readFile(join(certs, `${kind}.${name}.key`), 'utf8'),
  };
}

async function connect(
  address: string,
  as: { kind: 'node' | 'client'; name: string },
): Promise<NodeClient> {
  const client = await NodeClient.connect({
    address: parseHostPort(address),
    local: { id: as.name, clusterId: cluster, role: as.kind, softwareVersion: 'roles-test' },
    tls: await pair(as.kind, as.name),
    options: connectionOptions({ handshakeTimeoutMs: 10_000, requestTimeoutMs: 10_000 }),
  });
  clients.add(client);
  return client;
}

/** What a node holds that the refused operations would change, asked as the admin. */
async function nodeState(node: NodeProcess) {
  const admin = await connect(node.address, { kind: 'client', name: 'admin' });
  try {
    const info = await admin.ask('certInfoRequest', {});
    const keyring = await admin.ask('keyringRequest', { op: 'list', key: '', forwarded: false });
    const status = await admin.ask('statusRequest', {});
    const consensus = await admin.ask('clusterStatusRequest', { localOnly: true });
    return {
      serial: admin.presentedCertificate?.serialNumber,
      revoked: [...info.revokedSerials],
      bundle: info.bundlePem,
      keyrings: keyring.results
        .map((result) => `${result.node}: ${result.primary} | ${[...result.keys].sort()}`)
        .sort(),
      state: status.state,
      clusterState: consensus.state,
      members: consensus.members.map((member) => member.id).sort(),
      counters: status.counters,
    };
  } finally {
    admin.close();
  }
}

/**
 * The refusal a request gets, as the caller sees it ('answered: <kind>' when none). Sent as
 * a raw envelope: the tables below mix request kinds, and only the refusal matters.
 */
async function refusal(client: NodeClient, request: Envelope): Promise<string> {
  try {
    return `answered: ${(await client.connection.request(request)).kind}`;
  } catch (error) {
    if (isRdbnetError(error)) return `${error.code}: ${error.message}`;
    throw error;
  }
}

before(async () => {
  home = await tempHome('rdbnet-roles-');
  certs = join(home.dir, 'certs');
  // Zero config: CA, node and `admin` client certificates made in $RDBNET_HOME/certs.
  n1 = await startNode(
    ['--id', 'n1', '--listen', '127.0.0.1:0', '--data-dir', join(home.dir, 'n1')],
    env(),
  );
  cluster = n1.info.clusterId;
  n2 = await startNode(
    ['--id', 'n2', '--listen', '127.0.0.1:0', '--data-dir', join(home.dir, 'n2'), '--join', ''],
    env(),
  );
  await ok(['certs', 'client', '--name', 'viewer']);
  await ok(['certs', 'issue', '--node-id', 'rogue', '--host', '127.0.0.1']);
});

after(async () => {
  for (const client of clients) client.close();
  await killAllNodes();
  await home.cleanup();
});

describe('roles', () => {
  test('certificates show their role: the zero-config admin is admin, a new client read', async () => {
    const list = await ok<{ certificates: { file: string; role: string | null }[] }>([
      'certs',
      'list',
    ]);
    const roles = Object.fromEntries(
      list.certificates.map((entry) => [entry.file.split('/').pop(), entry.role]),
    );
    assert.deepEqual(roles, {
      'ca.crt': null,
      'client.admin.crt': 'admin',
      'client.viewer.crt': 'read',
      'node.n1.crt': 'node',
      'node.n2.crt': 'node',
      'node.rogue.crt': 'node',
    });
    const inspected = await ok<{ certificates: { role: string; identityUri: string }[] }>([
      'certs',
      'inspect',
      'client.viewer.crt',
    ]);
    assert.equal(inspected.certificates[0]?.role, 'read');
    assert.equal(inspected.certificates[0]?.identityUri, `rdbnet://${cluster}/client/viewer`);
  });

  test('a read client asks: node status, health, members, events, cluster status, keys, verify', async () => {
    const as = ['--client', 'viewer', '--node', n1.address];
    assert.equal((await ok<{ id: string }>(['node', 'status', ...as])).id, 'n1');
    const health = await cli(['health', ...as, '--json']);
    assert.ok(health.code === 0 || health.code === 1, describeResult(health));
    assert.ok('status' in parseJson<object>(health), describeResult(health));
    await ok(['cluster', 'members', ...as]);
    await ok(['cluster', 'events', ...as]);
    assert.equal((await ok<{ leader: string }>(['cluster', 'status', ...as])).leader, 'n1');
    assert.ok((await ok<{ keys: unknown[] }>(['keys', 'list', ...as])).keys.length > 0);
    assert.equal((await ok<{ verified: boolean }>(['certs', 'verify', ...as])).verified, true);
  });

  test('a read client cannot join or bootstrap a waiting node; the admin can', async () => {
    const viewer = ['--client', 'viewer', '--node', n2.address];
    await forbidden(
      ['cluster', 'join', '--seeds', n1.address, ...viewer],
      'cluster.join',
      'client/viewer has role read',
    );
    await forbidden(
      ['cluster', 'bootstrap', '--expect', '1', ...viewer],
      'cluster.bootstrap',
      'client/viewer has role read',
    );
    assert.equal((await nodeState(n2)).clusterState, 'pending');

    const joined = await ok<{ members: { id: string }[] }>([
      'cluster',
      'join',
      '--seeds',
      n1.address,
      '--node',
      n2.address,
      '--wait',
      '20000',
    ]);
    assert.deepEqual(joined.members.map((member) => member.id).sort(), ['n1', 'n2']);
    // Gossip next: keyring requests go to every alive member.
    for (const node of [n1, n2]) {
      await until(
        `${node.info.id} sees both members alive`,
        async () => {
          const admin = await connect(node.address, { kind: 'client', name: 'admin' });
          try {
            const reply = await admin.ask('membersRequest', {});
            const alive = reply.members.filter((member) => member.state === 'alive');
            return alive.length === 2 ? true : undefined;
          } finally {
            admin.close();
          }
        },
        30_000,
      );
    }
  });

  test('a read client is refused every change, and nothing changed', async () => {
    const before1 = await nodeState(n1);
    const before2 = await nodeState(n2);
    assert.deepEqual(before1.revoked, []);
    const viewer = ['--client', 'viewer', '--node', n1.address];
    const holder = 'client/viewer has role read';

    await forbidden(
      ['certs', 'revoke', '--serial', SPARE_SERIAL, ...viewer],
      'certs.revoke',
      holder,
    );
    // The command refused before writing the local list …
    await assert.rejects(readFile(join(certs, 'revoked.txt'), 'utf8'), { code: 'ENOENT' });
    // … and the node refuses the push itself, whoever asks with a read certificate.
    const direct = await connect(n1.address, { kind: 'client', name: 'viewer' });
    assert.equal(
      await refusal(direct, { revocationsRequest: { serials: [SPARE_SERIAL] } }),
      `RDB_FORBIDDEN: operation certs.revoke needs role admin; certificate ${holder}`,
    );
    direct.close();

    await forbidden(['certs', 'rotate', ...viewer], 'certs.rotate', holder);
    await forbidden(['keys', 'install', generateKey(), ...viewer], 'keys.install', holder);
    await forbidden(['keys', 'use', generateKey(), ...viewer], 'keys.use', holder);
    await forbidden(
      ['cluster', 'transfer-leader', '--to', 'n2', ...viewer],
      'cluster.transfer-leader',
      holder,
    );
    await forbidden(
      ['cluster', 'leave', '--client', 'viewer', '--node', n2.address],
      'cluster.leave',
      holder,
    );
    // A person sees one line and a hint, no stack.
    const human = await cli(['cluster', 'leave', '--client', 'viewer', '--node', n2.address]);
    assert.equal(human.code, 1, describeResult(human));
    assert.deepEqual(
      human.stderr
        .trimEnd()
        .split('\n')
        .map((line) => line.split(':')[0]),
      ['Error', 'Hint'],
      human.stderr,
    );
    assert.match(
      human.stderr,
      /^Error: operation cluster\.leave needs role admin; certificate client\/viewer has role read$/m,
    );

    const after1 = await nodeState(n1);
    const after2 = await nodeState(n2);
    for (const [before, after] of [
      [before1, after1],
      [before2, after2],
    ] as const) {
      assert.equal(after.serial, before.serial, 'certificate rotated');
      assert.deepEqual(after.revoked, before.revoked, 'revocation list changed');
      assert.equal(after.bundle, before.bundle, 'trust bundle changed');
      assert.deepEqual(after.keyrings, before.keyrings, 'keyring changed');
      assert.equal(after.state, 'running');
      assert.deepEqual(after.members, ['n1', 'n2']);
    }
    assert.equal(n2.child.exitCode, null, 'n2 left');
    // Each refusal a node saw is counted, by operation (`certs revoke` never reached one).
    assert.equal(
      (after1.counters['auth.forbidden'] ?? 0) - (before1.counters['auth.forbidden'] ?? 0),
      5,
      JSON.stringify(after1.counters),
    );
    for (const operation of [
      'certs.revoke',
      'certs.rotate',
      'keys.install',
      'keys.use',
      'cluster.transfer-leader',
    ]) {
      assert.equal(after1.counters[`auth.forbidden.${operation}`], 1, operation);
    }
    assert.equal(after2.counters['auth.forbidden.cluster.leave'], 2);
  });

  test('a node certificate cannot do what operators do, member or not', async () => {
    const before1 = await nodeState(n1);
    const primary = before1.keyrings[0]!.split(': ')[1]!.split(' | ')[0]!;
    const newKey = generateKey();
    const operatorRequests: [string, Envelope][] = [
      ['certs.revoke', { revocationsRequest: { serials: [SPARE_SERIAL] } }],
      ['certs.rotate', { certRotateRequest: { keyBits: 2048 } }],
      ['certs.install', { certInstallRequest: { certPem: before1.bundle } }],
      ['certs.trust-bundle', { trustBundleRequest: { bundlePem: before1.bundle } }],
      ['keys.install', { keyringRequest: { op: 'install', key: newKey, forwarded: false } }],
      ['keys.remove', { keyringRequest: { op: 'remove', key: primary, forwarded: false } }],
      ['cluster.leave', { leaveRequest: { force: true } }],
      ['cluster.transfer-leader', { transferLeaderRequest: { to: 'n2', forwarded: false } }],
      ['cluster.bootstrap', { clusterBootstrapRequest: { expect: 1, waitMs: 0 } }],
      ['cluster.join', { clusterJoinRequest: { seeds: [n2.address], waitMs: 0 } }],
    ];
    // Passing a keyring change on is for members: a node certificate of no member may not.
    const rogue = await connect(n1.address, { kind: 'node', name: 'rogue' });
    for (const request of [
      { keyringRequest: { op: 'install', key: newKey, forwarded: true } },
      { keyringRequest: { op: 'remove', key: primary, forwarded: true } },
    ]) {
      assert.match(await refusal(rogue, request), /^RDB_FORBIDDEN: node rogue is not a live/);
    }
    rogue.close();

    for (const name of ['rogue', 'n2']) {
      const asNode = await connect(n1.address, { kind: 'node', name });
      for (const [operation, request] of operatorRequests) {
        assert.equal(
          await refusal(asNode, request),
          `RDB_FORBIDDEN: operation ${operation} needs role admin; certificate node/${name} has role node`,
          `${name} ${operation}`,
        );
      }
      asNode.close();
    }
    const after1 = await nodeState(n1);
    assert.equal(after1.serial, before1.serial);
    assert.deepEqual(after1.revoked, before1.revoked);
    assert.equal(after1.bundle, before1.bundle);
    assert.deepEqual(after1.keyrings, before1.keyrings);
    assert.deepEqual(after1.members, ['n1', 'n2']);
    assert.equal(after1.state, 'running');
    assert.equal(
      (after1.counters['auth.forbidden'] ?? 0) - (before1.counters['auth.forbidden'] ?? 0),
      2 * operatorRequests.length + 2,
    );
  });

  test('an admin client revokes, rotates, changes keys, transfers leadership, makes a node leave', async () => {
    const before1 = await nodeState(n1);
    const at = ['--node', n1.address];
    const revoked = await ok<{ revoked: string[]; nodes: { ok: boolean }[] }>([
      'certs',
      'revoke',
      '--serial',
      SPARE_SERIAL,
      ...at,
    ]);
    assert.deepEqual(revoked.revoked, [SPARE_SERIAL]);
    const rotated = await ok<{ serial: string; previousSerial: string }>([
      'certs',
      'rotate',
      ...at,
    ]);
    assert.equal(rotated.previousSerial, before1.serial);
    const key = generateKey();
    await ok(['keys', 'install', key, ...at]);
    const status = await ok<{ leader: string }>(['cluster', 'status', ...at]);
    assert.equal(
      (await ok<{ leader: string }>(['cluster', 'transfer-leader', '--to', status.leader, ...at]))
        .leader,
      status.leader,
    );

    const after1 = await nodeState(n1);
    assert.deepEqual(after1.revoked, [SPARE_SERIAL]);
    assert.equal(after1.serial, rotated.serial);
    assert.notEqual(after1.serial, before1.serial);
    assert.equal(after1.keyrings.length, 2);
    for (const keyring of after1.keyrings) assert.ok(keyring.includes(key), keyring);

    const left = await ok<{ left: boolean; id: string }>([
      'cluster',
      'leave',
      '--node',
      n2.address,
    ]);
    assert.deepEqual(left, { left: true, id: 'n2' });
    const exit = await Promise.race([
      new Promise<number | null>((resolve) => n2.child.once('exit', (code) => resolve(code))),
      new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 20_000)),
    ]);
    assert.ok(exit !== 'timeout' || n2.child.exitCode !== null, 'n2 did not stop after leaving');
  });
});

describe('the cluster of the CA', () => {
  test('after certs init --cluster probe, a zero-config node and its certificates are in probe', async () => {
    const probeHome = await tempHome('rdbnet-roles-probe-');
    try {
      const probeEnv = { RDBNET_HOME: probeHome.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '' };
      const init = await runCli(['certs', 'init', '--cluster', 'probe', '--json'], probeEnv);
      assert.equal(init.code, 0, describeResult(init));
      const node = await startNode(['--id', 'p1', '--listen', '127.0.0.1:0'], probeEnv);
      assert.equal(node.info.clusterId, 'probe');
      const list = await runCli(['certs', 'list', '--json'], probeEnv);
      assert.equal(list.code, 0, describeResult(list));
      const entries = parseJson<{
        certificates: { file: string; identity: string | null; role: string | null }[];
      }>(list).certificates.map((entry) => [
        entry.file.split('/').pop(),
        entry.identity,
        entry.role,
      ]);
      assert.deepEqual(entries, [
        ['ca.crt', null, null],
        ['client.admin.crt', 'rdbnet://probe/client/admin', 'admin'],
        ['node.p1.crt', 'rdbnet://probe/node/p1', 'node'],
      ]);
      // The default client speaks to it (same cluster) and is its admin.
      const health = await runCli(['health', '--node', node.address, '--json'], probeEnv);
      assert.equal(health.code, 0, describeResult(health));
      const keys = await runCli(
        ['keys', 'install', generateKey(), '--node', node.address, '--json'],
        probeEnv,
      );
      assert.equal(keys.code, 0, describeResult(keys));
      await node.stop();
    } finally {
      await probeHome.cleanup();
    }
  });
});
