/**
 * Issue 12's "done when", against a real dnsmasq: three SRV records, three nodes started with
 * the same --retry-join string and no addresses (--bootstrap-expect 3) form one healthy
 * cluster, and `rdbnet discover` shows the same three nodes. Also what `discover` says about
 * bad specs (64), a name with no records (1) and a DNS server that does not answer (69).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import {
  dnsmasqBinary,
  freeTcpPorts,
  freeUdpPort,
  startDnsmasq,
  stopAllDnsmasq,
} from '../helpers/dnsmasq.ts';
import {
  describeResult,
  killAllNodes,
  parseJson,
  poller,
  runCli,
  runCliWithInput,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const homes: { cleanup(): Promise<void> }[] = [];
const skip = dnsmasqBinary() === null ? 'dnsmasq is not installed (.ci/run installs it)' : false;
const until = poller(200);
const SRV_NAME = '_rdbnet._tcp.db.internal';

after(async () => {
  await killAllNodes();
  await stopAllDnsmasq();
  for (const home of homes) await home.cleanup();
});

interface DiscoverJson {
  provider: string;
  nodes: { address: string; id?: string; source: string; meta: Record<string, string> }[];
}

interface StatusJson {
  clusterId: string;
  state: string;
  leader: string;
  members: { id: string; address: string; voter: boolean }[];
}

test('three SRV records, three nodes with the same --retry-join: one healthy cluster', {
  skip,
}, async () => {
  const home = await tempHome('rdbnet-disc-dns-');
  homes.push(home);
  const env = { RDBNET_HOME: home.dir };
  const ports = await freeTcpPorts(4);
  const dns = await startDnsmasq({
    srv: ports.slice(0, 3).map((port, index) => ({
      name: SRV_NAME,
      target: `n${index + 1}.db.internal`,
      port,
    })),
    hosts: [
      ['n1.db.internal', '127.0.0.1'],
      ['n2.db.internal', '127.0.0.1'],
      ['n3.db.internal', '127.0.0.1'],
    ],
  });
  const spec = `provider=dns name=${SRV_NAME} server=${dns.server}`;
  const nodes = await Promise.all(
    [1, 2, 3].map((i) =>
      startNode(
        [
          '--id',
          `n${i}`,
          '--listen',
          `127.0.0.1:${ports[i - 1]}`,
          '--data-dir',
          `${home.dir}/n${i}`,
          '--retry-join',
          spec,
          '--bootstrap-expect',
          '3',
          '--preset',
          'local',
        ],
        env,
      ),
    ),
  );

  // One cluster: every node reports the same cluster id and three voters.
  const statuses = await until(
    'three nodes in one cluster',
    async () => {
      const all: StatusJson[] = [];
      for (const node of nodes) {
        const result = await runCli(['cluster', 'status', '--node', node.address, '--json'], env);
        if (result.code !== 0) return undefined;
        const status = parseJson<StatusJson>(result);
        if (status.state !== 'member' || status.members.filter((m) => m.voter).length !== 3) {
          return undefined;
        }
        all.push(status);
      }
      return all;
    },
    30_000,
  );
  assert.equal(new Set(statuses.map((status) => status.clusterId)).size, 1, 'one cluster id');
  await until(
    'the cluster is healthy',
    async () => {
      const health = await runCli(['health', '--node', nodes[0]!.address, '--json'], env);
      return health.code === 0 ? true : undefined;
    },
    20_000,
  );
  for (const node of nodes) {
    assert.match(node.stderr(), /retry-join: seeds found/, 'each attempt is logged');
  }

  // `rdbnet discover` shows the same three nodes.
  const found = await runCli(['discover', spec, '--json'], env);
  assert.equal(found.code, 0, describeResult(found));
  const discovered = parseJson<DiscoverJson>(found);
  assert.equal(discovered.provider, 'dns');
  assert.deepEqual(
    discovered.nodes.map((node) => node.address).sort(),
    statuses[0]!.members.map((member) => member.address).sort(),
  );
  for (const node of discovered.nodes) assert.equal(node.source, `dns:${SRV_NAME}`);

  // `discover --format addresses | cluster join --seeds -` brings a fourth node in.
  const fourth = await startNode(
    [
      '--id',
      'n4',
      '--listen',
      `127.0.0.1:${ports[3]}`,
      '--data-dir',
      `${home.dir}/n4`,
      '--join',
      '',
    ],
    env,
  );
  const addresses = await runCli(['discover', spec, '--format', 'addresses'], env);
  assert.equal(addresses.code, 0, describeResult(addresses));
  assert.equal(addresses.stdout.trim().split('\n').length, 3, addresses.stdout);
  const joined = await runCliWithInput(
    ['cluster', 'join', '--seeds', '-', '--node', fourth.address, '--json'],
    addresses.stdout,
    env,
    40_000,
  );
  assert.equal(joined.code, 0, describeResult(joined));
  assert.equal(parseJson<{ clusterId: string }>(joined).clusterId, statuses[0]!.clusterId);
  await dns.stop();
});

test('SRV priority orders the answer; A records take port=', { skip }, async () => {
  const dns = await startDnsmasq({
    srv: [
      { name: SRV_NAME, target: 'late.db.internal', port: 7403, priority: 20, weight: 1 },
      { name: SRV_NAME, target: 'a.db.internal', port: 7401, priority: 10, weight: 5 },
      { name: SRV_NAME, target: 'b.db.internal', port: 7402, priority: 10, weight: 5 },
    ],
    hosts: [
      ['late.db.internal', '127.0.0.13'],
      ['a.db.internal', '127.0.0.11'],
      ['b.db.internal', '127.0.0.12'],
      ['v6.db.internal', '::1'],
    ],
  });
  const found = await runCli([
    'discover',
    `provider=dns name=${SRV_NAME} server=${dns.server}`,
    '--json',
  ]);
  assert.equal(found.code, 0, describeResult(found));
  const nodes = parseJson<DiscoverJson>(found).nodes;
  assert.equal(nodes.length, 3);
  assert.deepEqual(
    nodes
      .slice(0, 2)
      .map((node) => node.address)
      .sort(),
    ['127.0.0.11:7401', '127.0.0.12:7402'],
  );
  assert.equal(nodes[2]!.address, '127.0.0.13:7403', 'the higher priority value comes last');
  assert.equal(nodes[2]!.meta['priority'], '20');

  const a = await runCli([
    'discover',
    `provider=dns name=a.db.internal type=a port=7000 server=${dns.server}`,
    '--format',
    'addresses',
  ]);
  assert.equal(a.code, 0, describeResult(a));
  assert.equal(a.stdout.trim(), '127.0.0.11:7000');
  const aaaa = await runCli([
    'discover',
    `provider=dns name=v6.db.internal type=aaaa port=7000 server=${dns.server}`,
    '--format',
    'addresses',
  ]);
  assert.equal(aaaa.code, 0, describeResult(aaaa));
  assert.equal(aaaa.stdout.trim(), '[::1]:7000');
  await dns.stop();
});

test('bad specs exit 64 before any lookup; no records exit 1; a silent server exits 69', {
  skip,
}, async () => {
  const dns = await startDnsmasq({ srv: [], hosts: [['x.db.internal', '127.0.0.1']] });
  const cases: [string[], number, string, RegExp][] = [
    [['provider=nosuch name=x'], 64, 'RDB_DISCOVERY_SYNTAX', /unknown discovery provider "nosuch"/],
    [['provider=dns nmae=x'], 64, 'RDB_DISCOVERY_SYNTAX', /provider=dns: unknown key "nmae"/],
    [['provider=dns name="x'], 64, 'RDB_DISCOVERY_SYNTAX', /not closed/],
    [
      ['provider=dns name=x type=mx'],
      64,
      'RDB_DISCOVERY_SYNTAX',
      /provider=dns: type must be one of/,
    ],
    [['provider=dns name=x timeout=forever'], 64, 'RDB_DISCOVERY_SYNTAX', /provider=dns: timeout/],
    [
      ['provider=dns name=x server=db.internal'],
      64,
      'RDB_DISCOVERY_SYNTAX',
      /provider=dns: server/,
    ],
    [['provider=static'], 64, 'RDB_DISCOVERY_SYNTAX', /provider=static: addrs or file/],
    [['name=x provider=dns'], 64, 'RDB_DISCOVERY_SYNTAX', /must start with provider=/],
    [
      [`provider=dns name=_none._tcp.db.internal server=${dns.server}`],
      1,
      'RDB_DISCOVERY_FAILED',
      /no SRV records for _none\._tcp\.db\.internal at 127\.0\.0\.1:\d+/,
    ],
  ];
  for (const [args, code, errorCode, message] of cases) {
    const result = await runCli(['discover', ...args, '--json']);
    assert.equal(result.code, code, `${args.join(' ')}: ${describeResult(result)}`);
    const error = parseJson<{ error: { code: string; message: string } }>(result).error;
    assert.equal(error.code, errorCode, args.join(' '));
    assert.match(error.message, message);
    assert.ok(!error.message.includes('\n'), 'one line');
  }
  // Nothing listens on this port: refused or timed out, both "unreachable".
  const silent = await freeUdpPort();
  const unreachable = await runCli([
    'discover',
    `provider=dns name=${SRV_NAME} server=127.0.0.1:${silent} timeout=500ms`,
  ]);
  assert.equal(unreachable.code, 69, describeResult(unreachable));
  assert.match(unreachable.stderr, /provider=dns: 127\.0\.0\.1:\d+ did not answer/);
  await dns.stop();
});
