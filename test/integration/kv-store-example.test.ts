/**
 * examples/kv-store.ts, run as three real processes (each a node started through the
 * library API, with mutual TLS), driven by the real CLI: a write goes to W = 2 of the N = 3
 * replicas, and after kill -9 of one replica reads (R = 2) still answer the written value —
 * at once, while gossip still counts the dead replica, and after gossip has declared it dead.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  type CliResult,
  describeResult,
  poller,
  REPO_ROOT,
  runCli,
  tempHome,
} from '../helpers/processes.ts';

const EXAMPLE = join(REPO_ROOT, 'examples', 'kv-store.ts');
const until = poller(200);
const home = await tempHome('rdbnet-kv-');
const env = { RDBNET_HOME: home.dir };
const children: ChildProcess[] = [];

interface Replica {
  id: string;
  address: string;
  child: ChildProcess;
}

/** Starts the example and waits for the line it prints once its node runs. */
function startReplica(id: string, join_?: string): Promise<Replica> {
  const args = [EXAMPLE, '--id', id, '--listen', '127.0.0.1:0', '--data-dir', join(home.dir, id)];
  if (join_ !== undefined) args.push('--join', join_);
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env, RDBNET_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`${id} did not start\n${stderr}`)), 60_000);
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
      const line = stdout.split('\n')[0]!;
      if (!stdout.includes('\n')) return;
      clearTimeout(timer);
      const info = JSON.parse(line) as { id: string; address: string };
      resolve({ id: info.id, address: info.address, child });
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${id} exited with ${code}\n${stderr}`));
    });
  });
}

function ask(replica: Replica, topic: string, data: string): Promise<CliResult> {
  return runCli(
    ['request', '--node', replica.address, '--to', replica.id, '--topic', topic, '--data', data],
    env,
    30_000,
  );
}

after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  await home.cleanup();
});

test('the replicated store answers reads with the written value after kill -9 of a replica', async () => {
  const n1 = await startReplica('n1');
  const n2 = await startReplica('n2', n1.address);
  const n3 = await startReplica('n3', n1.address);
  await until(
    'three alive members',
    async () => {
      const result = await runCli(['cluster', 'members', '--node', n3.address, '--json'], env);
      if (result.code !== 0) return undefined;
      const { members } = JSON.parse(result.stdout) as { members: { state: string }[] };
      return members.filter((m) => m.state === 'alive').length === 3 ? true : undefined;
    },
    60_000,
  );

  const put = await ask(n1, 'kv.put', 'user:42=alice');
  assert.equal(put.code, 0, describeResult(put));
  assert.match(put.stdout, /^ok \((n\d,n\d(,n\d)?)\)/);
  const read = await ask(n3, 'kv.get', 'user:42');
  assert.equal(read.stdout, 'alice\n', describeResult(read));
  const overwritten = await ask(n2, 'kv.put', 'user:42=bob');
  assert.equal(overwritten.code, 0, describeResult(overwritten));

  n2.child.kill('SIGKILL');
  // At once: gossip still lists n2, the read gets R = 2 answers from n1 and n3.
  const right = await ask(n3, 'kv.get', 'user:42');
  assert.equal(right.stdout, 'bob\n', describeResult(right));
  // And once gossip has declared n2 dead: two replicas left, still R = 2 of them.
  await until(
    'n2 no longer alive',
    async () => {
      const result = await runCli(['cluster', 'members', '--node', n1.address, '--json'], env);
      const { members } = JSON.parse(result.stdout) as { members: { id: string; state: string }[] };
      return members.find((m) => m.id === 'n2')?.state === 'alive' ? undefined : true;
    },
    30_000,
  );
  const later = await ask(n1, 'kv.get', 'user:42');
  assert.equal(later.stdout, 'bob\n', describeResult(later));
  // Writes go on with two replicas (W = 2).
  const again = await ask(n3, 'kv.put', 'user:7=carol');
  assert.equal(again.code, 0, describeResult(again));
  assert.equal((await ask(n1, 'kv.get', 'user:7')).stdout, 'carol\n');
});
