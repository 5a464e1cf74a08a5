/**
 * The certificate service (src/core/pki) called directly, as the CLI and an HTTP API would:
 * a certificates directory made by it, and one real node run in this process (TLS on
 * loopback, port from the kernel) that the node operations talk to. Steps share the node and
 * run in order: directory, inventory, operator checks, verify, revoke, rotate, CA rotation.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FORBIDDEN_HINT, NodeClient, operatorDialInit } from '../../src/core/client/node-client.ts';
import { resolveNodeConfig } from '../../src/core/config/node-config.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { RdbnetNode } from '../../src/core/node/node.ts';
import {
  finishCaRotation,
  type IssueResult,
  initCa,
  inspectFile,
  issueLeaf,
  listCertificates,
  type NodeTarget,
  nodeTargets,
  type PkiOperator,
  requireClientRole,
  revokeSerials,
  rotateNodeCertificate,
  startCaRotation,
  verifyNode,
} from '../../src/core/pki/index.ts';
import { createLogger } from '../../src/core/runtime/log.ts';
import { createCertificateAuthority } from '../../src/core/security/pki.ts';
import { tempHome } from '../helpers/processes.ts';

const CLUSTER = 'pki-svc';

let home: { dir: string; cleanup(): Promise<void> };
let certs: string;
let node: RdbnetNode | null = null;
let target: NodeTarget;
let admin: PkiOperator;
let viewer: PkiOperator;
let nodeCert: IssueResult;

/** Every file of a directory with its content. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    files[name] = await readFile(join(dir, name), 'utf8');
  }
  return files;
}

function code(expected: string) {
  return (error: unknown) => {
    assert.ok(isRdbnetError(error), String(error));
    assert.equal(error.code, expected, error.message);
    return true;
  };
}

/** The serial the node presents on a new connection. */
async function presentedSerial(operator: PkiOperator): Promise<string> {
  const init = await operatorDialInit({
    address: target.address,
    certsDir: operator.certsDir,
    clientName: operator.clientName,
    insecure: false,
    timeoutMs: 10_000,
  });
  return NodeClient.with(init, async (client) => client.presentedCertificate!.serialNumber);
}

before(async () => {
  home = await tempHome('rdbnet-pki-service-');
  certs = join(home.dir, 'certs');
  await initCa({ dir: certs, cluster: CLUSTER, days: 30, keyBits: 2048, overwrite: false });
  const leaf = { dir: certs, hosts: [], days: 30, keyBits: 2048 as const, overwrite: false };
  nodeCert = await issueLeaf({ ...leaf, kind: 'node', name: 'n1', hosts: ['127.0.0.1'] });
  await issueLeaf({ ...leaf, kind: 'client', name: 'admin', role: 'admin' });
  await issueLeaf({ ...leaf, kind: 'client', name: 'viewer' });
  admin = { certsDir: certs, clientName: 'admin', timeoutMs: 10_000 };
  viewer = { ...admin, clientName: 'viewer' };
});

after(async () => {
  await node?.stop();
  await home.cleanup();
});

describe('the local certificates directory', () => {
  test('init and issue write keys 0600 and refuse to replace anything', async () => {
    const files = await snapshot(certs);
    for (const key of ['ca.key', 'node.n1.key', 'client.admin.key', 'gossip.keyring']) {
      assert.equal((await stat(join(certs, key))).mode & 0o777, 0o600, key);
    }
    assert.equal(nodeCert.identity, `rdbnet://${CLUSTER}/node/n1`);
    assert.equal(nodeCert.role, 'node');
    assert.deepEqual(nodeCert.hosts, ['127.0.0.1']);
    await assert.rejects(
      initCa({ dir: certs, cluster: 'other', days: 1, keyBits: 2048, overwrite: false }),
      code(ErrorCode.AlreadyExists),
    );
    await assert.rejects(
      issueLeaf({
        dir: certs,
        kind: 'client',
        name: 'viewer',
        role: 'admin',
        hosts: [],
        days: 1,
        keyBits: 2048,
        overwrite: false,
      }),
      code(ErrorCode.AlreadyExists),
    );
    assert.deepEqual(await snapshot(certs), files, 'a refusal wrote something');
  });

  test('list reports every certificate, its role, and problems without failing', async () => {
    const entries = await listCertificates(certs);
    assert.deepEqual(
      entries.map((entry) => `${entry.kind}:${entry.role}:${entry.file.split('/').pop()}`),
      [
        'ca:null:ca.crt',
        'client:admin:client.admin.crt',
        'client:read:client.viewer.crt',
        'node:node:node.n1.crt',
      ],
    );
    for (const entry of entries) assert.deepEqual(entry.problems, [], entry.file);
    const ca = entries[0]!;
    assert.ok(entries.every((entry) => entry.signedBy === ca.serial));

    await chmod(join(certs, 'client.viewer.key'), 0o644);
    try {
      const widened = (await listCertificates(certs)).find((e) => e.role === 'read')!;
      assert.match(widened.problems.join('; '), /mode 0644, wider than 0600/);
    } finally {
      await chmod(join(certs, 'client.viewer.key'), 0o600);
    }
  });

  test('inspect takes a name in the directory and checks the key next to it', async () => {
    const inspected = await inspectFile('node.n1.crt', certs);
    assert.equal(inspected.file, join(certs, 'node.n1.crt'));
    assert.equal(inspected.certificates[0]?.serial, nodeCert.serial);
    assert.equal(inspected.certificates[0]?.identityUri, nodeCert.identity);
    assert.deepEqual(inspected.key, {
      file: join(certs, 'node.n1.key'),
      mode: '0600',
      matches: true,
    });
    await assert.rejects(inspectFile('nope.crt', certs), code(ErrorCode.CertificatesMissing));
  });
});

describe('operator checks, before anything is written or sent', () => {
  test('node addresses are parsed up front, naming their source', () => {
    assert.deepEqual(nodeTargets(['127.0.0.1:7001', '[::1]:7002'], 'x'), [
      { node: '127.0.0.1:7001', address: { host: '127.0.0.1', port: 7001 } },
      { node: '[::1]:7002', address: { host: '::1', port: 7002 } },
    ]);
    assert.throws(
      () => nodeTargets(['127.0.0.1:7001', 'nonsense'], 'address in --nodes'),
      (error: unknown) =>
        code(ErrorCode.Usage)(error) &&
        /address in --nodes 'nonsense'/.test((error as Error).message),
    );
  });

  test("a read client may not revoke: RDB_FORBIDDEN with the roles' hint", async () => {
    await requireClientRole(admin, 'certs.revoke');
    await assert.rejects(requireClientRole(viewer, 'certs.revoke'), (error: unknown) => {
      code(ErrorCode.Forbidden)(error);
      assert.equal(
        (error as Error).message,
        'operation certs.revoke needs role admin; certificate client/viewer has role read',
      );
      assert.equal((error as { hint?: string }).hint, FORBIDDEN_HINT);
      return true;
    });
  });
});

describe('a running node', () => {
  before(async () => {
    const config = resolveNodeConfig(
      {
        id: 'n1',
        listen: '127.0.0.1:0',
        dataDir: join(home.dir, 'n1'),
        certsDir: certs,
        preset: 'local',
        logLevel: 'error',
      },
      {},
      { RDBNET_HOME: home.dir },
    );
    node = await RdbnetNode.start(config, createLogger({ level: 'error' }));
    [target] = nodeTargets([node.address], 'node address') as [NodeTarget];
  });

  test('verify: the node proves it holds the key of the certificate it presents', async () => {
    const proof = await verifyNode(viewer, target);
    assert.equal(proof.verified, true);
    assert.equal(proof.node, target.node);
    assert.equal(proof.nodeId, 'n1');
    assert.equal(proof.serial, nodeCert.serial);
    assert.equal(proof.algorithm, 'RSA-SHA256');
  });

  test('revoke: the list is written and pushed; a read client changes nothing', async () => {
    const files = await snapshot(certs);
    await assert.rejects(revokeSerials(viewer, [target], ['0a:bc']), code(ErrorCode.Forbidden));
    assert.deepEqual(await snapshot(certs), files);

    const result = await revokeSerials(admin, [target], ['0a:bc', 'ABCDEF01']);
    assert.deepEqual(result.revoked, ['0ABC', 'ABCDEF01']);
    assert.deepEqual(result.added, ['0ABC', 'ABCDEF01']);
    assert.deepEqual(result.nodes, [{ node: target.node, ok: true, revoked: 2 }]);
    assert.equal(
      await readFile(result.file, 'utf8'),
      '# revoked certificate serials, one per line\n0ABC\nABCDEF01\n',
    );
    const info = await NodeClient.with(
      await operatorDialInit({ ...admin, address: target.address, insecure: false }),
      (client) => client.ask('certInfoRequest', {}),
    );
    assert.deepEqual([...info.revokedSerials], ['0ABC', 'ABCDEF01']);
  });

  test('rotate: a new key and certificate, presented on new connections', async () => {
    const before = await presentedSerial(admin);
    const rotation = await rotateNodeCertificate(admin, target, { days: 10, keyBits: 2048 });
    assert.equal(rotation.rotated, true);
    assert.equal(rotation.nodeId, 'n1');
    assert.equal(rotation.previousSerial, before);
    assert.notEqual(rotation.serial, before);
    assert.equal(await presentedSerial(admin), rotation.serial);
  });

  test('CA rotation: phase 1 moves the node and the clients, phase 2 drops the old CA', async () => {
    const oldCa = new X509Certificate(await readFile(join(certs, 'ca.crt'), 'utf8'));
    const begun = await startCaRotation(admin, [target], { caDays: 30, days: 10, keyBits: 2048 });
    assert.equal(begun.ok, true, JSON.stringify(begun.nodes));
    assert.equal(begun.resumed, false);
    assert.equal(begun.previousCa?.serial, oldCa.serialNumber);
    assert.deepEqual(begun.bundle, [begun.ca.serial, oldCa.serialNumber]);
    assert.equal(begun.nodes[0]?.bundle, 2);
    assert.equal(begun.nodes[0]?.signedBy, begun.ca.serial);
    assert.ok(begun.nodes[0]?.rotated, 'the node certificate was not rotated');
    assert.deepEqual(begun.clients.map((client) => client.name).sort(), ['admin', 'viewer']);

    const finished = await finishCaRotation(admin, [target]);
    assert.equal(finished.ok, true, JSON.stringify(finished.nodes));
    assert.deepEqual(finished.bundle, [begun.ca.serial]);
    assert.equal(finished.nodes[0]?.bundle, 1);
    assert.deepEqual(finished.removed, [join(certs, 'ca.previous.key')]);
    // Only the new CA is trusted now, on both sides, and the node still proves its key.
    assert.equal((await verifyNode(viewer, target)).serial, begun.nodes[0]?.serial);
  });

  test('a CA the node does not trust: RDB_CERT_UNTRUSTED, with the CA rotation hint', async () => {
    // A copy of the directory whose signing CA is a new one the node was never told about
    // (ca.crt holds it and the CA the node trusts): what an operator has after a CA
    // rotation begun elsewhere. Its client certificate is still the trusted one.
    const elsewhere = join(home.dir, 'elsewhere');
    await cp(certs, elsewhere, { recursive: true });
    const stranger = createCertificateAuthority({ cluster: CLUSTER });
    const trusted = await readFile(join(certs, 'ca.crt'), 'utf8');
    await writeFile(join(elsewhere, 'ca.key'), stranger.keyPem, { mode: 0o600 });
    await writeFile(join(elsewhere, 'ca.crt'), stranger.certPem + trusted);
    const before = await presentedSerial(admin);
    await assert.rejects(
      rotateNodeCertificate({ ...admin, certsDir: elsewhere }, target, {
        days: 10,
        keyBits: 2048,
      }),
      (error: unknown) => {
        code(ErrorCode.CertificateUntrusted)(error);
        assert.match((error as Error).message, new RegExp(`^node at ${target.node}: `));
        assert.match((error as { hint?: string }).hint ?? '', /certs rotate --ca --nodes/);
        return true;
      },
    );
    assert.equal(await presentedSerial(admin), before, 'the node changed its certificate');
  });
});
