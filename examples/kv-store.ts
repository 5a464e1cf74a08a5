/**
 * A small replicated key-value store on rdbnet's library API. Every node is a replica and a
 * coordinator: `kv.put` (payload `key=value`) writes to W of the N replicas the rendezvous
 * strategy picks for the key, `kv.get` (payload `key`) reads R of them and returns the newest
 * value. With N = 3, W = 2, R = 2, every read overlaps the last write, so a store of three
 * nodes answers reads with the written value after one replica is killed.
 *
 *   node examples/kv-store.ts --id n1 --listen 127.0.0.1:7101
 *   node examples/kv-store.ts --id n2 --listen 127.0.0.1:7102 --join 127.0.0.1:7101
 *   node examples/kv-store.ts --id n3 --listen 127.0.0.1:7103 --join 127.0.0.1:7101
 *   rdbnet request --node 127.0.0.1:7101 --to n1 --topic kv.put --data user:42=alice
 *   rdbnet request --node 127.0.0.1:7103 --to n3 --topic kv.get --data user:42
 *
 * Values live in memory: a restarted replica comes back empty and is refilled by later writes
 * (a real store would persist them and repair replicas that missed a write).
 */
import { parseArgs } from 'node:util';
import { type Node, RdbnetError, startNode } from 'rdbnet';

const REPLICAS = 3; // N
const WRITE_ACKS = 2; // W
const READ_ANSWERS = 2; // R
const DEADLINE_MS = 2000;
/** Keys held per replica; one more write of a new key is refused (every table is bounded). */
const KEYS_MAX = 100_000;

interface Versioned {
  /** Last writer wins: the coordinator's wall clock, then its id, orders writes. */
  version: [number, string];
  value: string;
}

const { values: args } = parseArgs({
  options: {
    id: { type: 'string' },
    listen: { type: 'string', default: '127.0.0.1:0' },
    join: { type: 'string' },
    'data-dir': { type: 'string' },
  },
});

const node: Node = await startNode({
  id: args.id ?? null,
  listen: args.listen,
  ...(args.join === undefined ? {} : { join: args.join }),
  ...(args['data-dir'] === undefined ? {} : { dataDir: args['data-dir'] }),
});

const store = new Map<string, Versioned>();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const newer = (a: Versioned, b: Versioned | undefined) =>
  b === undefined ||
  a.version[0] > b.version[0] ||
  (a.version[0] === b.version[0] && a.version[1] > b.version[1]);

/** The replicas of a key: N alive members by rendezvous hashing (the same on every node). */
function replicasOf(key: string) {
  const alive = node.members().filter((m) => m.isSelf || m.state === 'alive').length;
  return { strategy: 'rendezvous' as const, key, count: Math.min(REPLICAS, alive) };
}

// The replica's side: keep the newest version of each key; answer what it holds.
node.handle('kv.replica.put', ({ payload }) => {
  const { key, entry } = JSON.parse(text(payload)) as { key: string; entry: Versioned };
  if (!store.has(key) && store.size >= KEYS_MAX)
    throw new RdbnetError('RDB_QUEUE_FULL', 'store full');
  if (newer(entry, store.get(key))) store.set(key, entry);
  return 'ok';
});
node.handle('kv.replica.get', ({ payload }) => JSON.stringify(store.get(text(payload)) ?? null));

// The coordinator's side, on every node.
node.handle('kv.put', async ({ payload }) => {
  const input = text(payload);
  const split = input.indexOf('=');
  if (split < 1) throw new RdbnetError('RDB_USAGE', 'kv.put takes key=value');
  const key = input.slice(0, split);
  const entry: Versioned = { version: [Date.now(), node.id], value: input.slice(split + 1) };
  const written = await node.quorum(
    replicasOf(key),
    'kv.replica.put',
    JSON.stringify({ key, entry }),
    { acks: WRITE_ACKS, deadlineMs: DEADLINE_MS },
  );
  return `ok (${written.acked.sort().join(',')})`;
});
node.handle('kv.get', async ({ payload }) => {
  const key = text(payload);
  const read = await node.scatterGather(replicasOf(key), 'kv.replica.get', key, {
    minResponses: Math.min(READ_ANSWERS, replicasOf(key).count),
    deadlineMs: DEADLINE_MS,
  });
  let newest: Versioned | undefined;
  for (const answer of read.responses) {
    const entry = JSON.parse(text(answer.reply)) as Versioned | null;
    if (entry !== null && newer(entry, newest)) newest = entry;
  }
  return newest?.value ?? ''; // an empty reply: no such key
});

process.stdout.write(
  `${JSON.stringify({ id: node.id, address: node.address, pid: process.pid })}\n`,
);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    node.stop().then(() => process.exit(0));
  });
}
