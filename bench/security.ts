/**
 * bench:security — what the access control list and the firewall cost a node, per connection
 * and per message, at 10, 1,000 and 10,000 rules (goal: ≤ 1 µs per message at 1,000 rules).
 *
 *   compile          ms to compile a list (each time a change is applied)
 *   per connection   accept + handshake checks and building the connection's view (O(rules))
 *   per message      the production path: the connection's view (its answer per operation
 *                    remembered) plus the firewall's token bucket for the source
 *   uncached         one full first-match evaluation over the list (no view, no cache): the
 *                    cost of `acl test`, and the bound for a connection that asks more than
 *                    ACL_VIEW_CACHE_MAX distinct topics
 *
 * Rules: random sources (169.254.x.y hosts and /24s, 127.0.0.0/8 hosts, fe80::/10 /64s),
 * a third with an identity, half with an operation class; the connection measured matches
 * none but the last rule (the worst case for a first match). Times are the thread's CPU time
 * per operation (median of five samples), so time descheduled on a loaded machine is not
 * counted; the load average is printed with them.
 *
 * Prints a table and writes bench/results/security.json. BENCH_QUICK=1: small numbers (figures
 * meaningless) in a few seconds, written to bench/results/security.quick.json.
 *
 * Not measured (not built): end-to-end message encryption throughput.
 */
import { loadavg } from 'node:os';
import Table from 'cli-table3';
import { seededRandom, systemClock } from '../src/core/runtime/index.ts';
import {
  type AclOperation,
  type AclPrincipal,
  type AclRule,
  CompiledAcl,
} from '../src/core/security/acl.ts';
import { FIREWALL_LIMITS_DEFAULT, Firewall } from '../src/core/security/firewall.ts';
import { QUICK, writeResults } from './harness.ts';

const SIZES = [10, 1000, 10_000];
const GOAL_NS_AT_1000 = 1000;
const BUDGET_MS = QUICK ? 20 : 600;

function threadCpuUs(): number {
  const usage = process.threadCpuUsage();
  return usage.user + usage.system;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** CPU ns per call of `op`, median of five samples of about BUDGET_MS / 5 each. */
function measure(op: (i: number) => void, batch = 1024): number {
  let i = 0;
  const warm = performance.now() + Math.min(50, BUDGET_MS / 4);
  while (performance.now() < warm) for (let j = 0; j < batch; j++) op(i++);
  const samples: number[] = [];
  for (let s = 0; s < 5; s++) {
    const until = performance.now() + BUDGET_MS / 5;
    let ops = 0;
    const start = threadCpuUs();
    while (performance.now() < until) {
      for (let j = 0; j < batch; j++) op(i++);
      ops += batch;
    }
    samples.push(((threadCpuUs() - start) * 1e3) / ops);
  }
  return median(samples);
}

function rules(count: number): AclRule[] {
  const random = seededRandom(count);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random.next() * items.length)]!;
  const byte = () => 1 + Math.floor(random.next() * 250);
  const out: AclRule[] = [];
  for (let i = 0; i < count - 1; i++) {
    const source = pick([
      () => `169.254.${byte()}.${byte()}`,
      () => `169.254.${byte()}.0/24`,
      () => `127.${byte()}.${byte()}.${byte()}`,
      () => `fe80:0:0:${byte().toString(16)}::/64`,
    ])();
    const rule: AclRule = {
      id: `acl-${i + 2}`,
      priority: i,
      source,
      action: pick(['allow', 'deny'] as const),
    };
    if (random.next() < 1 / 3) rule.identity = pick(['client/ops', 'node/*', 'role:read']);
    if (random.next() < 1 / 2) rule.op = pick(['gossip', 'raft', 'admin-write', 'data:orders.*']);
    // Never the measured connection's source: the list is walked to its end.
    if (source.startsWith('169.254.77.')) rule.source = '169.254.78.0/24';
    out.push(rule);
  }
  out.push({ id: 'acl-last', priority: count, source: '169.254.77.0/24', action: 'allow' });
  return out;
}

interface Row {
  rules: number;
  compileMs: number;
  perConnectionNs: number;
  perMessageAclNs: number;
  perMessageFirewallNs: number;
  perMessageNs: number;
  uncachedNs: number;
}

const SOURCE = '169.254.77.9';
const WHO: AclPrincipal = { name: 'client/app', role: 'admin' };
const OPS: AclOperation[] = [
  { cls: 'admin-read' },
  { cls: 'data', topic: 'orders.eu' },
  { cls: 'data', topic: 'metrics' },
  { cls: 'admin-write' },
];

const rows: Row[] = [];
for (const size of SIZES) {
  const policy = { rules: rules(size), defaultAction: 'deny' as const };
  let sink = 0;
  const compileStart = performance.now();
  const compileRuns = QUICK ? 1 : 5;
  let acl = new CompiledAcl(policy);
  for (let r = 1; r < compileRuns; r++) acl = new CompiledAcl(policy);
  const compileMs = (performance.now() - compileStart) / compileRuns;
  const perConnectionNs = measure(
    () => {
      sink += acl.admits(SOURCE).allowed ? 1 : 0;
      sink += acl.admits(SOURCE, WHO).allowed ? 1 : 0;
      sink += acl.view(SOURCE, WHO).acl === acl ? 1 : 0;
    },
    size >= 10_000 ? 8 : 256,
  );
  const view = acl.view(SOURCE, WHO);
  const perMessageAclNs = measure((i) => {
    sink += view.check(OPS[i & 3]!);
  });
  const firewall = new Firewall(
    { ...FIREWALL_LIMITS_DEFAULT, messagesPerSecond: 100_000_000 },
    systemClock,
  );
  const state = firewall.stateOf(SOURCE);
  const perMessageFirewallNs = measure(() => {
    sink += firewall.onMessage(state) === undefined ? 1 : 0;
  });
  const perMessageNs = measure((i) => {
    const index = view.check(OPS[i & 3]!);
    if (view.allowedBy(index)) sink += firewall.onMessage(state) === undefined ? 1 : 0;
  });
  const uncachedNs = measure(
    (i) => {
      sink += acl.decide(SOURCE, WHO, OPS[i & 3]!).allowed ? 1 : 0;
    },
    size >= 10_000 ? 8 : 256,
  );
  if (sink === -1) console.log(sink);
  rows.push({
    rules: size,
    compileMs,
    perConnectionNs,
    perMessageAclNs,
    perMessageFirewallNs,
    perMessageNs,
    uncachedNs,
  });
}

const fmt = (ns: number) => (ns >= 10_000 ? `${(ns / 1000).toFixed(1)} µs` : `${ns.toFixed(0)} ns`);
const table = new Table({
  head: [
    'rules',
    'compile',
    'per connection',
    'per message: ACL',
    'firewall',
    'ACL + firewall',
    'uncached first match',
  ],
});
for (const row of rows) {
  table.push([
    row.rules,
    `${row.compileMs.toFixed(2)} ms`,
    fmt(row.perConnectionNs),
    fmt(row.perMessageAclNs),
    fmt(row.perMessageFirewallNs),
    fmt(row.perMessageNs),
    fmt(row.uncachedNs),
  ]);
}
const at1000 = rows.find((row) => row.rules === 1000)!;
const met = at1000.perMessageNs <= GOAL_NS_AT_1000;
const load = loadavg().map((value) => value.toFixed(2));
console.log(
  `bench:security${QUICK ? ' (quick mode: figures meaningless)' : ''} — thread CPU time per operation, load average ${load.join(' ')}`,
);
console.log(table.toString());
console.log(
  `goal ≤ ${GOAL_NS_AT_1000} ns per message (ACL + firewall) at 1,000 rules: ${fmt(at1000.perMessageNs)} — ${met ? 'met' : 'NOT met'}`,
);
const file = await writeResults('security', {
  quick: QUICK,
  loadAverage: loadavg(),
  goalNsPerMessageAt1000: GOAL_NS_AT_1000,
  goalMet: met,
  rows,
});
console.log(`results: ${file}`);
