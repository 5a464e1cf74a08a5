/**
 * One side of the delivery-guarantee test between real processes
 * (test/integration/delivery-fault-proxy.test.ts), each a node started through the library
 * API with mutual TLS:
 *
 *   receiver --id ID --listen ADDR --advertise ADDR --data-dir DIR --runs FILE
 *       Answers topic `apply`: each run of the handler appends the message's number (its
 *       payload) and a newline to FILE with one write(2) — what a kill -9 cannot take back —
 *       so the test counts how often each message ran over every process of the receiver.
 *       Advertises ADDR (the fault proxy): the other nodes' data traffic goes through it.
 *   sender --id ID --join ADDR --data-dir DIR --to ID --delivery D --count N --concurrency C
 *          [--prefix P]
 *       Sends messages P0 … P(N-1) to `apply` on the receiver (exactly-once: idempotency key
 *       `m<message>`), C at a time. A message whose delivery failed (RDB_DELIVERY_FAILED after
 *       the data plane's own retries, or the target declared dead while the receiver
 *       restarts) is sent again with the same key, for at most RESEND_FOR_MS. Prints
 *       `{"progress": k}` every PROGRESS_EVERY acknowledged messages and, at the end,
 *       `{"acked": k, "failed": f, "resent": r}`.
 *
 * Both print `{"id", "address"}` once their node runs. RDBNET_HOME (certificates) comes from
 * the environment.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isRdbnetError, startNode } from '../../src/index.ts';

const TOPIC = 'apply';
/** How long a message is sent again (same key) while the data plane reports it undelivered:
 * longer than a restart of the receiver takes on a loaded machine. */
const RESEND_FOR_MS = 180_000;
/** Pause before a message is sent again (the receiver may be restarting). */
const RESEND_PAUSE_MS = 200;
const PROGRESS_EVERY = 1000;
const MEMBERS_TIMEOUT_MS = 60_000;
/** Per message: the data plane's deadline (its longest). */
const DEADLINE_MS = 60_000;

const { values: args } = parseArgs({
  allowPositionals: true,
  options: {
    id: { type: 'string' },
    listen: { type: 'string', default: '127.0.0.1:0' },
    advertise: { type: 'string' },
    join: { type: 'string' },
    'data-dir': { type: 'string' },
    runs: { type: 'string' },
    to: { type: 'string' },
    delivery: { type: 'string', default: 'exactly-once' },
    count: { type: 'string', default: '1000' },
    prefix: { type: 'string', default: '' },
    concurrency: { type: 'string', default: '200' },
  },
});
const role = process.argv[2];
const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const node = await startNode(
  {
    id: args.id!,
    listen: args.listen,
    ...(args.advertise === undefined ? {} : { advertise: args.advertise }),
    join: args.join === undefined ? [] : [args.join],
    dataDir: args['data-dir']!,
  },
  // Attempts short enough that a reset connection is retried soon.
  { dataPlane: { attemptTimeoutMs: 2000, deliveryAttemptsMax: 10 } },
);
print({ id: node.id, address: node.address });

if (role === 'receiver') {
  const runs = openSync(args.runs!, 'a');
  node.handle(TOPIC, ({ payload }) => {
    writeSync(runs, `${new TextDecoder().decode(payload)}\n`);
    return 'ok';
  });
  process.on('SIGTERM', () => {
    closeSync(runs);
    void node.stop().then(() => process.exit(0));
  });
} else if (role === 'sender') {
  const to = args.to!;
  const count = Number(args.count);
  const delivery = args.delivery as 'at-least-once' | 'exactly-once';
  const prefix = args.prefix;
  await node.waitForMembers(2, MEMBERS_TIMEOUT_MS);
  let next = 0;
  let acked = 0;
  let failed = 0;
  let resent = 0;
  const sendOne = async (number: number): Promise<void> => {
    const options = {
      delivery,
      deadlineMs: DEADLINE_MS,
      ...(delivery === 'exactly-once' ? { idempotencyKey: `m${prefix}${number}` } : {}),
    };
    const giveUpAt = Date.now() + RESEND_FOR_MS;
    for (;;) {
      try {
        await node.send(to, TOPIC, `${prefix}${number}`, options);
        return;
      } catch (error) {
        if (Date.now() >= giveUpAt) throw error;
        if (!isRdbnetError(error)) throw error;
        resent++;
        await sleep(RESEND_PAUSE_MS);
      }
    }
  };
  const worker = async (): Promise<void> => {
    while (next < count) {
      const number = next++;
      try {
        await sendOne(number);
        acked++;
        if (acked % PROGRESS_EVERY === 0) print({ progress: acked });
      } catch (error) {
        failed++;
        process.stderr.write(`message ${number}: ${String(error)}\n`);
      }
    }
  };
  await Promise.all(Array.from({ length: Number(args.concurrency) }, worker));
  print({ acked, failed, resent });
  await node.stop();
  process.exit(0);
} else {
  throw new Error(`usage: delivery-peer.ts receiver|sender … (got ${role})`);
}
