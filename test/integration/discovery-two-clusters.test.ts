/**
 * A retry-join whose candidates belong to two different clusters must not pick one quietly:
 * the node logs both cluster ids and joins none (RDB_DISCOVERY_AMBIGUOUS) until it is
 * restarted with --cluster-id naming one, which it then joins. Real processes; the
 * candidates come from the static provider.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, test } from 'node:test';
import {
  describeResult,
  killAllNodes,
  parseJson,
  poller,
  runCli,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const homes: { cleanup(): Promise<void> }[] = [];
const until = poller(200);

after(async () => {
  await killAllNodes();
  for (const home of homes) await home.cleanup();
});

interface StatusJson {
  clusterId: string;
  state: string;
  members: { id: string }[];
}

test('two clusters among the candidates: join none until --cluster-id says which', async () => {
  const home = await tempHome('rdbnet-disc-two-');
  homes.push(home);
  const env = { RDBNET_HOME: home.dir };
  const start = (id: string, extra: string[]) =>
    startNode(
      [
        '--id',
        id,
        '--listen',
        '127.0.0.1:0',
        '--data-dir',
        `${home.dir}/${id}`,
        '--preset',
        'local',
        ...extra,
      ],
      env,
    );
  // Two single-node clusters: each founds its own.
  const a = await start('a1', []);
  const b = await start('b1', []);
  const clusterOf = async (address: string) => {
    const result = await runCli(['cluster', 'status', '--node', address, '--json'], env);
    assert.equal(result.code, 0, describeResult(result));
    return parseJson<StatusJson>(result);
  };
  const clusterA = await until('a1 leads its cluster', async () => {
    const status = await clusterOf(a.address);
    return status.state === 'member' ? status.clusterId : undefined;
  });
  const clusterB = await until('b1 leads its cluster', async () => {
    const status = await clusterOf(b.address);
    return status.state === 'member' ? status.clusterId : undefined;
  });
  assert.notEqual(clusterA, clusterB);

  const spec = `provider=static addrs=${a.address},${b.address}`;
  const c = await start('c1', ['--retry-join', spec]);
  await until(
    'c1 logs the two cluster ids',
    async () => (/RDB_DISCOVERY_AMBIGUOUS/.test(c.stderr()) ? true : undefined),
    20_000,
  );
  const refusal = c
    .stderr()
    .split('\n')
    .find((line) => line.includes('RDB_DISCOVERY_AMBIGUOUS'))!;
  assert.ok(refusal.includes(clusterA) && refusal.includes(clusterB), refusal);
  // It stays out of both (several discovery rounds later).
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const pending = await clusterOf(c.address);
  assert.equal(pending.state, 'pending');
  for (const other of [a, b]) {
    const status = await clusterOf(other.address);
    assert.deepEqual(
      status.members.map((member) => member.id),
      [other === a ? 'a1' : 'b1'],
      'neither cluster took c1',
    );
  }
  const join = await runCli(
    ['cluster', 'join', '--seeds', a.address, '--node', c.address, '--json'],
    env,
    30_000,
  );
  assert.equal(join.code, 1, describeResult(join));
  assert.equal(parseJson<{ error: { code: string } }>(join).error.code, 'RDB_DISCOVERY_AMBIGUOUS');
  const stopped = await c.stop();
  assert.equal(stopped.code, 0, c.stderr());

  // Told which: it joins that cluster only.
  const again = await start('c1', ['--retry-join', spec, '--cluster-id', clusterB]);
  // Generous: a loaded machine slows the handshakes and the join; the log says why on failure.
  const joined = await until(
    'c1 joins the cluster --cluster-id names',
    async () => {
      const status = await clusterOf(again.address);
      return status.state === 'member' ? status : undefined;
    },
    60_000,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\nc1's log:\n${again.stderr().slice(-3000)}`);
  });
  assert.equal(joined.clusterId, clusterB);
  const bStatus = await clusterOf(b.address);
  assert.deepEqual(bStatus.members.map((member) => member.id).sort(), ['b1', 'c1']);
  assert.deepEqual(
    (await clusterOf(a.address)).members.map((member) => member.id),
    ['a1'],
  );
});

test('node start refuses bad discovery input with exit 64, before it writes anything', async () => {
  const home = await tempHome('rdbnet-disc-bad-');
  homes.push(home);
  const env = { RDBNET_HOME: home.dir };
  const cases: [string[], RegExp][] = [
    [
      ['--retry-join', 'provider=dns nmae=x'],
      /invalid retryJoin from flag --retry-join: provider=dns: unknown key "nmae"/,
    ],
    [
      ['--retry-join', 'provider=dns name=x timeout=soon'],
      /provider=dns: timeout must be a duration/,
    ],
    [
      ['--register', 'provider=static addrs=127.0.0.1:7001'],
      /provider=static cannot register a node/,
    ],
    [
      ['--register', '127.0.0.1:7001'],
      /invalid register from flag --register: "127\.0\.0\.1:7001" is not a discovery spec/,
    ],
    [['--cluster-id', 'two words'], /invalid clusterId from flag --cluster-id/],
  ];
  for (const [args, message] of cases) {
    const dataDir = `${home.dir}/never`;
    const result = await runCli(
      ['node', 'start', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...args],
      env,
    );
    assert.equal(result.code, 64, `${args.join(' ')}: ${describeResult(result)}`);
    assert.match(result.stderr, message);
    assert.equal(existsSync(dataDir), false, 'nothing written');
  }
});
