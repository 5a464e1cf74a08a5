/**
 * The library API over real nodes: three nodes started in this process through
 * `import … from 'rdbnet'` (the package's own export, built to dist), gossiping over loopback
 * UDP and talking over loopback TCP. Every routing pattern, and a typed error for each bad
 * input: unknown topic, unknown and dead targets, oversize message, passed deadline, full queue.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isRdbnetError, type Node, QuorumError, startNode } from 'rdbnet';
import { poller, tempHome } from '../helpers/processes.ts';

const until = poller(100);
const home = await tempHome('rdbnet-dataplane-lib-');
const env = { ...process.env, RDBNET_HOME: home.dir };
const nodes: Node[] = [];
const silent = { debug() {}, info() {}, warn() {}, error() {} };

function start(id: string, join_: string[] | undefined, groups: string[], extra = {}) {
  return startNode(
    {
      id,
      listen: '127.0.0.1:0',
      dataDir: join(home.dir, id),
      insecure: true,
      groups,
      preset: 'local',
      ...(join_ === undefined ? {} : { join: join_ }),
    },
    { env, logger: silent, ...extra },
  ).then((node) => {
    nodes.push(node);
    return node;
  });
}

function code(expected: string) {
  return (error: unknown) => {
    assert.ok(isRdbnetError(error), `untyped: ${String(error)}`);
    assert.equal(error.code, expected, error.message);
    return true;
  };
}

let n1: Node;
let n2: Node;
let n3: Node;
const leaders: string[] = [];

before(async () => {
  n1 = await start('n1', undefined, ['a']);
  n1.onLeader((event) => leaders.push(event.leader));
  n2 = await start('n2', [n1.address], ['a', 'b']);
  // n3's queue is tiny, to show backpressure: one handler at a time, two waiting.
  n3 = await start('n3', [n1.address], [], {
    dataPlane: { queueDepthMax: 2, handlersConcurrentMax: 1 },
  });
  for (const node of [n1, n2, n3]) {
    await until(
      `three alive members on ${node.id}`,
      async () =>
        node.members().filter((m) => m.isSelf || m.state === 'alive').length === 3
          ? true
          : undefined,
      20_000,
    );
    node.handle('whoami', ({ payload }) => `${node.id}:${new TextDecoder().decode(payload)}`);
  }
});

after(async () => {
  await Promise.allSettled(nodes.map((node) => node.stop()));
  await home.cleanup();
});

describe('the library API on three in-process nodes', () => {
  test('request, send, and the built-in echo', async () => {
    const echoed = await n1.request('n2', 'echo', 'hi');
    assert.equal(new TextDecoder().decode(echoed.reply), 'hi');
    assert.equal(echoed.from, 'n2');
    const who = await n2.request({ id: 'n3' }, 'whoami', 'x');
    assert.equal(new TextDecoder().decode(who.reply), 'n3:x');
    let received = '';
    n2.handle('inbox', ({ payload, from }) => {
      received = `${from}:${new TextDecoder().decode(payload)}`;
    });
    assert.deepEqual(await n1.send('n2', 'inbox', 'note'), { to: 'n2' });
    await until('the one-way message handled', async () =>
      received !== '' ? received : undefined,
    );
    assert.equal(received, 'n1:note');
    // A node sending to itself goes through its own queue, not the network.
    assert.equal(new TextDecoder().decode((await n1.request('n1', 'whoami', 'me')).reply), 'n1:me');
  });

  test('broadcast, multicast to a group, and a balancing strategy', async () => {
    assert.deepEqual(await n1.broadcast('echo', 'all'), { acked: ['n1', 'n2', 'n3'], missing: [] });
    assert.deepEqual((await n3.multicast('a', 'echo', 'x')).acked, ['n1', 'n2']);
    assert.deepEqual((await n3.multicast('b', 'echo', 'x')).acked, ['n2']);
    await assert.rejects(n1.multicast('nobody', 'echo', 'x'), code('RDB_TARGET_UNKNOWN'));
    // The same key picks the same two replicas from every member.
    const picks = await Promise.all(
      [n1, n2, n3].map((node) =>
        node.fanOut({ strategy: 'rendezvous', key: 'user:42', count: 2 }, 'whoami', ''),
      ),
    );
    const sets = picks.map((pick) =>
      pick.responses
        .map((r) => r.id)
        .sort()
        .join(','),
    );
    assert.equal(new Set(sets).size, 1, JSON.stringify(picks.map((p) => p.missing)));
    assert.equal(picks[0]!.responses.length, 2);
  });

  test('scatter-gather, quorum with a straggler, bounded fan-out', async () => {
    const gathered = await n1.scatterGather({ all: true }, 'whoami', 'g');
    assert.deepEqual(gathered.responses.map((r) => new TextDecoder().decode(r.reply)).sort(), [
      'n1:g',
      'n2:g',
      'n3:g',
    ]);
    assert.equal(gathered.partial, false);

    // n3 is slow: a quorum of 2 of 3 answers without it and stops waiting for it.
    let straggler: AbortSignal | null = null;
    const slow = (node: Node, ms: number) =>
      node.handle('slow', ({ signal }) => {
        if (node === n3) straggler = signal;
        return new Promise<string>((resolve) => {
          const timer = setTimeout(() => resolve(node.id), ms);
          // A handler that stops at its signal frees its slot at once.
          signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve('aborted');
          });
        });
      });
    slow(n1, 0);
    slow(n2, 0);
    slow(n3, 3000);
    const quorum = await n1.quorum({ all: true }, 'slow', '', { acks: 2, deadlineMs: 10_000 });
    assert.deepEqual(quorum.acked.sort(), ['n1', 'n2']);
    assert.deepEqual(quorum.cancelled, ['n3']);

    // Scatter-gather with a deadline shorter than n3: a partial result, n3 missing.
    const partial = await n1.scatterGather({ all: true }, 'slow', '', {
      deadlineMs: 500,
      minResponses: 2,
    });
    assert.equal(partial.partial, true);
    assert.deepEqual(
      partial.missing.map((m) => [m.id, m.code]),
      [['n3', 'RDB_DEADLINE_PASSED']],
    );
    await assert.rejects(
      n1.scatterGather({ all: true }, 'slow', '', { deadlineMs: 500 }),
      (error: unknown) => {
        assert.ok(error instanceof QuorumError);
        assert.equal(error.code, 'RDB_QUORUM_NOT_REACHED');
        assert.equal(error.result.responses.length, 2);
        return true;
      },
    );
    assert.ok(straggler !== null);
    await until('n3 free again', async () =>
      n3.stats()['dataplane.running'] === 0 ? true : undefined,
    );

    // fanOut with concurrency 1: never more than one handler busy at once across the nodes.
    let busy = 0;
    let busyPeak = 0;
    for (const node of [n1, n2, n3]) {
      node.handle('count', async () => {
        busy++;
        busyPeak = Math.max(busyPeak, busy);
        await new Promise((resolve) => setTimeout(resolve, 30));
        busy--;
        return 'ok';
      });
    }
    const fanned = await n1.fanOut({ all: true }, 'count', '', { concurrency: 1 });
    assert.equal(fanned.responses.length, 3);
    assert.equal(busyPeak, 1);
  });

  test('bad input: typed errors, nothing dropped silently', async () => {
    await assert.rejects(n1.request('n2', 'no-such-topic', 'x'), code('RDB_TOPIC_UNKNOWN'));
    await assert.rejects(n1.request('n9', 'echo', 'x'), code('RDB_TARGET_UNKNOWN'));
    await assert.rejects(n1.request('n2', 'bad topic!', 'x'), code('RDB_TOPIC_INVALID'));
    await assert.rejects(
      n1.request('n2', 'echo', new Uint8Array(1024 * 1024 + 1)),
      code('RDB_MESSAGE_TOO_LARGE'),
    );
    await assert.rejects(
      n1.request('n3', 'slow', '', { deadlineMs: 200 }),
      code('RDB_DEADLINE_PASSED'),
    );
    await assert.rejects(
      n1.request('n2', 'echo', 'x', { deadlineMs: 0 }),
      code('RDB_DEADLINE_PASSED'),
    );
    assert.throws(() => n1.handle('x'.repeat(129), () => 'x'), code('RDB_TOPIC_INVALID'));
  });

  test('a full queue refuses with RDB_QUEUE_FULL (backpressure), and stays bounded', async () => {
    await until('n3 idle', async () => (n3.stats()['dataplane.running'] === 0 ? true : undefined));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    n3.handle('block', () => gate.then(() => 'done'));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, () => n1.send('n3', 'block', 'x', { deadlineMs: 10_000 })),
    );
    const refused = outcomes.filter(
      (o) => o.status === 'rejected' && isRdbnetError(o.reason, 'RDB_QUEUE_FULL'),
    ).length;
    const accepted = outcomes.filter((o) => o.status === 'fulfilled').length;
    // One handler running and two waiting: three taken, the other seven refused.
    assert.equal(accepted, 3, JSON.stringify(outcomes));
    assert.equal(refused, 7);
    assert.ok(n3.stats()['dataplane.queued']! <= 2);
    release();
  });

  test('leader events and a dead target', async () => {
    assert.ok(leaders.includes('n1'), JSON.stringify(leaders));
    assert.equal(n1.leader, 'n1');
    await n3.stop();
    await until(
      'n3 gone from n1',
      async () => (n1.members().find((m) => m.id === 'n3')?.state !== 'alive' ? true : undefined),
      20_000,
    );
    await assert.rejects(n1.request('n3', 'echo', 'x'), code('RDB_TARGET_DEAD'));
    assert.deepEqual((await n1.broadcast('echo', 'x')).acked, ['n1', 'n2']);
  });
});
