/**
 * Live certificate rotation under traffic, on real node processes over real TLS: a node
 * certificate rotated with `certs rotate --node` and the cluster CA rotated across three nodes
 * with `certs rotate --ca` / `--ca --finish`, while clients send requests back to back on
 * pooled connections and open new ones all along. Not one request may fail.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { NodeClient } from '../../src/core/client/node-client.ts';
import { splitPemBundle } from '../../src/core/security/pki.ts';
import type { TlsMaterial } from '../../src/core/security/tls.ts';
import { parseHostPort } from '../../src/core/transport/address.ts';
import { connectionOptions } from '../../src/core/transport/options.ts';
import {
  describeResult,
  killAllNodes,
  type NodeProcess,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const CLUSTER = 'rotation-test';
const POOL_CONNECTIONS = 3;
const NEW_CONNECTION_EVERY_MS = 50;

let home: { dir: string; cleanup(): Promise<void> };
let certs: string;
const nodes = new Map<string, NodeProcess>();
const loads: Load[] = [];

before(async () => {
  home = await tempHome('rdbnet-rotation-');
  certs = join(home.dir, 'certs');
  await ok(['certs', 'init', '--cluster', CLUSTER]);
  await ok(['certs', 'client', '--name', 'admin', '--role', 'admin']);
  await Promise.all(
    ['n1', 'n2', 'n3', 'n4'].map((id) =>
      ok(['certs', 'issue', '--node-id', id, '--host', '127.0.0.1,localhost']),
    ),
  );
  const started = await Promise.all(['n1', 'n2', 'n3'].map((id) => start(id)));
  for (const node of started) nodes.set(node.info.id, node);
});

after(async () => {
  await Promise.all(loads.map((load) => load.stop().catch(() => {})));
  await killAllNodes();
  await home.cleanup();
});

function env(): NodeJS.ProcessEnv {
  return { RDBNET_HOME: home.dir, RDBNET_NODE: '', RDBNET_CERTS_DIR: '', DEBUG: '' };
}

async function ok<T>(args: string[]): Promise<T> {
  const result = await runCli([...args, '--json'], env(), 60_000);
  assert.equal(result.code, 0, describeResult(result));
  return JSON.parse(result.stdout) as T;
}

function start(id: string): Promise<NodeProcess> {
  return startNode(
    ['--id', id, '--certs-dir', certs, '--data-dir', join(home.dir, id), '--listen', '127.0.0.1:0'],
    env(),
  );
}

function node(id: string): NodeProcess {
  const found = nodes.get(id);
  assert.ok(found, `node ${id} not started`);
  return found;
}

/** What a client on this machine uses: the files as they are on disk right now. */
async function diskMaterial(): Promise<TlsMaterial> {
  return {
    ca: await readFile(join(certs, 'ca.crt'), 'utf8'),
    cert: await readFile(join(certs, 'client.admin.crt'), 'utf8'),
    key: await readFile(join(certs, 'client.admin.key'), 'utf8'),
  };
}

async function connect(address: string, tls: TlsMaterial): Promise<NodeClient> {
  return NodeClient.connect({
    address: parseHostPort(address),
    local: { id: 'admin', clusterId: CLUSTER, role: 'client', softwareVersion: 'rotation-test' },
    tls,
    options: connectionOptions({ handshakeTimeoutMs: 10_000, requestTimeoutMs: 10_000 }),
  });
}

interface Opened {
  startedAtMs: number;
  serial: string;
  issuer: X509Certificate;
}

/**
 * Traffic to one node: pooled connections each sending health requests back to back, and a
 * new connection every NEW_CONNECTION_EVERY_MS (one request, then closed), dialled with the
 * material on disk at that moment, the way a fresh `rdbnet` process would.
 */
class Load {
  requests = 0;
  readonly failures: string[] = [];
  readonly opened: Opened[] = [];
  pool: NodeClient[] = [];
  poolSerials: string[] = [];
  private stopped = false;
  private loops: Promise<void>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private dials = new Set<Promise<void>>();

  readonly address: string;
  private readonly material: () => Promise<TlsMaterial>;

  constructor(address: string, material: () => Promise<TlsMaterial>) {
    this.address = address;
    this.material = material;
  }

  async start(): Promise<void> {
    const tls = await this.material();
    this.pool = await Promise.all(
      Array.from({ length: POOL_CONNECTIONS }, () => connect(this.address, tls)),
    );
    this.poolSerials = this.pool.map((client) => client.presentedCertificate!.serialNumber);
    this.loops = this.pool.map((client) => this.loop(client));
    this.timer = setInterval(() => {
      const opening = this.openOne().finally(() => this.dials.delete(opening));
      this.dials.add(opening);
    }, NEW_CONNECTION_EVERY_MS);
  }

  private async loop(client: NodeClient): Promise<void> {
    while (!this.stopped) {
      try {
        await client.ask('healthRequest', {});
        this.requests++;
      } catch (error) {
        this.failures.push(`pooled: ${(error as Error).message}`);
        return;
      }
    }
  }

  private async openOne(): Promise<void> {
    const startedAtMs = Date.now();
    try {
      const client = await connect(this.address, await this.material());
      const certificate = client.presentedCertificate!;
      await client.ask('healthRequest', {});
      this.requests++;
      const bundle = splitPemBundle((await this.material()).ca).map(
        (pem) => new X509Certificate(pem),
      );
      const issuer = bundle.find(
        (ca) => certificate.checkIssued(ca) && certificate.verify(ca.publicKey),
      )!;
      this.opened.push({ startedAtMs, serial: certificate.serialNumber, issuer });
      client.close();
    } catch (error) {
      this.failures.push(`new connection: ${(error as Error).message}`);
    }
  }

  /** Stops traffic; the pooled connections must still be open and close cleanly. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    await Promise.all(this.loops);
    await Promise.all(this.dials);
    for (const client of this.pool) {
      if (!client.isOpen) this.failures.push(`pooled connection ${client.connection.state}`);
      client.close();
    }
  }

  openedAfter(ms: number): Opened[] {
    return this.opened.filter((entry) => entry.startedAtMs > ms);
  }
}

async function startLoad(address: string): Promise<Load> {
  const load = new Load(address, diskMaterial);
  loads.push(load);
  await load.start();
  return load;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The serial `openssl s_client` is shown by the node, or null when openssl is missing. */
async function opensslSerial(address: string): Promise<string | null> {
  if (spawnSync('openssl', ['version']).status !== 0) return null;
  const { host, port } = parseHostPort(address);
  const run = promisify(execFile);
  const { stdout } = await run(
    'sh',
    [
      '-c',
      `openssl s_client -connect ${host}:${port} -showcerts -CAfile "$1" -cert "$2" -key "$3" ` +
        '</dev/null 2>/dev/null | openssl x509 -noout -serial',
      'sh',
      join(certs, 'ca.crt'),
      join(certs, 'client.admin.crt'),
      join(certs, 'client.admin.key'),
    ],
    { timeout: 10_000 },
  );
  return stdout.trim().replace(/^serial=/, '');
}

describe('certs rotate --node under load', () => {
  test('no request fails, new connections get the new serial, old ones finish', async (t) => {
    const n1 = node('n1');
    const load = await startLoad(n1.address);
    await sleep(500);
    const before = load.requests;
    assert.ok(before > 0, 'no traffic before the rotation');
    const oldSerial = load.poolSerials[0]!;
    assert.equal(await opensslSerial(n1.address).then((s) => s ?? oldSerial), oldSerial);

    const rotated = await ok<{
      rotated: boolean;
      node: string;
      nodeId: string;
      serial: string;
      previousSerial: string;
      notAfter: string;
    }>(['certs', 'rotate', '--node', n1.address]);
    const rotatedAtMs = Date.now();
    assert.equal(rotated.rotated, true);
    assert.equal(rotated.node, n1.address);
    assert.equal(rotated.nodeId, 'n1');
    assert.equal(rotated.previousSerial, oldSerial);
    assert.notEqual(rotated.serial, oldSerial);
    assert.ok(Date.parse(rotated.notAfter) > Date.now() + 360 * 86_400_000);
    const during = load.requests - before;

    await sleep(500);
    await load.stop();
    assert.deepEqual(load.failures, [], 'failed requests during the rotation');
    assert.ok(during > 50, `only ${during} requests while the rotation ran`);
    const fresh = load.openedAfter(rotatedAtMs);
    assert.ok(fresh.length >= 3, `only ${fresh.length} new connections after the rotation`);
    for (const entry of fresh) assert.equal(entry.serial, rotated.serial);
    // The pooled connections opened before the rotation kept the old certificate throughout.
    assert.deepEqual(load.poolSerials, Array(POOL_CONNECTIONS).fill(oldSerial));

    const openssl = await opensslSerial(n1.address);
    if (openssl !== null) assert.equal(openssl, rotated.serial);
    const listed = await ok<{ certificates: { file: string; serial: string }[] }>([
      'certs',
      'list',
    ]);
    assert.equal(
      listed.certificates.find((entry) => entry.file.endsWith('node.n1.crt'))?.serial,
      rotated.serial,
    );
    const proof = await ok<{ verified: boolean; serial: string }>([
      'certs',
      'verify',
      '--node',
      n1.address,
    ]);
    assert.equal(proof.serial, rotated.serial);
    t.diagnostic(`requests while rotating: ${during}, total ${load.requests}, failures 0`);
  });
});

interface NodeStep {
  node: string;
  ok: boolean;
  nodeId?: string;
  bundle?: number;
  serial?: string;
  signedBy?: string | null;
  rotated?: { serial: string; previousSerial: string };
  skipped?: string;
}

interface CaRotation {
  phase: string;
  ok: boolean;
  resumed: boolean;
  ca: { serial: string };
  previousCa: { serial: string } | null;
  bundle: string[];
  nodes: NodeStep[];
  clients: { name: string; serial: string; previousSerial: string }[];
  skipped: { file: string; serial: string; reason: string }[];
  removed: string[];
}

describe('certs rotate --ca across three nodes with traffic to all of them', () => {
  test('phase 1, a refused finish, then finish: no request fails', async (t) => {
    const n4 = await start('n4');
    nodes.set('n4', n4);
    const three = ['n1', 'n2', 'n3'].map((id) => node(id).address);
    const all = [...three, n4.address];
    // A revoked client certificate must stay revoked: never re-signed, never waited for.
    await ok(['certs', 'client', '--name', 'gone']);
    const gone = await ok<{ certificates: { serial: string }[] }>([
      'certs',
      'inspect',
      'client.gone.crt',
    ]);
    const goneSerial = gone.certificates[0]!.serial;
    await ok(['certs', 'revoke', '--serial', goneSerial, '--nodes', all.join(',')]);
    const oldMaterial = await diskMaterial();
    const oldCaSerial = new X509Certificate(oldMaterial.ca).serialNumber;
    const traffic = await Promise.all(three.map((address) => startLoad(address)));
    await sleep(300);

    const begun = await ok<CaRotation>(['certs', 'rotate', '--ca', '--nodes', three.join(',')]);
    assert.equal(begun.phase, 'start');
    assert.equal(begun.ok, true);
    assert.equal(begun.resumed, false);
    assert.equal(begun.previousCa?.serial, oldCaSerial);
    assert.deepEqual(begun.bundle, [begun.ca.serial, oldCaSerial]);
    assert.deepEqual(
      begun.nodes.map((step) => [step.node, step.ok, step.bundle, step.signedBy]),
      three.map((address) => [address, true, 2, begun.ca.serial]),
    );
    for (const step of begun.nodes) assert.ok(step.rotated?.serial, JSON.stringify(step));
    assert.deepEqual(
      begun.clients.map((client) => client.name),
      ['admin'],
    );
    assert.deepEqual(begun.skipped, [
      { file: join(certs, 'client.gone.crt'), serial: goneSerial, reason: 'revoked' },
    ]);
    assert.ok(existsSync(join(certs, 'ca.previous.key')));
    const phase1DoneMs = Date.now();
    await sleep(300);

    // n4 was not part of phase 1: its certificate (and node.n4.crt here) is still old-CA.
    const refused = await runCli(
      ['certs', 'rotate', '--ca', '--finish', '--nodes', all.join(','), '--json'],
      env(),
      60_000,
    );
    assert.equal(refused.code, 1, describeResult(refused));
    const error = (JSON.parse(refused.stdout) as { error: { code: string; message: string } })
      .error;
    assert.equal(error.code, 'RDB_CA_STILL_IN_USE');
    assert.match(error.message, new RegExp(`node 'n4' at ${n4.address}`));
    assert.match(error.message, /node\.n4\.crt/);
    assert.doesNotMatch(error.message, /'n1'|'n2'|'n3'/);
    assert.equal(splitPemBundle(await readFile(join(certs, 'ca.crt'), 'utf8')).length, 2);

    // Resuming phase 1 for n4 moves it; the other three are not touched again.
    const resumed = await ok<CaRotation>(['certs', 'rotate', '--ca', '--nodes', all.join(',')]);
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.ca.serial, begun.ca.serial);
    const skipped = resumed.nodes.filter((step) => step.skipped !== undefined);
    assert.deepEqual(
      skipped.map((step) => step.node),
      three,
    );
    assert.ok(resumed.nodes.find((step) => step.node === n4.address)?.rotated);

    const finished = await ok<CaRotation>([
      'certs',
      'rotate',
      '--ca',
      '--finish',
      '--nodes',
      all.join(','),
    ]);
    assert.equal(finished.ok, true);
    assert.deepEqual(finished.bundle, [begun.ca.serial]);
    assert.deepEqual(
      finished.nodes.map((step) => [step.node, step.ok, step.bundle, step.signedBy]),
      all.map((address) => [address, true, 1, begun.ca.serial]),
    );
    assert.deepEqual(finished.removed, [join(certs, 'ca.previous.key')]);
    assert.ok(!existsSync(join(certs, 'ca.previous.key')));
    assert.equal(splitPemBundle(await readFile(join(certs, 'ca.crt'), 'utf8')).length, 1);
    const finishedAtMs = Date.now();
    await sleep(400);

    await Promise.all(traffic.map((load) => load.stop()));
    const requests = traffic.reduce((sum, load) => sum + load.requests, 0);
    for (const load of traffic) {
      assert.deepEqual(load.failures, [], `failed requests to ${load.address}`);
      const late = load.openedAfter(phase1DoneMs);
      assert.ok(late.length > 0, `no new connections to ${load.address} after phase 1`);
      for (const entry of late) assert.equal(entry.issuer.serialNumber, begun.ca.serial);
      assert.ok(load.openedAfter(finishedAtMs).length > 0);
    }
    t.diagnostic(`requests during the CA rotation: ${requests}, failures: 0`);

    // The old CA is gone: its client certificate is refused on new connections.
    const stale = { ...oldMaterial, ca: await readFile(join(certs, 'ca.crt'), 'utf8') };
    await assert.rejects(
      connect(three[0]!, stale).then((client) => client.ask('healthRequest', {})),
    );
    const list = await ok<{ certificates: { file: string; problems: string[] }[] }>([
      'certs',
      'list',
    ]);
    for (const entry of list.certificates) {
      if (entry.file.endsWith('client.gone.crt')) {
        assert.match(entry.problems.join(';'), /revoked/);
      } else {
        assert.deepEqual(entry.problems, [], entry.file);
      }
    }
  });
});
