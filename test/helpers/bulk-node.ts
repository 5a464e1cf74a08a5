/**
 * A node process for test/integration/streams.test.ts, started through the library
 * (`startNode` from 'rdbnet', the built package) with a data-plane messageBytesMax of
 * BULK_MESSAGE_BYTES_MAX, which `rdbnet node start` has no setting for:
 *
 *   node bulk-node.ts ID HOME [SEED]
 *
 * Prints one JSON line `{"address": …}` once listening. With a seed it waits until both are
 * alive members, then reads commands on stdin, one JSON line each, and answers each with one
 * JSON line:
 *
 *   {"op": "bulk-with-critical", "to": ID, "bulkBytes": N, "critical": K}
 *       Starts one low-priority echo request of N random bytes to ID and, while it is in
 *       flight, K critical 64-byte echo requests one after another. Answers how many critical
 *       requests completed (and how many of them before the bulk one), whether the bulk echo came
 *       back intact, and the stream counters of the connection.
 *
 * Exits 1 with one line on stderr when something fails.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startNode } from 'rdbnet';

export const BULK_MESSAGE_BYTES_MAX = 24 * 1024 * 1024;
const MEMBERS_TIMEOUT_MS = 60_000;
const DEADLINE_MS = 60_000;

const [id, home, seed] = process.argv.slice(2);
if (id === undefined || home === undefined) {
  console.error('usage: bulk-node.ts ID HOME [SEED]');
  process.exit(1);
}
const silent = { debug() {}, info() {}, warn() {}, error() {} };

try {
  const node = await startNode(
    {
      id,
      listen: '127.0.0.1:0',
      dataDir: join(home, id),
      insecure: true,
      preset: 'local',
      ...(seed === undefined ? {} : { join: [seed] }),
    },
    {
      env: { ...process.env, RDBNET_HOME: home },
      logger: silent,
      dataPlane: { messageBytesMax: BULK_MESSAGE_BYTES_MAX },
    },
  );
  console.log(JSON.stringify({ address: node.address }));
  if (seed !== undefined) {
    await node.waitForMembers(2, MEMBERS_TIMEOUT_MS);
    console.log(JSON.stringify({ members: 2 }));
  }
  for await (const line of createInterface({ input: process.stdin })) {
    const command = JSON.parse(line) as {
      op: string;
      to: string;
      bulkBytes: number;
      critical: number;
    };
    if (command.op !== 'bulk-with-critical') throw new Error(`unknown op ${command.op}`);
    const bulk = randomBytes(command.bulkBytes);
    let bulkDone = false;
    const bulkReply = node
      .request(command.to, 'echo', bulk, { deadlineMs: DEADLINE_MS, priority: 'low' })
      .then((result) => {
        bulkDone = true;
        return result;
      });
    let critical = 0;
    let criticalBeforeBulk = 0;
    const small = randomBytes(64);
    for (let i = 0; i < command.critical; i++) {
      const { reply } = await node.request(command.to, 'echo', small, {
        deadlineMs: DEADLINE_MS,
        priority: 'critical',
      });
      if (!Buffer.from(reply).equals(small)) throw new Error(`critical echo ${i} differs`);
      critical++;
      if (!bulkDone) criticalBeforeBulk++;
    }
    const { reply } = await bulkReply;
    console.log(
      JSON.stringify({
        critical,
        criticalBeforeBulk,
        bulkIntact: Buffer.from(reply).equals(bulk),
        bulkBytesBack: reply.length,
      }),
    );
  }
  await node.stop();
  process.exit(0);
} catch (error) {
  console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  process.exit(1);
}
