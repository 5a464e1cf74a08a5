/**
 * `rdbnet certs …` against real processes and real TLS on loopback: a CA and certificates
 * made with the CLI, three nodes started from them with --certs-dir, then listing,
 * inspecting, proof of possession, revocation, and every certificate a node must refuse,
 * each refusal with a clear error on the client and a counter on the node.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NodeClient } from '../../src/core/client/node-client.ts';
import type { RdbnetError } from '../../src/core/errors.ts';
import type { DecodedEnvelope, Envelope } from '../../src/core/protocol/messages.ts';
import type { Role } from '../../src/core/security/identity.ts';
import {
  createCertificateAuthority,
  issueClientCertificate,
  issueNodeCertificate,
  type KeyPairPem,
} from '../../src/core/security/pki.ts';
import type { TlsMaterial } from '../../src/core/security/tls.ts';
import { parseHostPort } from '../../src/core/transport/address.ts';
import { connectionOptions } from '../../src/core/transport/options.ts';
import { TransportServer } from '../../src/core/transport/server.ts';
import {
  type CliResult,
  describeResult,
  killAllNodes,
  type NodeProcess,
  runCli,
  runCliWithInput,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const CLUSTER = 'certs-test';
const DAY_MS = 24 * 60 * 60 * 1000;

let home: { dir: string; cleanup(): Promise<void> };
let certs: string;
const nodes: NodeProcess[] = [];
const servers: TransportServer[] = [];
const clients = new Set<NodeClient>();

before(async () => {
  home = await tempHome('rdbnet-certs-');
  certs = join(home.dir, 'certs');
});

after(async () => {
  for (const client of clients) client.close();
  await Promise.all(servers.map((server) => server.close(100)));
  await killAllNodes();
  await home.cleanup();
});

/** Only RDBNET_HOME decides; the surrounding shell's variables must not leak in. */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '', ...extra };
}

function json<T>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    assert.fail(`stdout is not one JSON document:\n${describeResult(result)}`);
  }
}

async function ok<T>(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<T> {
  const result = await runCli([...args, '--json'], env(extra));
  assert.equal(result.code, 0, describeResult(result));
  return json<T>(result);
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
  tls: TlsMaterial,
  as: { id: string; role: Role },
): Promise<NodeClient> {
  const client = await NodeClient.connect({
    address: parseHostPort(address),
    local: { ...as, clusterId: CLUSTER, softwareVersion: 'certs-test' },
    tls,
    options: connectionOptions({ handshakeTimeoutMs: 5000, requestTimeoutMs: 5000 }),
  });
  clients.add(client);
  return client;
}

async function dialError(
  address: string,
  tls: TlsMaterial,
  as: { id: string; role: Role },
): Promise<RdbnetError> {
  try {
    const client = await connect(address, tls, as);
    // With TLS 1.3 a refusal can arrive after the client believes it is connected.
    await client.ask('healthRequest', {});
  } catch (error) {
    return error as RdbnetError;
  }
  assert.fail(`the node at ${address} accepted ${as.role} '${as.id}'`);
}

async function counters(node: NodeProcess): Promise<Record<string, number>> {
  const admin = await connect(node.address, await pair('client', 'admin'), {
    id: 'admin',
    role: 'client',
  });
  try {
    return (await admin.ask('statusRequest', {})).counters;
  } finally {
    admin.close();
  }
}

/** Polls the node's counters until `name` has grown past `before`. */
async function counterGrew(node: NodeProcess, name: string, before: number): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const value = (await counters(node))[name] ?? 0;
    if (value > before) return value;
    if (Date.now() > deadline) assert.fail(`counter ${name} stayed at ${value}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function expectRejected(
  node: NodeProcess,
  counter: string,
  tls: TlsMaterial,
  as: { id: string; role: Role },
  pattern: { code: string | string[]; message?: RegExp },
): Promise<void> {
  const before = (await counters(node))[counter] ?? 0;
  const error = await dialError(node.address, tls, as);
  const codes = Array.isArray(pattern.code) ? pattern.code : [pattern.code];
  assert.ok(codes.includes(error.code), `${error.code}: ${error.message}`);
  if (pattern.message !== undefined) assert.match(error.message, pattern.message);
  assert.ok(error.message.includes(node.address), `error does not name the node: ${error.message}`);
  if (error.hint === undefined) assert.match(error.message, /revoked|identifies/);
  await counterGrew(node, counter, before);
  // The node keeps serving everyone else.
  const admin = await connect(node.address, await pair('client', 'admin'), {
    id: 'admin',
    role: 'client',
  });
  await admin.ask('healthRequest', {});
  admin.close();
}

async function caPair(): Promise<KeyPairPem> {
  return {
    certPem: await readFile(join(certs, 'ca.crt'), 'utf8'),
    keyPem: await readFile(join(certs, 'ca.key'), 'utf8'),
  };
}

interface ListResult {
  certificates: {
    file: string;
    kind: string;
    subject: string;
    serial: string;
    notAfter: string;
    daysLeft: number;
    problems: string[];
  }[];
}

describe('certs init / issue / client', () => {
  test('init creates ca.crt, ca.key and gossip.keyring (0600) and refuses to replace them', async () => {
    const made = await ok<{ created: string[]; cluster: string; serial: string; notAfter: string }>(
      ['certs', 'init', '--cluster', CLUSTER],
    );
    assert.deepEqual(made.created.sort(), [
      join(certs, 'ca.crt'),
      join(certs, 'ca.key'),
      join(certs, 'gossip.keyring'),
    ]);
    assert.equal(((await stat(join(certs, 'gossip.keyring'))).mode & 0o777).toString(8), '600');
    assert.equal(made.cluster, CLUSTER);
    assert.match(made.serial, /^[0-9A-F]+$/);
    assert.ok(Date.parse(made.notAfter) > Date.now() + 3000 * DAY_MS);
    assert.equal(((await stat(join(certs, 'ca.key'))).mode & 0o777).toString(8), '600');
    const caBefore = await readFile(join(certs, 'ca.crt'), 'utf8');

    const again = await runCli(['certs', 'init', '--cluster', CLUSTER], env());
    assert.equal(again.code, 1, describeResult(again));
    assert.match(again.stderr, /^Error: a CA already exists: .*ca\.crt/m);
    assert.match(again.stderr, /^Hint: .*--overwrite/m);
    assert.ok(!again.stderr.includes('    at '), again.stderr);
    const againJson = await runCli(['certs', 'init', '--json'], env());
    assert.equal(againJson.code, 1, describeResult(againJson));
    assert.equal(json<{ error: { code: string } }>(againJson).error.code, 'RDB_ALREADY_EXISTS');
    assert.equal(await readFile(join(certs, 'ca.crt'), 'utf8'), caBefore, 'CA replaced');
  });

  test('issue makes node certificates (hosts from the flag or stdin), client makes clients', async () => {
    for (const id of ['n1', 'n2']) {
      const issued = await ok<{ file: string; keyFile: string; identity: string; serial: string }>([
        'certs',
        'issue',
        '--node-id',
        id,
        '--host',
        '127.0.0.1,localhost',
      ]);
      assert.equal(issued.file, join(certs, `node.${id}.crt`));
      assert.equal(issued.keyFile, join(certs, `node.${id}.key`));
      assert.equal(issued.identity, `rdbnet://${CLUSTER}/node/${id}`);
      assert.equal(((await stat(issued.keyFile)).mode & 0o777).toString(8), '600');
    }
    const fromStdin = await runCliWithInput(
      ['certs', 'issue', '--node-id', 'n3', '--host', '-', '--json'],
      '127.0.0.1\nlocalhost\n',
      env(),
    );
    assert.equal(fromStdin.code, 0, describeResult(fromStdin));
    const n3 = await ok<{ certificates: { dnsNames: string[]; ipAddresses: string[] }[] }>([
      'certs',
      'inspect',
      'node.n3.crt',
    ]);
    assert.deepEqual(n3.certificates[0]?.dnsNames, ['localhost']);
    assert.deepEqual(n3.certificates[0]?.ipAddresses, ['127.0.0.1']);

    // `admin` administers the nodes below (revoke, rotate); `app` keeps the default, read.
    for (const [name, role] of [
      ['admin', 'admin'],
      ['app', 'read'],
    ] as const) {
      const client = await ok<{ identity: string; role: string }>([
        'certs',
        'client',
        '--name',
        name,
        ...(role === 'admin' ? ['--role', 'admin'] : []),
      ]);
      assert.equal(client.identity, `rdbnet://${CLUSTER}/client/${name}`);
      assert.equal(client.role, role);
    }

    const refused = await runCli(['certs', 'issue', '--node-id', 'n1', '--json'], env());
    assert.equal(refused.code, 1, describeResult(refused));
    assert.equal(json<{ error: { code: string } }>(refused).error.code, 'RDB_ALREADY_EXISTS');
    const missing = await runCli(['certs', 'client', '--json'], env());
    assert.equal(missing.code, 64, describeResult(missing));
    assert.match(json<{ error: { message: string } }>(missing).error.message, /--name/);
  });
});

describe('three nodes started from the issued certificates', () => {
  before(async () => {
    const started = await Promise.all(
      ['n1', 'n2', 'n3'].map((id) =>
        startNode(
          [
            '--id',
            id,
            '--certs-dir',
            certs,
            '--data-dir',
            join(home.dir, id),
            '--listen',
            '127.0.0.1:0',
          ],
          env(),
        ),
      ),
    );
    nodes.push(...started);
  });

  test('they run in the CA cluster, and certs list shows everything without problems', async () => {
    for (const node of nodes) assert.equal(node.info.clusterId, CLUSTER);
    const list = await ok<ListResult>(['certs', 'list']);
    const files = list.certificates.map((entry) => `${entry.kind}:${entry.file.split('/').pop()}`);
    assert.deepEqual(files, [
      'ca:ca.crt',
      'client:client.admin.crt',
      'client:client.app.crt',
      'node:node.n1.crt',
      'node:node.n2.crt',
      'node:node.n3.crt',
    ]);
    for (const entry of list.certificates) {
      assert.deepEqual(entry.problems, [], `${entry.file}: ${entry.problems.join('; ')}`);
      assert.match(entry.serial, /^[0-9A-F]+$/);
      assert.ok(entry.daysLeft > 364, `${entry.file} daysLeft ${entry.daysLeft}`);
      assert.ok(entry.subject.length > 0);
    }
    // The nodes present exactly the certificates the list shows.
    for (const node of nodes) {
      const admin = await connect(node.address, await pair('client', 'admin'), {
        id: 'admin',
        role: 'client',
      });
      const serial = admin.presentedCertificate?.serialNumber;
      admin.close();
      const file = list.certificates.find((entry) => entry.file.endsWith(`${node.info.id}.crt`));
      assert.equal(serial, file?.serial);
    }
    const human = await runCli(['certs', 'list'], env());
    assert.equal(human.code, 0, describeResult(human));
    assert.match(human.stdout, /node\.n1\.crt/);
  });

  test('inspect shows one certificate and the CA bundle in detail', async () => {
    const node = await ok<{
      file: string;
      certificates: { kind: string; identityUri: string; signedBy: string; isCa: boolean }[];
      key: { matches: boolean; mode: string };
    }>(['certs', 'inspect', join(certs, 'node.n2.crt')]);
    assert.equal(node.certificates.length, 1);
    assert.equal(node.certificates[0]?.kind, 'node');
    assert.equal(node.certificates[0]?.identityUri, `rdbnet://${CLUSTER}/node/n2`);
    assert.equal(node.key.matches, true);
    assert.equal(node.key.mode, '0600');
    const ca = await ok<{ certificates: { isCa: boolean; serial: string; signedBy: string }[] }>([
      'certs',
      'inspect',
      'ca.crt',
    ]);
    assert.equal(ca.certificates.length, 1);
    assert.equal(ca.certificates[0]?.isCa, true);
    assert.equal(node.certificates[0]?.signedBy, ca.certificates[0]?.serial);
    const missing = await runCli(['certs', 'inspect', 'nope.crt'], env());
    assert.equal(missing.code, 1, describeResult(missing));
    assert.match(missing.stderr, /^Error: .*nope\.crt/m);
  });

  test('verify proves the node holds its key; an impostor fails with exit 1', async () => {
    const [n1, n2] = nodes as [NodeProcess, NodeProcess];
    const proof = await ok<{
      verified: boolean;
      node: string;
      nodeId: string;
      serial: string;
      algorithm: string;
    }>(['certs', 'verify', '--node', n1.address]);
    assert.equal(proof.verified, true);
    assert.equal(proof.node, n1.address);
    assert.equal(proof.nodeId, 'n1');
    assert.equal(proof.algorithm, 'RSA-SHA256');
    const listed = await ok<ListResult>(['certs', 'inspect', 'node.n1.crt']);
    assert.equal(proof.serial, listed.certificates[0]?.serial);

    // A relay presenting n2's certificate (and key: a stolen pair) that forwards every
    // request to n1. TLS and the hello check pass; the proof, signed by n1's key, does not.
    const upstream = await connect(n1.address, await pair('client', 'admin'), {
      id: 'admin',
      role: 'client',
    });
    const relay = await listen(await pair('node', 'n2'), 'n2', async (request) => {
      const envelope = { [request.kind]: request.body } as Envelope;
      const reply = await upstream.connection.request(envelope);
      return { [reply.kind]: reply.body } as Envelope;
    });
    const impostor = await runCli(['certs', 'verify', '--node', relay], env());
    assert.equal(impostor.code, 1, describeResult(impostor));
    assert.match(impostor.stderr, /^Error: node at .* failed verification .*signature/m);
    const impostorJson = await runCli(['certs', 'verify', '--node', relay, '--json'], env());
    assert.equal(impostorJson.code, 1, describeResult(impostorJson));
    assert.equal(
      json<{ error: { code: string } }>(impostorJson).error.code,
      'RDB_IDENTITY_INVALID',
    );

    // A forged certificate for n1 from another CA never gets past TLS.
    const forgedCa = createCertificateAuthority({ cluster: CLUSTER });
    const forged = issueNodeCertificate({
      ca: forgedCa,
      cluster: CLUSTER,
      nodeId: 'n1',
      hosts: ['127.0.0.1'],
    });
    const forgery = await listen(
      { ca: forgedCa.certPem, cert: forged.certPem, key: forged.keyPem },
      'n1',
      async () => ({ healthRequest: {} }) as Envelope,
    );
    const refused = await runCli(['certs', 'verify', '--node', forgery, '--json'], env());
    assert.equal(refused.code, 1, describeResult(refused));
    assert.equal(json<{ error: { code: string } }>(refused).error.code, 'RDB_TLS_FAILED');
    assert.ok(n2.child.exitCode === null);
  });
});

/** An in-process TLS endpoint speaking the protocol as node `id`; returns its address. */
async function listen(
  tls: TlsMaterial,
  id: string,
  handle: (request: DecodedEnvelope) => Promise<Envelope>,
): Promise<string> {
  const server = new TransportServer({
    local: { id, clusterId: CLUSTER, role: 'node', softwareVersion: 'certs-test' },
    tls,
    options: connectionOptions(),
    connectionsMax: 16,
    handler: (request) => handle(request),
  });
  servers.push(server);
  const bound = await server.listen('127.0.0.1', 0);
  return `127.0.0.1:${bound.port}`;
}

describe('certificates a node refuses, each with a clear error and a counter', () => {
  test('an expired client certificate', async () => {
    const expired = issueClientCertificate({
      ca: await caPair(),
      cluster: CLUSTER,
      name: 'old',
      validityDays: 1,
      now: new Date(Date.now() - 3 * DAY_MS),
    });
    await expectRejected(
      nodes[0]!,
      'connections.rejected.RDB_TLS_FAILED',
      { ca: (await caPair()).certPem, cert: expired.certPem, key: expired.keyPem },
      { id: 'old', role: 'client' },
      { code: ['RDB_HANDSHAKE_REJECTED', 'RDB_CONNECTION_CLOSED', 'RDB_TLS_FAILED'] },
    );
    assert.match(nodes[0]!.stderr(), /client certificate rejected: CERT_HAS_EXPIRED/);
  });

  test('a client certificate from another CA (same cluster name)', async () => {
    const other = createCertificateAuthority({ cluster: CLUSTER });
    const stranger = issueClientCertificate({ ca: other, cluster: CLUSTER, name: 'admin' });
    await expectRejected(
      nodes[1]!,
      'connections.rejected.RDB_TLS_FAILED',
      { ca: (await caPair()).certPem, cert: stranger.certPem, key: stranger.keyPem },
      { id: 'admin', role: 'client' },
      { code: ['RDB_HANDSHAKE_REJECTED', 'RDB_CONNECTION_CLOSED', 'RDB_TLS_FAILED'] },
    );
    assert.match(nodes[1]!.stderr(), /client certificate rejected: UNABLE_TO_VERIFY/);
  });

  test('a revoked serial: after certs revoke the client is refused, others are fine', async () => {
    const [n1, n2, n3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
    const env_ = env({ RDBNET_NODE: n1.address });
    const before = await runCli(['health', '--client', 'app', '--json'], env_);
    assert.equal(before.code, 0, describeResult(before));
    const app = await ok<{ certificates: { serial: string }[] }>([
      'certs',
      'inspect',
      'client.app.crt',
    ]);
    const serial = app.certificates[0]!.serial;
    const rejectedBefore = (await counters(n1))['connections.rejected.RDB_CERT_REVOKED'] ?? 0;
    const revoked = await ok<{ revoked: string[]; nodes: { node: string; ok: boolean }[] }>([
      'certs',
      'revoke',
      '--serial',
      serial,
      '--nodes',
      [n1, n2, n3].map((node) => node.address).join(','),
    ]);
    assert.deepEqual(revoked.revoked, [serial]);
    assert.deepEqual(
      revoked.nodes.map((step) => [step.node, step.ok]),
      [n1, n2, n3].map((node) => [node.address, true]),
    );
    assert.match(await readFile(join(certs, 'revoked.txt'), 'utf8'), new RegExp(serial));

    const refused = await runCli(['node', 'status', '--client', 'app', '--json'], env_);
    assert.equal(refused.code, 1, describeResult(refused));
    const error = json<{ error: { code: string; message: string } }>(refused).error;
    assert.equal(error.code, 'RDB_CERT_REVOKED');
    assert.match(error.message, new RegExp(`${serial} is revoked`));
    await counterGrew(n1, 'connections.rejected.RDB_CERT_REVOKED', rejectedBefore);
    const human = await runCli(['health', '--client', 'app'], env_);
    assert.equal(human.code, 3, describeResult(human));
    assert.match(human.stderr, /^Error: .*revoked/m);

    const admin = await runCli(['health', '--json'], env_);
    assert.equal(admin.code, 0, describeResult(admin));
    // Revoked everywhere it was pushed, not only on the node asked first.
    await expectRejected(
      n3,
      'connections.rejected.RDB_CERT_REVOKED',
      await pair('client', 'app'),
      { id: 'app', role: 'client' },
      { code: 'RDB_CERT_REVOKED', message: /revoked/ },
    );
  });

  test('a client certificate posing as a node (hello role mismatch)', async () => {
    await expectRejected(
      nodes[1]!,
      'connections.rejected.RDB_IDENTITY_INVALID',
      await pair('client', 'admin'),
      { id: 'admin', role: 'node' },
      { code: 'RDB_IDENTITY_INVALID', message: /identifies client 'admin' but hello claims node/ },
    );
  });

  test('a node certificate claiming another node id', async () => {
    await expectRejected(
      nodes[2]!,
      'connections.rejected.RDB_IDENTITY_INVALID',
      await pair('node', 'n1'),
      { id: 'n2', role: 'node' },
      { code: 'RDB_IDENTITY_INVALID', message: /identifies node 'n1' but hello claims node 'n2'/ },
    );
  });
});

describe('problems found before anything connects', () => {
  /** A fresh directory sharing the CA of the main one. */
  async function dirWithCa(name: string): Promise<string> {
    const dir = join(home.dir, name);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await copyFile(join(certs, 'ca.crt'), join(dir, 'ca.crt'));
    await copyFile(join(certs, 'ca.key'), join(dir, 'ca.key'));
    await chmod(join(dir, 'ca.key'), 0o600);
    return dir;
  }

  function otherKey(): string {
    return generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
  }

  test('list reports a key that does not match and a key readable by others', async () => {
    const dir = await dirWithCa('bad-certs');
    await ok(['certs', 'issue', '--node-id', 'x', '--certs-dir', dir]);
    await ok(['certs', 'client', '--name', 'ops', '--certs-dir', dir]);
    await writeFile(join(dir, 'node.x.key'), otherKey(), { mode: 0o600 });
    await chmod(join(dir, 'client.ops.key'), 0o644);

    const list = await ok<ListResult>(['certs', 'list', '--certs-dir', dir]);
    const problems = Object.fromEntries(
      list.certificates.map((entry) => [entry.file.split('/').pop(), entry.problems.join('; ')]),
    );
    assert.match(problems['node.x.crt'] ?? '', /node\.x\.key does not match the certificate/);
    assert.match(problems['client.ops.crt'] ?? '', /client\.ops\.key has mode 0644/);
    assert.equal(problems['ca.crt'], '');

    const strict = await runCli(['certs', 'list', '--strict', '--certs-dir', dir], env());
    assert.equal(strict.code, 1, describeResult(strict));
    assert.match(strict.stdout, /does not match/);
  });

  test('a node whose key does not match its certificate refuses to start, naming both', async () => {
    const dir = await dirWithCa('mismatch');
    await ok(['certs', 'issue', '--node-id', 'm1', '--certs-dir', dir]);
    await writeFile(join(dir, 'node.m1.key'), otherKey(), { mode: 0o600 });
    const started = await runCli(
      [
        'node',
        'start',
        '--id',
        'm1',
        '--certs-dir',
        dir,
        '--data-dir',
        join(home.dir, 'm1'),
        '--listen',
        '127.0.0.1:0',
      ],
      env(),
    );
    assert.equal(started.code, 1, describeResult(started));
    const line = started.stderr.split('\n').find((text) => text.startsWith('Error:')) ?? '';
    assert.ok(line.includes(join(dir, 'node.m1.key')), line);
    assert.ok(line.includes(join(dir, 'node.m1.crt')), line);
  });

  test('health is degraded (exit 1) for a node certificate expiring in under 30 days', async () => {
    await ok(['certs', 'issue', '--node-id', 'short', '--days', '10']);
    const node = await startNode(
      [
        '--id',
        'short',
        '--certs-dir',
        certs,
        '--data-dir',
        join(home.dir, 'short'),
        '--listen',
        '127.0.0.1:0',
      ],
      env(),
    );
    const health = await runCli(['health', '--json', '--node', node.address], env());
    assert.equal(health.code, 1, describeResult(health));
    const report = json<{ status: string; nodes: { certDaysLeft: number; problems: string[] }[] }>(
      health,
    );
    assert.equal(report.status, 'degraded');
    const days = report.nodes[0]?.certDaysLeft ?? 0;
    assert.ok(days > 9.9 && days <= 10, `certDaysLeft ${days}`);
    assert.match(report.nodes[0]?.problems.join(';') ?? '', /certificate expires in/);
    const list = await ok<ListResult>(['certs', 'list']);
    const short = list.certificates.find((entry) => entry.file.endsWith('node.short.crt'));
    assert.ok(short !== undefined && short.daysLeft > 9.9 && short.daysLeft <= 10);
  });
});
