/**
 * Unit tests of the Raft core's parts and of RawNode contracts that scenario scripts do not
 * show well: config validation, storage, the log's unstable/stable split, flow control and
 * the byte bounds, the Ready/advance contract, message validation, typed errors.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  DEFAULT_RAFT_CONFIG,
  randomizedElectionTicks,
  validateRaftConfig,
} from '../../src/core/membership/raft/config.ts';
import { RaftLog } from '../../src/core/membership/raft/log.ts';
import { Inflights, Progress } from '../../src/core/membership/raft/progress.ts';
import { quorum, RaftProposalError } from '../../src/core/membership/raft/raft.ts';
import { RawNode } from '../../src/core/membership/raft/raw-node.ts';
import { MemoryStorage, persistReady } from '../../src/core/membership/raft/storage.ts';
import type { Entry, Message, Ready } from '../../src/core/membership/raft/types.ts';
import {
  decodeConfChange,
  encodeConfChange,
  makeMessage,
} from '../../src/core/membership/raft/types.ts';
import { seededRandom } from '../../src/core/runtime/index.ts';

const text = new TextEncoder();

function entry(index: number, term: number, data = ''): Entry {
  return { index, term, type: 'normal', data: text.encode(data) };
}

function throwsCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isRdbnetError(error, code), `expected ${code}, got ${String(error)}`);
    return true;
  };
}

function throwsReason(reason: string, code: ErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof RaftProposalError, `expected RaftProposalError, got ${error}`);
    assert.equal(error.reason, reason);
    assert.equal(error.code, code);
    return true;
  };
}

// ------------------------------------------------------------------ a tiny manual cluster

interface TestNode {
  raw: RawNode;
  storage: MemoryStorage;
  committed: Entry[];
}

class TestCluster {
  readonly nodes = new Map<string, TestNode>();
  /** Messages produced but not delivered. */
  outbox: Message[] = [];
  /** Every Ready handled, per node, for contract checks. */
  readonly readies: Array<{ id: string; ready: Ready }> = [];

  constructor(voters: string[], config: Parameters<typeof validateRaftConfig>[0] = {}) {
    for (const id of voters) {
      const storage = MemoryStorage.bootstrap(voters);
      const raw = new RawNode({ id, storage, config, random: seededRandom(id.charCodeAt(0)) });
      this.nodes.set(id, { raw, storage, committed: [] });
    }
  }

  node(id: string): TestNode {
    return this.nodes.get(id)!;
  }

  process(id: string): void {
    const node = this.node(id);
    while (node.raw.hasReady()) {
      const ready = node.raw.ready();
      this.readies.push({ id, ready });
      persistReady(node.storage, ready);
      this.outbox.push(...ready.messages);
      node.committed.push(...ready.committedEntries);
      node.raw.advance();
    }
  }

  act(id: string, action: (raw: RawNode) => void): void {
    action(this.node(id).raw);
    this.process(id);
  }

  /** Delivers until quiet, skipping messages `drop` selects. */
  deliver(drop: (m: Message) => boolean = () => false): void {
    for (let round = 0; this.outbox.length > 0; round++) {
      assert.ok(round < 1000, 'no quiescence');
      const batch = this.outbox;
      this.outbox = [];
      for (const m of batch) {
        if (!drop(m)) this.act(m.to, (raw) => raw.step(m));
      }
    }
  }

  elect(id: string): void {
    this.act(id, (raw) => raw.campaign());
    this.deliver();
    assert.equal(this.node(id).raw.basicStatus().role, 'leader');
  }
}

// ------------------------------------------------------------------ config

describe('raft config', () => {
  test('defaults are the documented values and pass validation', () => {
    const config = validateRaftConfig();
    assert.deepEqual(config, { ...DEFAULT_RAFT_CONFIG });
    assert.equal(config.electionTicks, 10);
    assert.equal(config.heartbeatTicks, 1);
    assert.equal(config.preVote, true);
    assert.equal(config.checkQuorum, true);
  });

  test('invalid values are refused with RDB_CONFIG_INVALID', () => {
    const bad = [
      { heartbeatTicks: 10 },
      { electionTicks: 1 },
      { electionTicks: 10.5 },
      { maxInflightMsgs: 0 },
      { maxSizePerMsgBytes: -1 },
      { maxEntryBytes: 2 * 1024 * 1024 },
      { preVote: 'yes' as unknown as boolean },
      { electionTickz: 10 } as Record<string, number>,
    ];
    for (const overrides of bad) {
      assert.throws(() => validateRaftConfig(overrides), throwsCode(ErrorCode.ConfigInvalid));
    }
  });

  test('randomized election timeout covers [electionTicks, 2 * electionTicks)', () => {
    const config = validateRaftConfig();
    const random = seededRandom(1);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(randomizedElectionTicks(config, random));
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      Array.from({ length: 10 }, (_, i) => 10 + i),
    );
  });
});

// ------------------------------------------------------------------ storage and log

describe('MemoryStorage', () => {
  test('append replaces a conflicting suffix and keeps the rest', () => {
    const storage = MemoryStorage.bootstrap(['1']);
    storage.append([entry(2, 1), entry(3, 1), entry(4, 1)]);
    storage.append([entry(3, 2)]);
    assert.equal(storage.lastIndex(), 3);
    assert.equal(storage.term(3), 2);
    assert.equal(storage.term(1), 1, 'the snapshot index keeps its term');
    assert.equal(storage.term(0), undefined);
    assert.equal(storage.term(4), undefined);
  });

  test('entries respect maxBytes but return at least one', () => {
    const storage = MemoryStorage.bootstrap(['1']);
    storage.append([entry(2, 1, 'aaaa'), entry(3, 1, 'bbbb'), entry(4, 1, 'cccc')]);
    assert.equal(storage.entries(2, 5, 1).length, 1);
    assert.equal(storage.entries(2, 5, 2 * (24 + 4)).length, 2);
    assert.equal(storage.entries(2, 5, Number.MAX_SAFE_INTEGER).length, 3);
  });

  test('snapshot then compaction keeps the log readable after the compaction point', () => {
    const storage = MemoryStorage.bootstrap(['1']);
    storage.append([entry(2, 1), entry(3, 2), entry(4, 2)]);
    storage.setHardState({ term: 2, vote: '1', commit: 4 });
    const snapshot = storage.createSnapshot(3, { voters: ['1'], learners: [] }, text.encode('s'));
    assert.deepEqual(snapshot.metadata, {
      index: 3,
      term: 2,
      confState: { voters: ['1'], learners: [] },
    });
    storage.compact(2);
    assert.equal(storage.firstIndex(), 3);
    assert.equal(storage.term(2), 1);
    assert.throws(() => storage.compact(4), throwsCode(ErrorCode.Usage));
    assert.throws(
      () => storage.createSnapshot(3, { voters: [], learners: [] }, new Uint8Array()),
      throwsCode(ErrorCode.Usage),
    );
    // A RawNode restarting over it starts from the snapshot, not from firstIndex - 1.
    const raw = new RawNode({ id: '1', storage, random: seededRandom(1) });
    assert.equal(raw.basicStatus().applied, 3);
    assert.equal(raw.basicStatus().commit, 4);
  });
});

describe('RaftLog', () => {
  function logWith(terms: number[]): RaftLog {
    const storage = MemoryStorage.bootstrap(['1']);
    storage.append(terms.map((term, i) => entry(i + 2, term)));
    return new RaftLog(storage, Number.MAX_SAFE_INTEGER);
  }

  test('findConflictByTerm skips every index whose term is too high', () => {
    // Indexes 2..9 with terms 1 1 1 4 4 5 5 6 (index 1 is the snapshot, term 1).
    const log = logWith([1, 1, 1, 4, 4, 5, 5, 6]);
    assert.deepEqual(log.findConflictByTerm(9, 3), { index: 4, term: 1 });
    assert.deepEqual(log.findConflictByTerm(9, 5), { index: 8, term: 5 });
    assert.deepEqual(log.findConflictByTerm(9, 6), { index: 9, term: 6 });
    assert.deepEqual(log.findConflictByTerm(9, 0), { index: 0, term: 0 });
  });

  test('maybeAppend refuses a gap, appends, truncates a conflict, and bounds commit', () => {
    const log = logWith([1, 1]);
    assert.equal(log.maybeAppend(3, 2, 3, [entry(4, 2)]), undefined, 'term mismatch at 3');
    assert.equal(log.maybeAppend(3, 1, 10, [entry(4, 2), entry(5, 2)]), 5);
    assert.equal(log.committed, 5, 'commit bounded by the last new entry');
    assert.throws(() => log.maybeAppend(3, 1, 5, [entry(4, 3)]), /conflicts with committed/);
  });

  test('unstable entries are handed out once and forgotten when stable', () => {
    const log = logWith([1]);
    log.append([entry(3, 2), entry(4, 2)]);
    assert.deepEqual(
      log.nextUnstableEntries().map((e) => e.index),
      [3, 4],
    );
    log.acceptUnstable();
    assert.equal(log.hasNextUnstableEntries(), false);
    log.append([entry(5, 2)]);
    assert.deepEqual(
      log.nextUnstableEntries().map((e) => e.index),
      [5],
    );
    // A replaced entry is not marked stable by a stale acknowledgement.
    log.append([entry(4, 3)]);
    log.stableTo(4, 2);
    assert.deepEqual(
      log.nextUnstableEntries().map((e) => `${e.index}@${e.term}`),
      ['4@3'],
    );
    assert.equal(log.lastIndex(), 4);
  });

  test('commit beyond the last index is an invariant violation', () => {
    const log = logWith([1]);
    assert.throws(() => log.commitTo(5), /invariant violated/);
  });
});

describe('flow control primitives', () => {
  test('Inflights is a bounded FIFO freed by acknowledgement', () => {
    const inflights = new Inflights(3);
    inflights.add(5);
    inflights.add(7);
    inflights.add(9);
    assert.equal(inflights.full(), true);
    assert.throws(() => inflights.add(11), /overflow/);
    inflights.freeLE(7);
    assert.equal(inflights.size, 1);
    inflights.add(11);
    inflights.add(12);
    assert.equal(inflights.full(), true);
  });

  test('Progress in probe sends one message at a time; replicate streams', () => {
    const pr = new Progress(5, 2, false);
    pr.sentEntries(1, 5);
    assert.equal(pr.isPaused(), true);
    assert.equal(pr.maybeDecrTo(4, 2), true, 'the answer to the latest probe counts');
    assert.equal(pr.next, 3);
    assert.equal(pr.maybeDecrTo(4, 2), false, 'a stale rejection does not');
    pr.maybeUpdate(4);
    pr.becomeReplicate();
    assert.equal(pr.next, 5);
    pr.sentEntries(2, 6);
    pr.sentEntries(1, 7);
    assert.equal(pr.isPaused(), true, 'window of 2 full');
    pr.inflights.freeLE(6);
    assert.equal(pr.inflights.full(), false);
  });

  test('quorum sizes', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(quorum), [1, 2, 2, 3, 3, 4, 4]);
  });
});

// ------------------------------------------------------------------ RawNode contracts

describe('RawNode', () => {
  test('a single voter elects itself and commits only what is durable', () => {
    const cluster = new TestCluster(['1']);
    const node = cluster.node('1');
    node.raw.campaign();
    assert.equal(node.raw.basicStatus().role, 'leader');
    const first = node.raw.ready();
    assert.equal(first.softState?.role, 'leader');
    assert.deepEqual(
      first.entries.map((e) => `${e.index}@${e.term}`),
      ['2@2'],
    );
    assert.equal(first.committedEntries.length, 0, 'not committed before it is persisted');
    assert.equal(first.mustSync, true);
    persistReady(node.storage, first);
    node.raw.advance();
    const second = node.raw.ready();
    assert.deepEqual(
      second.committedEntries.map((e) => e.index),
      [2],
    );
    assert.equal(second.hardState?.commit, 2);
    assert.equal(second.mustSync, false, 'a commit-only change needs no fsync');
    persistReady(node.storage, second);
    node.raw.advance();
    assert.equal(node.raw.hasReady(), false);
  });

  test('ready/advance misuse is a usage error', () => {
    const cluster = new TestCluster(['1']);
    const raw = cluster.node('1').raw;
    assert.throws(() => raw.advance(), throwsCode(ErrorCode.Usage));
    raw.campaign();
    raw.ready();
    assert.throws(() => raw.ready(), throwsCode(ErrorCode.Usage));
    assert.equal(raw.hasReady(), false, 'nothing new until advance');
  });

  test('a follower acknowledges entries in the same Ready that carries them to persist', () => {
    const cluster = new TestCluster(['1', '2', '3']);
    cluster.elect('1');
    cluster.readies.length = 0;
    cluster.act('1', (raw) => raw.propose(text.encode('x')));
    cluster.deliver();
    for (const { ready } of cluster.readies) {
      for (const ack of ready.messages.filter((m) => m.type === 'MsgAppResp' && !m.reject)) {
        // Whatever the ack covers was handed out to persist in this or an earlier Ready.
        const persisted = cluster.readies
          .filter((r) => r.id === ack.from)
          .flatMap((r) => r.ready.entries.map((e) => e.index));
        assert.ok(ack.index <= Math.max(1, ...persisted), `ack ${ack.index} before persist`);
      }
    }
    for (const id of ['1', '2', '3']) {
      assert.deepEqual(
        cluster.node(id).committed.map((e) => new TextDecoder().decode(e.data)),
        ['', 'x'],
      );
    }
  });

  test('flow control: at most maxInflightMsgs MsgApp to a silent follower', () => {
    const cluster = new TestCluster(['1', '2', '3'], { maxInflightMsgs: 2 });
    cluster.elect('1');
    const toThree = () => cluster.outbox.filter((m) => m.to === '3' && m.type === 'MsgApp');
    for (let i = 0; i < 6; i++) cluster.act('1', (raw) => raw.propose(text.encode(`p${i}`)));
    assert.equal(toThree().filter((m) => m.entries.length > 0).length, 2);
    assert.equal(cluster.node('1').raw.status().progress['3']?.inflightMsgs, 2);
    // A heartbeat response on a full window triggers an empty MsgApp, never more entries.
    cluster.outbox = [];
    cluster.act('1', (raw) =>
      raw.step(makeMessage({ type: 'MsgHeartbeatResp', from: '3', to: '1', term: 2 })),
    );
    const sent = toThree();
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.entries.length, 0);
    // Delivering everything drains the backlog.
    cluster.deliver();
    assert.equal(cluster.node('3').committed.length, 7);
  });

  test('maxSizePerMsgBytes bounds the entries in one MsgApp', () => {
    const cluster = new TestCluster(['1', '2'], { maxSizePerMsgBytes: 100, maxEntryBytes: 50 });
    cluster.elect('1');
    const payload = text.encode('x'.repeat(40));
    // Cut 2 off while the entries pile up, then let it catch up.
    for (let i = 0; i < 5; i++) cluster.act('1', (raw) => raw.propose(payload));
    cluster.outbox = [];
    cluster.act('1', (raw) => raw.reportUnreachable('2'));
    cluster.act('1', (raw) =>
      raw.step(makeMessage({ type: 'MsgHeartbeatResp', from: '2', to: '1', term: 2 })),
    );
    cluster.deliver((m) => {
      if (m.type === 'MsgApp') assert.ok(m.entries.length <= 1, 'one 64-byte entry per 100 bytes');
      return false;
    });
    assert.equal(cluster.node('2').committed.length, 6);
  });

  test('proposal bounds: entry size and uncommitted bytes, as typed errors', () => {
    const cluster = new TestCluster(['1', '2', '3'], {
      maxEntryBytes: 10,
      maxSizePerMsgBytes: 10,
      maxUncommittedEntriesBytes: 25,
    });
    cluster.elect('1');
    const raw = cluster.node('1').raw;
    assert.throws(
      () => raw.propose(new Uint8Array(11)),
      throwsReason('entry-too-large', ErrorCode.FrameTooLarge),
    );
    raw.propose(new Uint8Array(10));
    raw.propose(new Uint8Array(10));
    assert.throws(
      () => raw.propose(new Uint8Array(10)),
      throwsReason('uncommitted-bytes-exceeded', ErrorCode.InflightLimit),
    );
    cluster.process('1');
    cluster.deliver();
    cluster.act('1', (r) => r.propose(new Uint8Array(10)));
  });

  test('a follower without a leader refuses proposals with a typed error', () => {
    const cluster = new TestCluster(['1', '2', '3']);
    assert.throws(
      () => cluster.node('2').raw.propose(text.encode('x')),
      throwsReason('no-leader', ErrorCode.NodeUnreachable),
    );
  });

  test('maxCommittedSizePerReadyBytes splits a long catch-up into bounded batches', () => {
    const cluster = new TestCluster(['1', '2', '3'], { maxCommittedSizePerReadyBytes: 100 });
    cluster.elect('1');
    for (let i = 0; i < 20; i++) cluster.act('1', (raw) => raw.propose(text.encode('0123456789')));
    cluster.readies.length = 0;
    cluster.deliver();
    const batches = cluster.readies
      .filter((r) => r.id === '2' && r.ready.committedEntries.length > 0)
      .map((r) => r.ready.committedEntries.length);
    assert.ok(
      batches.every((n) => n <= 3),
      `batches ${batches}`,
    );
    assert.equal(cluster.node('2').committed.length, 21);
  });

  test('malformed messages are typed errors, not state changes', () => {
    const cluster = new TestCluster(['1', '2', '3']);
    const raw = cluster.node('1').raw;
    const before = raw.basicStatus();
    const bad: Message[] = [
      makeMessage({ type: 'MsgApp', from: '2', to: '3', term: 2 }),
      makeMessage({ type: 'MsgBogus' as 'MsgApp', from: '2', to: '1', term: 2 }),
      makeMessage({ type: 'MsgHeartbeat', from: '2', to: '1', term: -1 }),
      makeMessage({ type: 'MsgHeartbeat', from: '2', to: '1', term: 0 }),
      makeMessage({
        type: 'MsgApp',
        from: '2',
        to: '1',
        term: 2,
        index: 1,
        entries: [entry(5, 2)],
      }),
      makeMessage({
        type: 'MsgApp',
        from: '2',
        to: '1',
        term: 2,
        index: 1,
        entries: [entry(2, 3)],
      }),
      makeMessage({ type: 'MsgSnap', from: '2', to: '1', term: 2 }),
      makeMessage({ type: 'MsgHeartbeat', from: '2', to: '1', term: 2, entries: [entry(2, 2)] }),
      makeMessage({ type: 'MsgTransferLeader', from: '2', to: '1', term: 2 }),
      makeMessage({ type: 'MsgHeartbeat', from: '1', to: '1', term: 2 }),
    ];
    for (const m of bad) {
      assert.throws(() => raw.step(m), throwsCode(ErrorCode.MessageMalformed), m.type);
    }
    assert.deepEqual(raw.basicStatus(), before);
  });

  test('a vote survives a restart: no second vote in the same term', () => {
    const storage = MemoryStorage.bootstrap(['1', '2', '3']);
    const config = { preVote: false };
    let raw = new RawNode({ id: '1', storage, config, random: seededRandom(1) });
    const vote = (from: string) =>
      makeMessage({ type: 'MsgVote', from, to: '1', term: 5, index: 1, logTerm: 1 });
    raw.step(vote('2'));
    let ready = raw.ready();
    assert.deepEqual(ready.hardState, { term: 5, vote: '2', commit: 1 });
    assert.equal(ready.messages[0]?.reject, false);
    persistReady(storage, ready);
    raw.advance();
    raw = new RawNode({ id: '1', storage, config, random: seededRandom(1) });
    raw.step(vote('3'));
    ready = raw.ready();
    assert.equal(ready.messages[0]?.type, 'MsgVoteResp');
    assert.equal(ready.messages[0]?.reject, true);
  });

  test('status reports per-peer progress and contact on the leader only', () => {
    const cluster = new TestCluster(['1', '2', '3']);
    cluster.elect('1');
    const leader = cluster.node('1').raw;
    for (let i = 0; i < 3; i++) cluster.act('1', (raw) => raw.tick());
    cluster.outbox = cluster.outbox.filter((m) => m.to !== '3');
    cluster.deliver();
    const status = leader.status();
    assert.equal(status.role, 'leader');
    assert.equal(status.progress['2']?.state, 'replicate');
    assert.equal(status.progress['2']?.match, 2);
    assert.equal(status.progress['2']?.ticksSinceContact, 0);
    assert.equal(status.progress['3']?.ticksSinceContact, 3);
    assert.deepEqual(cluster.node('2').raw.status().progress, {});
  });

  test('compact: only applied indexes, and compactionDue after the threshold', () => {
    const cluster = new TestCluster(['1'], {
      compactionThresholdEntries: 5,
      compactionRetainEntries: 2,
    });
    cluster.elect('1');
    const node = cluster.node('1');
    for (let i = 0; i < 3; i++) cluster.act('1', (raw) => raw.propose(text.encode(`e${i}`)));
    assert.equal(node.raw.compactionDue(), false);
    for (let i = 0; i < 3; i++) cluster.act('1', (raw) => raw.propose(text.encode(`f${i}`)));
    assert.equal(node.raw.basicStatus().applied, 8);
    assert.equal(node.raw.compactionDue(), true);
    assert.throws(() => node.raw.compact(9, new Uint8Array()), throwsCode(ErrorCode.Usage));
    const snapshot = node.raw.compact(8, text.encode('state'));
    assert.equal(snapshot.metadata.index, 8);
    assert.deepEqual(snapshot.metadata.confState, { voters: ['1'], learners: [] });
    assert.equal(node.storage.firstIndex(), 7, 'two entries retained before the snapshot');
    assert.equal(node.raw.compactionDue(), false);
    assert.throws(() => node.raw.compact(8, new Uint8Array()), throwsCode(ErrorCode.Usage));
  });

  test('conf changes encode and decode; garbage is a typed error', () => {
    const change = { type: 'promoteLearner' as const, nodeId: 'n7' };
    assert.deepEqual(decodeConfChange(encodeConfChange(change)), change);
    for (const garbage of ['nope', '{"type":"explode","nodeId":"1"}', '{"type":"addVoter"}']) {
      assert.throws(
        () => decodeConfChange(text.encode(garbage)),
        throwsCode(ErrorCode.MessageMalformed),
      );
    }
  });

  test('a learner is never asked to vote and never campaigns', () => {
    const storage = MemoryStorage.bootstrap(['1', '2'], ['3']);
    const learner = new RawNode({ id: '3', storage, random: seededRandom(3) });
    for (let i = 0; i < 100; i++) learner.tick();
    learner.campaign();
    assert.equal(learner.basicStatus().role, 'follower');
    assert.equal(learner.basicStatus().term, 1);
    const voter = new RawNode({
      id: '1',
      storage: MemoryStorage.bootstrap(['1', '2'], ['3']),
      random: seededRandom(1),
    });
    voter.campaign();
    const requests = voter.ready().messages;
    assert.deepEqual(
      requests.map((m) => `${m.type}->${m.to}`),
      ['MsgPreVote->2'],
    );
  });
});
