/**
 * The firewall from distinct source addresses: a real node in a hub network namespace with
 * low limits (5 new connections per second per source, a ban after 3 failed handshakes for
 * 4 s), and two leaf namespaces joined to it by veth pairs (169.254.1.2, 169.254.2.2). A flood
 * of connections from one leaf is limited (refused at accept past its token bucket, counted per
 * source and audited) while the other leaf is served; the flood's failed handshakes ban its
 * source automatically, and the ban expires; a manual ban refuses the source until
 * `firewall unban`.
 *
 * Needs root and iproute2 (CI installs iproute2 and runs as root: .ci/run).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import {
  createStar,
  destroyAllNamespaces,
  execIn,
  netnsUnavailable,
  removeStaleNamespaces,
  type StarLeaf,
  spawnIn,
} from '../helpers/netns.ts';
import { BIN, describeResult, tempHome } from '../helpers/processes.ts';
import { ok, starCli } from '../helpers/star-cli.ts';

const skip = await netnsUnavailable();
const PORT = 7461;
const BAN_MS = 8000;

let home: { dir: string; cleanup(): Promise<void> };
let hub: string;
let near: StarLeaf; // 169.254.1.2
let far: StarLeaf; // 169.254.2.2
let node: ChildProcess | undefined;

const cli = starCli({
  home: () => home.dir,
  star: () => ({ hub, near, far }),
  port: PORT,
});
const { env, local, fromNear, fromFar } = cli;

interface FirewallStats {
  refused: Record<string, number>;
  automaticBans: number;
  bans: { source: string; remainingMs: number; reason: string }[];
  sources: { source: string; open: number; refused: number; failures: number }[];
}

/**
 * Opens `count` TCP connections to the hub from `leaf` at once, holds them `holdMs`, then cuts
 * them. With `garbage`, each connection that gets in sends bytes that are not TLS: a failed
 * handshake; without, it says nothing and closes (not a failure).
 */
async function flood(
  leaf: StarLeaf,
  count: number,
  holdMs: number,
  garbage: boolean,
): Promise<void> {
  const script = `
    const net = require('node:net');
    const sockets = [];
    for (let i = 0; i < ${count}; i++) {
      const socket = net.connect(${PORT}, '${leaf.hubAddress}');
      socket.on('error', () => {});
      if (${garbage}) socket.on('connect', () => socket.write('GET / HTTP/1.0\\r\\n\\r\\n'));
      sockets.push(socket);
    }
    setTimeout(() => { for (const socket of sockets) socket.end(); process.exit(0); }, ${holdMs});
  `;
  await execIn(leaf.ns, process.execPath, ['-e', script], { timeoutMs: 20_000 });
}
interface AuditLine {
  decision: string;
  source: string;
  rule: string;
  stage: string;
  who: string;
  what: string;
}

async function auditLines(): Promise<AuditLine[]> {
  const result = await local(['audit', 'tail', '-n', '1024']);
  assert.equal(result.code, 0, describeResult(result));
  return result.stdout
    .trim()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as AuditLine);
}

before(async () => {
  if (skip !== undefined) return;
  await removeStaleNamespaces();
  home = await tempHome('rdbnet-firewall-netns-');
  const star = await createStar('fw', 2);
  hub = star.hub;
  [near, far] = star.leaves as [StarLeaf, StarLeaf];
  // Zero config in RDBNET_HOME: CA, node and admin client certificates on the first start.
  const child = spawnIn(
    hub,
    process.execPath,
    [
      BIN,
      'node',
      'start',
      '--json',
      '--id',
      'hub1',
      '--listen',
      `0.0.0.0:${PORT}`,
      '--advertise',
      `127.0.0.1:${PORT}`,
    ],
    {
      env: {
        ...env(),
        RDBNET_FIREWALL_CONNECTIONS_PER_SECOND: '5',
        RDBNET_FIREWALL_BAN_AFTER_FAILURES: '3',
        RDBNET_FIREWALL_BAN_MS: String(BAN_MS),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  node = child;
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  await new Promise<void>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`node did not start\n${stderr}`)), 30_000);
    child.stdout?.on('data', (chunk) => {
      stdout += chunk;
      try {
        JSON.parse(stdout);
        clearTimeout(timer);
        resolve();
      } catch {
        // not complete yet
      }
    });
    child.on('exit', (code) => reject(new Error(`node exited with ${code}\n${stderr}`)));
  });
});

after(async () => {
  if (skip !== undefined) return;
  node?.kill('SIGKILL');
  await destroyAllNamespaces();
  await home.cleanup();
});

describe('firewall from distinct source addresses (network namespaces)', { skip }, () => {
  test('a flood of connections from one address is limited while the other is served', async () => {
    await Promise.all([ok(fromNear(['node', 'status'])), ok(fromFar(['node', 'status']))]);
    const [, served] = await Promise.all([
      flood(far, 60, 500, false),
      fromNear(['node', 'status']),
    ]);
    assert.equal(served.code, 0, describeResult(served));
    const stats = await ok<FirewallStats>(local(['firewall', 'stats']));
    // 5 per second with a 2 s burst: about 10 of the 60 get in.
    assert.ok(stats.refused.connectionRate! >= 40, JSON.stringify(stats));
    const farStats = stats.sources.find((source) => source.source === far.address);
    const nearStats = stats.sources.find((source) => source.source === near.address);
    assert.ok(farStats!.refused >= 40, JSON.stringify(stats));
    assert.equal(nearStats?.refused ?? 0, 0, JSON.stringify(stats));
    assert.equal(stats.automaticBans, 0, 'connections closed cleanly are not failures');
    const lines = await auditLines();
    assert.ok(
      lines.some(
        (line) =>
          line.stage === 'accept' && line.source === far.address && line.rule === 'firewall',
      ),
    );
  });

  test('failed handshakes ban the address automatically, and the ban expires', async () => {
    // A full bucket again (5 per second, 10 at most).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await flood(far, 8, 300, true);
    const refused = await fromFar(['node', 'status']);
    assert.notEqual(refused.code, 0, describeResult(refused));
    await ok(fromNear(['node', 'status']));
    const stats = await ok<FirewallStats>(local(['firewall', 'stats']));
    assert.ok(stats.automaticBans >= 1, JSON.stringify(stats));
    assert.ok(stats.refused.banned! >= 1, JSON.stringify(stats));
    assert.ok((await auditLines()).some((line) => line.what === 'ban' && line.decision === 'deny'));
    // No unban: served again once the ban has run out (bounded wait).
    const deadline = performance.now() + BAN_MS + 30_000;
    for (;;) {
      const result = await fromFar(['node', 'status']);
      if (result.code === 0) break;
      assert.ok(
        performance.now() < deadline,
        `still refused after the ban: ${describeResult(result)}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  });

  test('a manual ban refuses the address until unban; bad input exits 64', async () => {
    const ban = await ok<FirewallStats>(
      local(['firewall', 'ban', '--source', far.address, '--for', '60s']),
    );
    assert.ok(ban.bans.some((entry) => entry.source === far.address && entry.reason === 'manual'));
    const refused = await fromFar(['node', 'status']);
    assert.notEqual(refused.code, 0, describeResult(refused));
    await ok(fromNear(['node', 'status']));
    const lifted = await ok<{ changed: boolean }>(
      local(['firewall', 'unban', '--source', far.address]),
    );
    assert.equal(lifted.changed, true);
    await ok(fromFar(['node', 'status']));
    const [badSource, badLength] = await Promise.all([
      local(['firewall', 'ban', '--source', '169.254.2.0/24']),
      local(['firewall', 'ban', '--source', far.address, '--for', 'soon']),
    ]);
    assert.equal(badSource.code, 64, describeResult(badSource));
    assert.equal(badLength.code, 64, describeResult(badLength));
    const rules = await ok<{ limits: Record<string, number> }>(local(['firewall', 'rules']));
    assert.equal(rules.limits.connectionsPerSecond, 5);
    assert.equal(rules.limits.banMs, BAN_MS);
  });
});
