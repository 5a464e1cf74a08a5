/**
 * Multiplexed streams and priorities between two real node processes (test/helpers/bulk-node.ts,
 * started through the built library): a 17 MiB low-priority request — larger than a frame may
 * be (16 MiB), so it can only travel as a stream — is echoed back while small critical
 * requests on the same connection keep completing. Completion is asserted, never timings.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempHome } from '../helpers/processes.ts';

const BULK_NODE = fileURLToPath(new URL('../helpers/bulk-node.ts', import.meta.url));
const BULK_BYTES = 17 * 1024 * 1024;
const CRITICAL_REQUESTS = 10;
/** Generous: on a machine at load 60 the 34 MiB round trip took over two minutes. */
const LINE_TIMEOUT_MS = 240_000;

const home = await tempHome('rdbnet-streams-');
const children: ChildProcess[] = [];

after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  await home.cleanup();
});

/** A bulk node and a reader of its stdout lines; stderr kept for failure messages. */
function startBulkNode(args: string[]): { child: ChildProcess; next(): Promise<unknown> } {
  const child = spawn(process.execPath, [BULK_NODE, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const lines: Interface = createInterface({ input: child.stdout! });
  const iterator = lines[Symbol.asyncIterator]();
  return {
    child,
    async next() {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no line from ${args[0]} in time\n${stderr}`)),
          LINE_TIMEOUT_MS,
        );
      });
      try {
        const line = await Promise.race([iterator.next(), timeout]);
        if (line.done) throw new Error(`${args[0]} exited (${child.exitCode})\n${stderr}`);
        return JSON.parse(line.value) as unknown;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

test('a 17 MiB low-priority request streams while critical requests on the same connection complete', async () => {
  const n2 = startBulkNode(['n2', home.dir]);
  const { address } = (await n2.next()) as { address: string };
  const n1 = startBulkNode(['n1', home.dir, address]);
  await n1.next(); // listening
  await n1.next(); // both alive
  n1.child.stdin!.write(
    `${JSON.stringify({ op: 'bulk-with-critical', to: 'n2', bulkBytes: BULK_BYTES, critical: CRITICAL_REQUESTS })}\n`,
  );
  const result = (await n1.next()) as {
    critical: number;
    criticalBeforeBulk: number;
    bulkIntact: boolean;
    bulkBytesBack: number;
  };
  assert.equal(result.bulkBytesBack, BULK_BYTES);
  assert.ok(result.bulkIntact, 'the bulk echo came back byte for byte');
  assert.equal(result.critical, CRITICAL_REQUESTS);
  // Every critical request completed while the bulk one was still under way: none waited
  // for the 34 MiB to cross (17 out, 17 back).
  assert.equal(result.criticalBeforeBulk, CRITICAL_REQUESTS, JSON.stringify(result));
  n1.child.stdin!.end();
  n2.child.stdin!.end();
});
