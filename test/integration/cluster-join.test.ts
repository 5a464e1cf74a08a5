/**
 * `rdbnet cluster join --seeds`: a running node that waits for a cluster joins one through
 * seeds given at run time; a node already in a cluster is refused.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { killAllNodes, runCli, startNode, tempHome } from '../helpers/processes.ts';

const homes: { cleanup(): Promise<void> }[] = [];

after(async () => {
  await killAllNodes();
  for (const home of homes) await home.cleanup();
});

test('a waiting node joins through seeds given at run time; a member is refused', async () => {
  const home = await tempHome('rdbnet-join-');
  homes.push(home);
  const env = { RDBNET_HOME: home.dir };
  // No --join: a single-node cluster of its own. --join '': waits to be found.
  const n1 = await startNode(
    ['--id', 'n1', '--listen', '127.0.0.1:0', '--data-dir', `${home.dir}/n1`],
    env,
  );
  const n2 = await startNode(
    ['--id', 'n2', '--listen', '127.0.0.1:0', '--data-dir', `${home.dir}/n2`, '--join', ''],
    env,
  );

  const joined = await runCli(
    ['cluster', 'join', '--seeds', n1.address, '--node', n2.address, '--wait', '20000', '--json'],
    env,
    30_000,
  );
  assert.equal(joined.code, 0, `${joined.stdout}\n${joined.stderr}`);
  const result = JSON.parse(joined.stdout) as { clusterId: string; members: { id: string }[] };
  assert.ok(result.clusterId.length > 0);
  assert.deepEqual(result.members.map((member) => member.id).sort(), ['n1', 'n2']);

  // Both nodes now report the same cluster.
  const status = await runCli(['cluster', 'status', '--node', n1.address, '--json'], env);
  assert.equal(status.code, 0, status.stderr);
  assert.equal((JSON.parse(status.stdout) as { clusterId: string }).clusterId, result.clusterId);

  const again = await runCli(
    ['cluster', 'join', '--seeds', n2.address, '--node', n1.address, '--json'],
    env,
  );
  assert.equal(again.code, 1, again.stdout);
  assert.equal(
    (JSON.parse(again.stdout) as { error: { code: string } }).error.code,
    'RDB_CLUSTER_EXISTS',
  );

  const bad = await runCli(['cluster', 'join', '--seeds', 'nonsense', '--node', n1.address], env);
  assert.equal(bad.code, 64, bad.stderr);
});
