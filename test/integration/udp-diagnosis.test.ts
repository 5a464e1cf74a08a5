/**
 * The diagnosis operators asked memberlist for: when gossip (UDP) calls a member dead but
 * the member still answers over TCP, `rdbnet health` says so plainly. The "ghost" member
 * here is real: a gossip driver on real UDP and an rdbnet server on real TCP in this
 * process, with its own node certificate. Its gossip is cut (the UDP socket closed, as if
 * a firewall dropped it) while its TCP side keeps answering.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { NodeClient } from '../../src/core/client/node-client.ts';
import { GossipDriver } from '../../src/core/membership/gossip/driver.ts';
import { SWIM_LAN } from '../../src/core/membership/swim/index.ts';
import { createLogger } from '../../src/core/runtime/log.ts';
import { loadKeyring } from '../../src/core/security/keyring.ts';
import { issueNodeCertificate } from '../../src/core/security/pki.ts';
import { parseHostPort } from '../../src/core/transport/address.ts';
import { connectionOptions } from '../../src/core/transport/options.ts';
import { TransportServer } from '../../src/core/transport/server.ts';
import { killAllNodes, runCli, startNode, tempHome } from '../helpers/processes.ts';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await killAllNodes();
});

interface HealthJson {
  status: string;
  nodes: { id: string; state: string; problems: string[] }[];
}

async function ghostHealth(address: string, env: NodeJS.ProcessEnv, want: string, waitMs: number) {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const result = await runCli(['health', '--json', '--node', address], env);
    const health = JSON.parse(result.stdout) as HealthJson;
    const ghost = health.nodes.find((node) => node.id === 'ghost');
    if (ghost?.state === want || Date.now() > deadline) return { code: result.code, ghost };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

test('health says plainly when a member fails over UDP but answers over TCP', async () => {
  const home = await tempHome('rdbnet-udp-diag-');
  cleanups.push(() => home.cleanup());
  const env = { RDBNET_HOME: home.dir };
  const node = await startNode(['--id', 'n1', '--listen', '127.0.0.1:0'], env);
  const certsDir = join(home.dir, 'certs');
  const ca = {
    certPem: await readFile(join(certsDir, 'ca.crt'), 'utf8'),
    keyPem: await readFile(join(certsDir, 'ca.key'), 'utf8'),
  };
  const cluster = node.info.clusterId;
  const ghostCert = issueNodeCertificate({ ca, cluster, nodeId: 'ghost', hosts: ['127.0.0.1'] });
  const tls = { ca: ca.certPem, cert: ghostCert.certPem, key: ghostCert.keyPem };
  const local = { id: 'ghost', clusterId: cluster, role: 'node' as const, softwareVersion: 'test' };

  let driver: GossipDriver | null = null;
  const server = new TransportServer({
    local,
    tls,
    options: connectionOptions(),
    connectionsMax: 16,
    handler: (request, connection) => {
      if (request.kind === 'gossipStreamRequest') {
        const payload = (request.body as { payload: Uint8Array }).payload;
        const reply = driver?.onStream(connection.remoteAddress, payload) ?? new Uint8Array(0);
        return { gossipStreamReply: { payload: reply } };
      }
      if (request.kind === 'statusRequest') {
        return { statusReply: { id: 'ghost', state: 'running' } as never };
      }
      throw new Error(`ghost does not answer ${request.kind}`);
    },
  });
  const { port } = await server.listen('127.0.0.1', 0);
  cleanups.push(() => server.close(100));

  const links = new Map<string, NodeClient>();
  driver = await GossipDriver.start({
    id: 'ghost',
    host: '127.0.0.1',
    port,
    keyring: await loadKeyring(join(certsDir, 'gossip.keyring')),
    clusterId: cluster,
    swim: SWIM_LAN,
    logger: createLogger({ level: 'error' }),
    stream: {
      async send(toAddress, bytes) {
        let link = links.get(toAddress);
        if (link === undefined || !link.isOpen) {
          link = await NodeClient.connect({
            address: parseHostPort(toAddress),
            local,
            tls,
            options: connectionOptions(),
          });
          links.set(toAddress, link);
        }
        const reply = await link.ask('gossipStreamRequest', { payload: bytes });
        return reply.payload.length === 0 ? null : reply.payload;
      },
    },
  });
  cleanups.push(() => {
    for (const link of links.values()) link.close();
  });
  await driver.join([node.address]);

  const alive = await ghostHealth(node.address, env, 'alive', 5000);
  assert.equal(alive.ghost?.state, 'alive', 'the ghost joined gossip');

  // Cut its gossip: the UDP socket goes away, its TCP server stays.
  await driver.close();
  const dead = await ghostHealth(node.address, env, 'dead', 8000);
  assert.equal(dead.ghost?.state, 'dead');
  assert.equal(dead.code, 1, 'degraded: a member is dead');
  assert.ok(
    dead.ghost.problems.some(
      (problem) => problem.includes('answers over TCP') && problem.includes(`UDP port ${port}`),
    ),
    `problems: ${JSON.stringify(dead.ghost.problems)}`,
  );

  // Once TCP is gone too, the member is simply dead: no UDP-only diagnosis.
  await server.close(100);
  const gone = await ghostHealth(node.address, env, 'dead', 1000);
  assert.ok(
    !gone.ghost?.problems.some((problem) => problem.includes('answers over TCP')),
    `problems: ${JSON.stringify(gone.ghost?.problems)}`,
  );
});
