/**
 * The data plane from a shell (issue 13's "done when"): three real `rdbnet node start`
 * processes with mutual TLS on loopback; `rdbnet request --to n2 --topic echo --data hi`,
 * `rdbnet ping --all` and `rdbnet broadcast --topic echo --data hi` — every member answers.
 * Then bad input: an unknown topic or target, an oversize payload, a passed deadline, a
 * stopped receiver and a dead target (kill -9), each a typed error with its exit code.
 * --delivery at-least-once and exactly-once (a repeated idempotency key gets the stored reply).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type CliResult,
  describeResult,
  killAllNodes,
  type NodeProcess,
  parseJson,
  poller,
  runCli,
  runCliWithInput,
  startNode,
  tempHome,
} from '../helpers/processes.ts';

const until = poller(200);
const home = await tempHome('rdbnet-dataplane-');
const env = { RDBNET_HOME: home.dir };
const nodes = new Map<string, NodeProcess>();
const IDS = ['n1', 'n2', 'n3'];

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, env, 30_000);
}

function errorCode(result: CliResult): string {
  return parseJson<{ error: { code: string } }>(result).error.code;
}

interface TopicArgs {
  topic: string;
  node: string;
  data?: string;
  deadline?: number;
  json?: boolean;
}

/** `rdbnet COMMAND [--to ID] --topic T [--data D] [--deadline MS] --node ADDR [--json]`. */
function topicCli(command: string, to: string | undefined, args: TopicArgs): Promise<CliResult> {
  return cli([
    command,
    ...(to === undefined ? [] : ['--to', to]),
    ...['--topic', args.topic],
    ...(args.data === undefined ? [] : ['--data', args.data]),
    ...(args.deadline === undefined ? [] : ['--deadline', String(args.deadline)]),
    ...['--node', args.node],
    ...(args.json === true ? ['--json'] : []),
  ]);
}

const requestCli = (args: TopicArgs & { to: string }) => topicCli('request', args.to, args);
const sendCli = (args: TopicArgs & { to: string }) => topicCli('send', args.to, args);
const broadcastCli = (args: TopicArgs) => topicCli('broadcast', undefined, args);

before(async () => {
  const n1 = await startNode(
    ['--id', 'n1', '--listen', '127.0.0.1:0', '--data-dir', join(home.dir, 'n1')],
    env,
    60_000,
  );
  nodes.set('n1', n1);
  for (const id of ['n2', 'n3']) {
    const node = await startNode(
      [
        '--id',
        id,
        '--listen',
        '127.0.0.1:0',
        '--data-dir',
        join(home.dir, id),
        '--join',
        n1.address,
      ],
      env,
      60_000,
    );
    nodes.set(id, node);
  }
  for (const id of IDS) {
    await until(
      `three alive members on ${id}`,
      async () => {
        const result = await cli([
          'cluster',
          'members',
          '--node',
          nodes.get(id)!.address,
          '--json',
        ]);
        if (result.code !== 0) return undefined;
        const { members } = parseJson<{ members: { state: string }[] }>(result);
        return members.filter((m) => m.state === 'alive').length === 3 ? true : undefined;
      },
      60_000,
    );
  }
});

after(async () => {
  for (const node of nodes.values()) {
    if (node.child.signalCode === null && node.child.exitCode === null) node.child.kill('SIGCONT');
  }
  await killAllNodes();
  await home.cleanup();
});

describe('rdbnet request, send, broadcast, ping against three nodes', () => {
  test('request --to n2 --topic echo --data hi: n2 answers, through n1', async () => {
    const n1 = nodes.get('n1')!.address;
    const human = await requestCli({ to: 'n2', topic: 'echo', data: 'hi', node: n1 });
    assert.equal(human.code, 0, describeResult(human));
    assert.equal(human.stdout, 'hi\n');
    const json = await requestCli({ to: 'n2', topic: 'echo', data: 'hi', node: n1, json: true });
    assert.equal(json.code, 0, describeResult(json));
    const reply = parseJson<Record<string, unknown>>(json);
    assert.deepEqual(
      { ...reply, latencyMs: typeof reply['latencyMs'] },
      { to: 'n2', topic: 'echo', reply: 'hi', encoding: 'utf8', latencyMs: 'number' },
    );
    // Bytes that are not UTF-8 come back as base64; a file and stdin are payloads too.
    const file = join(home.dir, 'payload.bin');
    await writeFile(file, Buffer.from([0xff, 0x00, 0xfe]));
    const binary = parseJson<{ reply: string; encoding: string }>(
      await requestCli({ to: 'n3', topic: 'echo', data: `@${file}`, node: n1, json: true }),
    );
    assert.deepEqual(binary, {
      ...binary,
      reply: Buffer.from([0xff, 0x00, 0xfe]).toString('base64'),
      encoding: 'base64',
    });
    const piped = await runCliWithInput(
      ['request', '--to', 'n1', '--topic', 'echo', '--data', '-', '--node', n1],
      'from stdin',
      env,
    );
    assert.equal(piped.stdout, 'from stdin\n', describeResult(piped));
    const sent = await sendCli({ to: 'n3', topic: 'echo', data: 'hi', node: n1, json: true });
    assert.equal(sent.code, 0, describeResult(sent));
    assert.deepEqual(parseJson(sent), { to: 'n3', topic: 'echo', bytes: 2, queued: true });
  });

  test('ping --all: an RTT for every ordered pair, measured by the members', async () => {
    const result = await cli(['ping', '--all', '--node', nodes.get('n2')!.address, '--json']);
    assert.equal(result.code, 0, describeResult(result));
    const { matrix, errors } = parseJson<{
      matrix: Record<string, Record<string, number>>;
      errors: unknown[];
    }>(result);
    assert.deepEqual(errors, []);
    assert.deepEqual(Object.keys(matrix).sort(), IDS);
    for (const from of IDS) {
      assert.deepEqual(
        Object.keys(matrix[from]!).sort(),
        IDS.filter((id) => id !== from),
      );
      for (const rtt of Object.values(matrix[from]!))
        assert.ok(rtt >= 0 && rtt < 5000, String(rtt));
    }
    const one = parseJson<{ matrix: Record<string, Record<string, number>> }>(
      await cli(['ping', '--to', 'n3', '--node', nodes.get('n1')!.address, '--json']),
    );
    assert.deepEqual(Object.keys(one.matrix), ['n1']);
    assert.deepEqual(Object.keys(one.matrix['n1']!), ['n3']);
    const human = await cli(['ping', '--all', '--node', nodes.get('n1')!.address]);
    assert.equal(human.code, 0, describeResult(human));
    assert.match(human.stdout, /n1.*n2.*n3/);
  });

  test('broadcast --topic echo --data hi: every member acknowledges', async () => {
    const result = await broadcastCli({
      topic: 'echo',
      data: 'hi',
      node: nodes.get('n3')!.address,
      json: true,
    });
    assert.equal(result.code, 0, describeResult(result));
    assert.deepEqual(parseJson(result), { topic: 'echo', group: null, acked: IDS, missing: [] });
  });

  test('--delivery: at-least-once acknowledged; exactly-once answers a repeated key with the stored reply', async () => {
    const n1 = nodes.get('n1')!.address;
    const ask = (data: string, extra: string[]) =>
      cli(['request', '--to', 'n2', '--topic', 'echo', '--data', data, '--node', n1, ...extra]);
    const atLeastOnce = await ask('once or more', ['--delivery', 'at-least-once']);
    assert.equal(atLeastOnce.code, 0, describeResult(atLeastOnce));
    assert.equal(atLeastOnce.stdout, 'once or more\n');
    const exactly = ['--delivery', 'exactly-once', '--idempotency-key', 'cli-key-1'];
    const first = await ask('first', exactly);
    assert.equal(first.stdout, 'first\n', describeResult(first));
    // The same key again, with another payload: n2 does not run echo again, it answers with
    // the reply it stored for the key.
    const again = await ask('second', exactly);
    assert.equal(again.stdout, 'first\n', describeResult(again));
    const counters = async (id: string) =>
      parseJson<{ counters: Record<string, number> }>(
        await cli(['node', 'status', '--node', nodes.get(id)!.address, '--json']),
      ).counters;
    const sender = await counters('n1');
    assert.ok(sender['dataplane.delivery.acked']! >= 3, JSON.stringify(sender));
    assert.equal(sender['dataplane.delivery.unacked'], 0);
    const receiver = await counters('n2');
    assert.ok(receiver['dataplane.dedup.suppressed']! >= 1, JSON.stringify(receiver));
    assert.ok(receiver['dataplane.dedup.window']! >= 1);
    const keyWithoutExactlyOnce = await cli([
      'send',
      '--to',
      'n2',
      '--topic',
      'echo',
      '--idempotency-key',
      'k',
      '--node',
      n1,
      '--json',
    ]);
    assert.equal(keyWithoutExactlyOnce.code, 64, describeResult(keyWithoutExactlyOnce));
    assert.equal(errorCode(keyWithoutExactlyOnce), 'RDB_USAGE');
    const unknownDelivery = await cli([
      'send',
      '--to',
      'n2',
      '--topic',
      'echo',
      '--delivery',
      'twice',
      '--node',
      n1,
    ]);
    assert.equal(unknownDelivery.code, 64, describeResult(unknownDelivery));
  });

  test('bad input: unknown topic, unknown target, bad topic, oversize payload (nothing sent)', async () => {
    const n1 = nodes.get('n1')!.address;
    const unknownTopic = await requestCli({
      to: 'n2',
      topic: 'nope',
      data: 'x',
      node: n1,
      json: true,
    });
    assert.equal(unknownTopic.code, 1, describeResult(unknownTopic));
    assert.equal(errorCode(unknownTopic), 'RDB_TOPIC_UNKNOWN');
    const unknownTarget = await requestCli({ to: 'n9', topic: 'echo', node: n1, json: true });
    assert.equal(unknownTarget.code, 1, describeResult(unknownTarget));
    assert.equal(errorCode(unknownTarget), 'RDB_TARGET_UNKNOWN');
    const badTopic = await sendCli({ to: 'n2', topic: 'no spaces', node: n1, json: true });
    assert.equal(badTopic.code, 64, describeResult(badTopic));
    assert.equal(errorCode(badTopic), 'RDB_TOPIC_INVALID');
    const big = join(home.dir, 'big.bin');
    await writeFile(big, Buffer.alloc(1024 * 1024 + 1));
    // Refused before any connection: an unreachable --node does not matter.
    const oversize = await requestCli({
      to: 'n2',
      topic: 'echo',
      data: `@${big}`,
      node: '127.0.0.1:1',
      json: true,
    });
    assert.equal(oversize.code, 64, describeResult(oversize));
    assert.equal(errorCode(oversize), 'RDB_MESSAGE_TOO_LARGE');
    const missingFile = await requestCli({
      to: 'n2',
      topic: 'echo',
      data: '@/nonexistent/x',
      node: n1,
    });
    assert.equal(missingFile.code, 64, describeResult(missingFile));
  });

  test('a passed deadline, a stopped receiver, then a dead target (kill -9)', async () => {
    const n1 = nodes.get('n1')!.address;
    const n3 = nodes.get('n3')!;
    // A deadline of 1 ms has passed by the time n1 would forward the message: refused before
    // anything is sent to n3.
    const passed = await requestCli({ to: 'n3', topic: 'echo', deadline: 1, node: n1, json: true });
    assert.equal(passed.code, 1, describeResult(passed));
    assert.equal(errorCode(passed), 'RDB_DEADLINE_PASSED');
    // n3 stops answering (SIGSTOP). While gossip still counts it alive the request waits out
    // its deadline; once gossip has declared it dead (about 2-3 s on lan timings, and starting
    // the command may take that long on a busy machine) it is refused as dead. Either way a
    // typed error, within the deadline and the command's own bound.
    n3.child.kill('SIGSTOP');
    try {
      const late = await requestCli({
        to: 'n3',
        topic: 'echo',
        deadline: 300,
        node: n1,
        json: true,
      });
      const code = errorCode(late);
      assert.ok(
        (late.code === 1 && code === 'RDB_DEADLINE_PASSED') ||
          (late.code === 69 && code === 'RDB_TARGET_DEAD'),
        describeResult(late),
      );
    } finally {
      n3.child.kill('SIGCONT');
    }
    await n3.kill();
    const dead = await until(
      'n3 reported dead to the sender',
      async () => {
        const result = await requestCli({
          to: 'n3',
          topic: 'echo',
          deadline: 1000,
          node: n1,
          json: true,
        });
        return result.code === 69 ? result : undefined;
      },
      30_000,
    );
    assert.equal(errorCode(dead), 'RDB_TARGET_DEAD');
  });
});
