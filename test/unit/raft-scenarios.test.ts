/**
 * Script-driven Raft scenarios (in the spirit of etcd-io/raft's testdata/*.txt): each file in
 * raft-scenarios/ is a sequence of commands and expectations run against a small in-memory
 * cluster of RawNodes. Messages queue in a simulated network and move only on `deliver` or
 * `run`, so every interleaving in a script is explicit.
 *
 * Commands (one per line, `#` starts a comment):
 *   cluster voters=1,2,3 [learners=4] [<RaftConfig field>=<value> ...]
 *   add-node <id>                       start a node with empty storage (not a member)
 *   tick <id|all> [xN]                  tick without delivering anything
 *   run [xN]                            N rounds of: tick every live node, deliver all
 *   campaign <id>
 *   propose <id|leader> "<data>"
 *   conf <id|leader> add-voter|add-learner|promote|remove <node>
 *   transfer <id|leader> <to>
 *   compact <id> <index|applied>
 *   deliver all | deliver [xN]          until quiet | N rounds of what is queued
 *   drop all                            lose every queued message
 *   partition 1 2 | 3                   heal
 *   crash <id>                          restart <id>
 *   hold <id>                           stop handling its Readies (nothing gets persisted)
 *   release <id>
 * A command may end in `=> error <reason>` (it must fail with RaftProposalError(reason)).
 * Expectations:
 *   expect leader <id> term <t>
 *   expect one-leader <id> <id> ... [term<op><t>]  exactly one of them leads
 *   expect <id> <key><op><value> ...           keys: role term lead vote commit applied first
 *                                              last voters learners leadTransferee; op = != > >= < <=
 *   expect progress <leader> <peer> key=value  keys: match next state
 *   expect counter <id> <name><op><value>
 *   expect log <id> <index>@<term>[:<data>] ...   the whole log, first to last
 *   expect logs-equal <id> <id> ...
 *   expect applied <id> "<data>" ...           the node's state machine, in order
 *   expect sent <from>-><to> <Type> [xN]       sent during the previous command
 *   expect not-sent <from|*>-><to|*> <Type>
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RaftConfig } from '../../src/core/membership/raft/config.ts';
import { RaftProposalError } from '../../src/core/membership/raft/raft.ts';
import { RawNode } from '../../src/core/membership/raft/raw-node.ts';
import { MemoryStorage, persistReady } from '../../src/core/membership/raft/storage.ts';
import type { ConfChangeType, Message } from '../../src/core/membership/raft/types.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';

const SCENARIO_DIR = join(import.meta.dirname, 'raft-scenarios');
const ROUNDS_MAX = 10_000;

interface ScenarioNode {
  id: string;
  storage: MemoryStorage;
  raw: RawNode | undefined;
  /** The toy state machine: the data of every applied non-empty normal entry. */
  applied: string[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encodeState(applied: string[]): Uint8Array {
  return encoder.encode(JSON.stringify(applied));
}

function decodeState(data: Uint8Array): string[] {
  return data.byteLength === 0 ? [] : (JSON.parse(decoder.decode(data)) as string[]);
}

class Scenario {
  readonly nodes = new Map<string, ScenarioNode>();
  private queue: Message[] = [];
  private groupOf = new Map<string, number>();
  private config: Partial<RaftConfig> = {};
  /** Messages sent during the current command. */
  sent: Message[] = [];
  /** Nodes whose Readies are held back: what they received stays unpersisted. */
  readonly held = new Set<string>();

  node(id: string): ScenarioNode {
    const node = this.nodes.get(id);
    assert.ok(node !== undefined, `no node ${id}`);
    return node;
  }

  raw(id: string): RawNode {
    const raw = this.node(id).raw;
    assert.ok(raw !== undefined, `node ${id} is crashed`);
    return raw;
  }

  live(): ScenarioNode[] {
    return [...this.nodes.values()].filter((node) => node.raw !== undefined);
  }

  leaderId(): string {
    const leaders = this.live().filter((node) => node.raw!.status().role === 'leader');
    const top = Math.max(...leaders.map((node) => node.raw!.status().term));
    const current = leaders.filter((node) => node.raw!.status().term === top);
    assert.equal(current.length, 1, 'expected exactly one current leader');
    return current[0]!.id;
  }

  resolve(id: string): string {
    return id === 'leader' ? this.leaderId() : id;
  }

  cluster(voters: string[], learners: string[], config: Partial<RaftConfig>): void {
    this.config = config;
    for (const id of [...voters, ...learners]) {
      this.start(id, MemoryStorage.bootstrap(voters, learners));
    }
  }

  start(id: string, storage: MemoryStorage): void {
    const node: ScenarioNode = { id, storage, raw: undefined, applied: [] };
    this.nodes.set(id, node);
    this.boot(node);
  }

  private boot(node: ScenarioNode): void {
    let seed = 7;
    for (const char of node.id) seed = (seed * 31 + char.charCodeAt(0)) >>> 0;
    node.raw = new RawNode({
      id: node.id,
      storage: node.storage,
      config: this.config,
      random: seededRandom(seed),
    });
    // The state machine restarts from the latest snapshot; Raft replays the rest.
    node.applied = decodeState(node.storage.snapshot().data);
    this.process(node);
  }

  crash(id: string): void {
    this.node(id).raw = undefined;
  }

  restart(id: string): void {
    const node = this.node(id);
    assert.equal(node.raw, undefined, `node ${id} is running`);
    this.boot(node);
  }

  /** Handles every Ready of `node`: persist, then send, then apply, then advance. */
  process(node: ScenarioNode): void {
    const raw = node.raw;
    if (raw === undefined || this.held.has(node.id)) return;
    while (raw.hasReady()) {
      const ready = raw.ready();
      persistReady(node.storage, ready);
      for (const message of ready.messages) {
        this.queue.push(message);
        this.sent.push(message);
      }
      if (ready.snapshot !== undefined) node.applied = decodeState(ready.snapshot.data);
      for (const entry of ready.committedEntries) {
        if (entry.type === 'normal' && entry.data.byteLength > 0) {
          node.applied.push(decoder.decode(entry.data));
        }
      }
      raw.advance();
    }
  }

  with(id: string, action: (raw: RawNode) => void): void {
    const node = this.node(this.resolve(id));
    try {
      action(this.raw(node.id));
    } finally {
      this.process(node);
    }
  }

  canReach(from: string, to: string): boolean {
    if (this.nodes.get(from)?.raw === undefined || this.nodes.get(to)?.raw === undefined) {
      return false;
    }
    const a = this.groupOf.get(from);
    const b = this.groupOf.get(to);
    return a === undefined || b === undefined || a === b;
  }

  /** Delivers what is queued now; returns how many messages arrived. */
  deliverRound(): number {
    const batch = this.queue;
    this.queue = [];
    let delivered = 0;
    for (const message of batch) {
      if (!this.canReach(message.from, message.to)) continue;
      delivered++;
      this.with(message.to, (raw) => raw.step(message));
    }
    return delivered;
  }

  deliverAll(): void {
    for (let round = 0; this.queue.length > 0; round++) {
      assert.ok(round < ROUNDS_MAX, 'messages never quiesced');
      this.deliverRound();
    }
  }

  dropAll(): void {
    this.queue = [];
  }

  partition(groups: string[][]): void {
    this.groupOf = new Map();
    groups.forEach((group, index) => {
      for (const id of group) this.groupOf.set(id, index);
    });
  }

  heal(): void {
    this.groupOf = new Map();
  }
}

/** Splits a line into words, keeping "quoted strings" whole (quotes removed). */
function words(line: string): string[] {
  const out: string[] = [];
  const pattern = /"([^"]*)"|(\S+)/g;
  for (const match of line.matchAll(pattern)) out.push(match[1] ?? match[2]!);
  return out;
}

function repeat(arg: string | undefined): number {
  if (arg === undefined) return 1;
  const match = /^x(\d+)$/.exec(arg);
  assert.ok(match !== null, `expected xN, got ${arg}`);
  return Number(match[1]);
}

const CONF_TYPES: Record<string, ConfChangeType> = {
  'add-voter': 'addVoter',
  'add-learner': 'addLearner',
  promote: 'promoteLearner',
  remove: 'removeNode',
};

function parseConfigValue(value: string): number | boolean {
  if (value === 'true' || value === 'false') return value === 'true';
  const number = Number(value);
  assert.ok(Number.isFinite(number), `bad config value ${value}`);
  return number;
}

function compare(actual: unknown, op: string, expected: string, what: string): void {
  if (op === '=' || op === '!=') {
    const equal = String(actual) === expected;
    assert.ok(equal === (op === '='), `${what}: expected ${op} ${expected}, got ${String(actual)}`);
    return;
  }
  const a = Number(actual);
  const b = Number(expected);
  const ok = op === '>' ? a > b : op === '>=' ? a >= b : op === '<' ? a < b : a <= b;
  assert.ok(ok, `${what}: expected ${op} ${expected}, got ${String(actual)}`);
}

function splitCondition(text: string): [string, string, string] {
  const match = /^([\w.-]+)(>=|<=|!=|=|>|<)(.*)$/.exec(text);
  assert.ok(match !== null, `bad condition ${text}`);
  return [match[1]!, match[2]!, match[3]!];
}

function expectNode(scenario: Scenario, id: string, conditions: string[]): void {
  const raw = scenario.raw(id);
  const status = raw.status();
  const values: Record<string, unknown> = {
    role: status.role,
    term: status.term,
    lead: status.lead,
    vote: status.vote,
    commit: status.commit,
    applied: status.applied,
    first: status.firstIndex,
    last: status.lastIndex,
    voters: status.config.voters.join(','),
    learners: status.config.learners.join(','),
    leadTransferee: status.leadTransferee,
  };
  for (const condition of conditions) {
    const [key, op, value] = splitCondition(condition);
    assert.ok(key in values, `unknown node key ${key}`);
    compare(values[key], op, value, `node ${id} ${key}`);
  }
}

function matchesEndpoint(pattern: string, id: string): boolean {
  return pattern === '*' || pattern === id;
}

function runExpect(scenario: Scenario, args: string[]): void {
  const [what, ...rest] = args;
  switch (what) {
    case 'leader': {
      const [id, termWord, term] = rest;
      assert.equal(termWord, 'term');
      expectNode(scenario, id!, ['role=leader', `term=${term}`, `lead=${id}`]);
      return;
    }
    case 'one-leader': {
      const ids = rest.filter((word) => !word.startsWith('term'));
      const termCondition = rest.find((word) => word.startsWith('term'));
      const leaders = ids.filter((id) => scenario.raw(id).status().role === 'leader');
      assert.equal(leaders.length, 1, `expected one leader among ${ids}, got ${leaders}`);
      if (termCondition !== undefined) expectNode(scenario, leaders[0]!, [termCondition]);
      return;
    }
    case 'progress': {
      const [leader, peer, ...conditions] = rest;
      const progress = scenario.raw(leader!).status().progress[peer!];
      assert.ok(progress !== undefined, `leader ${leader} has no progress for ${peer}`);
      for (const condition of conditions) {
        const [key, op, value] = splitCondition(condition);
        assert.ok(key in progress, `unknown progress key ${key}`);
        compare(progress[key as keyof typeof progress], op, value, `progress ${peer} ${key}`);
      }
      return;
    }
    case 'counter': {
      const [id, condition] = rest;
      const [name, op, value] = splitCondition(condition!);
      compare(scenario.raw(id!).status().counters[name] ?? 0, op, value, `counter ${name}`);
      return;
    }
    case 'log': {
      const [id, ...entries] = rest;
      const actual = scenario
        .raw(id!)
        .logEntries()
        .map((entry) => {
          const data = entry.type === 'normal' ? decoder.decode(entry.data) : '<conf>';
          return data === ''
            ? `${entry.index}@${entry.term}`
            : `${entry.index}@${entry.term}:${data}`;
        });
      assert.deepEqual(actual, entries, `log of ${id}`);
      return;
    }
    case 'logs-equal': {
      const [first, ...others] = rest;
      const expected = scenario.raw(first!).logEntries();
      for (const id of others) {
        assert.deepEqual(scenario.raw(id).logEntries(), expected, `log of ${id} vs ${first}`);
      }
      return;
    }
    case 'applied': {
      const [id, ...data] = rest;
      assert.deepEqual(scenario.node(id!).applied, data, `state machine of ${id}`);
      return;
    }
    case 'sent':
    case 'not-sent': {
      const [route, type, times] = rest;
      const [from, to] = route!.split('->');
      const count = scenario.sent.filter(
        (m) => m.type === type && matchesEndpoint(from!, m.from) && matchesEndpoint(to!, m.to),
      ).length;
      if (what === 'not-sent') assert.equal(count, 0, `${type} ${route} was sent`);
      else if (times === undefined) assert.ok(count > 0, `${type} ${route} was not sent`);
      else assert.equal(count, repeat(times), `${type} ${route} count`);
      return;
    }
    default:
      expectNode(scenario, what!, rest);
  }
}

function runCommand(scenario: Scenario, args: string[]): void {
  const [command, ...rest] = args;
  switch (command) {
    case 'cluster': {
      let voters: string[] = [];
      let learners: string[] = [];
      const config: Record<string, number | boolean> = {};
      for (const arg of rest) {
        const [key, value] = arg.split('=') as [string, string];
        if (key === 'voters') voters = value.split(',');
        else if (key === 'learners') learners = value.split(',');
        else config[key] = parseConfigValue(value);
      }
      scenario.cluster(voters, learners, config as Partial<RaftConfig>);
      return;
    }
    case 'add-node':
      scenario.start(rest[0]!, new MemoryStorage());
      return;
    case 'tick': {
      const ids = rest[0] === 'all' ? scenario.live().map((node) => node.id) : [rest[0]!];
      for (let i = repeat(rest[1]); i > 0; i--) {
        for (const id of ids) scenario.with(id, (raw) => raw.tick());
      }
      return;
    }
    case 'run':
      for (let i = repeat(rest[0]); i > 0; i--) {
        for (const node of scenario.live()) scenario.with(node.id, (raw) => raw.tick());
        scenario.deliverAll();
      }
      return;
    case 'campaign':
      scenario.with(rest[0]!, (raw) => raw.campaign());
      return;
    case 'propose':
      scenario.with(rest[0]!, (raw) => raw.propose(encoder.encode(rest[1]!)));
      return;
    case 'conf': {
      const type = CONF_TYPES[rest[1]!];
      assert.ok(type !== undefined, `unknown conf change ${rest[1]}`);
      scenario.with(rest[0]!, (raw) => raw.proposeConfChange({ type, nodeId: rest[2]! }));
      return;
    }
    case 'transfer':
      scenario.with(rest[0]!, (raw) => raw.transferLeader(rest[1]!));
      return;
    case 'compact':
      scenario.with(rest[0]!, (raw) => {
        const index = rest[1] === 'applied' ? raw.status().applied : Number(rest[1]);
        const state = scenario.node(raw.id).applied;
        raw.compact(index, encodeState(state));
      });
      return;
    case 'deliver':
      if (rest[0] === 'all') scenario.deliverAll();
      else for (let i = repeat(rest[0]); i > 0; i--) scenario.deliverRound();
      return;
    case 'drop':
      assert.equal(rest[0], 'all');
      scenario.dropAll();
      return;
    case 'partition': {
      const groups: string[][] = [[]];
      for (const word of rest) {
        if (word === '|') groups.push([]);
        else groups.at(-1)!.push(word);
      }
      scenario.partition(groups);
      return;
    }
    case 'heal':
      scenario.heal();
      return;
    case 'crash':
      scenario.held.delete(rest[0]!);
      scenario.crash(rest[0]!);
      return;
    case 'hold':
      scenario.held.add(rest[0]!);
      return;
    case 'release':
      scenario.held.delete(rest[0]!);
      scenario.process(scenario.node(rest[0]!));
      return;
    case 'restart':
      scenario.restart(rest[0]!);
      return;
    default:
      assert.fail(`unknown command ${command}`);
  }
}

function runScript(text: string): void {
  const scenario = new Scenario();
  const lines = text.split('\n');
  lines.forEach((raw, lineIndex) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const where = `line ${lineIndex + 1}: ${line}`;
    try {
      const [body, outcome] = line.split('=>').map((part) => part.trim()) as [string, string?];
      const args = words(body);
      if (args[0] === 'expect') {
        runExpect(scenario, args.slice(1));
        return;
      }
      scenario.sent = [];
      if (outcome === undefined) {
        runCommand(scenario, args);
        return;
      }
      const [kind, reason] = words(outcome);
      assert.equal(kind, 'error', `bad outcome ${outcome}`);
      assert.throws(
        () => runCommand(scenario, args),
        (error) => error instanceof RaftProposalError && error.reason === reason,
        `expected RaftProposalError(${reason})`,
      );
    } catch (error) {
      if (error instanceof Error) error.message = `${where}\n${error.message}`;
      throw error;
    }
  });
}

const files = readdirSync(SCENARIO_DIR)
  .filter((name) => name.endsWith('.txt'))
  .sort();

test('the scenario directory is not empty', () => {
  assert.ok(files.length >= 10, `only ${files.length} scenarios found`);
});

for (const file of files) {
  test(`scenario ${file}`, () => {
    runScript(readFileSync(join(SCENARIO_DIR, file), 'utf8'));
  });
}

test('the interpreter fails a wrong expectation (scripts can fail)', () => {
  const script = 'cluster voters=1,2,3\ncampaign 1\ndeliver all\nexpect leader 2 term 2\n';
  assert.throws(() => runScript(script), /line 4/);
  assert.throws(() => runScript('cluster voters=1\ncampaign 1\nexpect log 1 2@5\n'), /log of 1/);
});
