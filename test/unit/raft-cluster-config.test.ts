/**
 * The cluster configuration state machine (ClusterConfig) and the Raft message wire codec:
 * what every member applies must come out the same everywhere, across snapshots, and Raft
 * messages must survive the protobuf round trip exactly.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { messageFromWire, messageToWire } from '../../src/core/cluster/raft-codec.ts';
import {
  aclRuleId,
  ClusterConfig,
  CONFIG_HISTORY_MAX,
  decodeConfigCommand,
  encodeConfigCommand,
} from '../../src/core/membership/raft/cluster-config.ts';
import { bootstrapSnapshot } from '../../src/core/membership/raft/storage.ts';
import {
  type Entry,
  encodeConfChange,
  MESSAGE_TYPES,
  type Message,
  makeMessage,
} from '../../src/core/membership/raft/types.ts';
import {
  decodeEnvelope,
  encodeEnvelope,
  type RaftBatch,
} from '../../src/core/protocol/messages.ts';

const founders = [
  { id: 'n2', address: '127.0.0.1:7002' },
  { id: 'n1', address: '127.0.0.1:7001' },
];

function founding(): ClusterConfig {
  const data = ClusterConfig.founding('c-1', founders).encode();
  return ClusterConfig.fromSnapshot(bootstrapSnapshot(['n1', 'n2'], [], data));
}

let nextIndex = 2;
function conf(
  type: 'addVoter' | 'addLearner' | 'promoteLearner' | 'removeNode',
  nodeId: string,
  term = 2,
): Entry {
  return { index: nextIndex++, term, type: 'confChange', data: encodeConfChange({ type, nodeId }) };
}
function command(data: Uint8Array, term = 2): Entry {
  return { index: nextIndex++, term, type: 'normal', data };
}

describe('ClusterConfig', () => {
  test('founding: same bytes whatever the order of the voters; members, addresses, history', () => {
    const a = ClusterConfig.founding('c-1', founders).encode();
    const b = ClusterConfig.founding('c-1', [...founders].reverse()).encode();
    assert.deepEqual(a, b);
    const config = founding();
    assert.equal(config.clusterId, 'c-1');
    assert.equal(config.appliedIndex, 1);
    assert.deepEqual(config.members(), [
      { id: 'n1', address: '127.0.0.1:7001', voter: true },
      { id: 'n2', address: '127.0.0.1:7002', voter: true },
    ]);
    assert.deepEqual(
      config.history.map((record) => `${record.index} ${record.op} ${record.nodeId}`),
      ['1 bootstrap n1', '1 bootstrap n2'],
    );
  });

  test('a join: address, learner, promotion; a leave removes member and address', () => {
    nextIndex = 2;
    const config = founding();
    assert.equal(
      config.apply({ index: nextIndex++, term: 2, type: 'normal', data: new Uint8Array(0) }),
      undefined,
    );
    config.apply(
      command(encodeConfigCommand({ op: 'setAddress', id: 'n3', address: '127.0.0.1:7003' })),
    );
    const added = config.apply(conf('addLearner', 'n3'));
    assert.equal(added?.confChange?.type, 'addLearner');
    assert.equal(added?.record.address, '127.0.0.1:7003');
    assert.deepEqual(config.confState(), { voters: ['n1', 'n2'], learners: ['n3'] });
    config.apply(conf('promoteLearner', 'n3'));
    assert.deepEqual(config.confState(), { voters: ['n1', 'n2', 'n3'], learners: [] });
    config.apply(conf('removeNode', 'n2'));
    assert.deepEqual(config.confState(), { voters: ['n1', 'n3'], learners: [] });
    assert.equal(config.addresses.has('n2'), false);
    assert.equal(config.appliedIndex, nextIndex - 1);
    assert.deepEqual(
      config.history.slice(2).map((record) => `${record.op} ${record.nodeId}`),
      ['setAddress n3', 'addLearner n3', 'promoteLearner n3', 'removeNode n2'],
    );
  });

  test('invalid or unknown entries are skipped the same way everywhere, and counted', () => {
    nextIndex = 2;
    const config = founding();
    const before = config.encode();
    assert.equal(config.apply(conf('addVoter', 'n1')), undefined); // already a member
    assert.equal(config.apply(conf('promoteLearner', 'n9')), undefined); // not a learner
    assert.equal(config.apply(conf('removeNode', 'n9')), undefined); // not a member
    assert.equal(config.apply(command(new TextEncoder().encode('{"op":"launch"}'))), undefined);
    assert.equal(config.apply(command(new TextEncoder().encode('not json'))), undefined);
    assert.equal(
      config.apply({ index: nextIndex++, term: 2, type: 'confChange', data: new Uint8Array([1]) }),
      undefined,
    );
    assert.equal(config.ignoredEntries, 6);
    assert.deepEqual(config.encode(), before);
    // The last voter stays, as in the Raft core.
    config.apply(conf('removeNode', 'n2'));
    assert.equal(config.apply(conf('removeNode', 'n1')), undefined);
    assert.deepEqual(config.confState(), { voters: ['n1'], learners: [] });
  });

  test('entries at or below the applied index are not applied twice (replay after restart)', () => {
    nextIndex = 2;
    const config = founding();
    const entry = conf('addLearner', 'n3');
    config.apply(entry);
    assert.equal(config.apply(entry), undefined);
    assert.equal(config.history.filter((record) => record.op === 'addLearner').length, 1);
  });

  test('snapshot round trip: a restored configuration applies the next entries identically', () => {
    nextIndex = 2;
    const a = founding();
    a.apply(command(encodeConfigCommand({ op: 'setSetting', key: 'zone', value: 'eu-1' })));
    a.apply(conf('addLearner', 'n3'));
    const snapshot = {
      metadata: { index: a.appliedIndex, term: 2, confState: a.confState() },
      data: a.encode(),
    };
    const b = ClusterConfig.fromSnapshot(snapshot);
    assert.deepEqual(b.encode(), a.encode());
    assert.equal(b.appliedIndex, a.appliedIndex);
    assert.equal(b.settings.get('zone'), 'eu-1');
    const next = conf('promoteLearner', 'n3');
    a.apply(next);
    b.apply(next);
    assert.deepEqual(b.encode(), a.encode());
    assert.deepEqual(b.confState(), a.confState());
  });

  test('history is bounded; the oldest records go first', () => {
    nextIndex = 2;
    const config = founding();
    for (let i = 0; i < CONFIG_HISTORY_MAX + 10; i++) {
      config.apply(
        command(
          encodeConfigCommand({
            op: 'setAddress',
            id: 'n1',
            address: `127.0.0.1:${8000 + (i % 1000)}`,
          }),
        ),
      );
    }
    assert.equal(config.history.length, CONFIG_HISTORY_MAX);
    assert.equal(config.history.at(-1)!.index, nextIndex - 1);
  });

  test('commands are checked when encoded and when decoded', () => {
    assert.throws(
      () => encodeConfigCommand({ op: 'setAddress', id: '', address: 'x' }),
      /without an id/,
    );
    assert.equal(
      decodeConfigCommand(new TextEncoder().encode('{"op":"setSetting","key":""}')),
      undefined,
    );
    assert.deepEqual(
      decodeConfigCommand(encodeConfigCommand({ op: 'setSetting', key: 'k', value: '' })),
      { op: 'setSetting', key: 'k', value: '' },
    );
  });

  test('a damaged snapshot is RDB_STORAGE_CORRUPT', () => {
    assert.throws(
      () =>
        ClusterConfig.fromSnapshot({
          metadata: { index: 3, term: 1, confState: { voters: ['n1'], learners: [] } },
          data: new TextEncoder().encode('{"v":2}'),
        }),
      { code: 'RDB_STORAGE_CORRUPT' },
    );
  });
});

describe('Raft message wire codec', () => {
  function roundTrip(messages: Message[]): Message[] {
    const batch: RaftBatch = { messages: messages.map(messageToWire), to: 'n2' };
    const decoded = decodeEnvelope(encodeEnvelope({ raftBatch: batch }));
    assert.equal(decoded.kind, 'raftBatch');
    const body = decoded.body as RaftBatch;
    assert.equal(body.to, 'n2');
    return body.messages.map((wire) => messageFromWire(wire, 'n1', 'n2'));
  }

  test('every message type survives, zero fields included', () => {
    const messages = MESSAGE_TYPES.map((type) =>
      makeMessage({ type, from: 'n1', to: 'n2', term: 3 }),
    );
    const back = roundTrip(messages);
    assert.deepEqual(
      back.map((m) => ({ ...m })),
      messages,
    );
  });

  test('entries, snapshots and every field come back exactly', () => {
    const entries: Entry[] = [
      { index: 5, term: 2, type: 'normal', data: new Uint8Array(0) },
      {
        index: 6,
        term: 3,
        type: 'confChange',
        data: encodeConfChange({ type: 'addLearner', nodeId: 'n4' }),
      },
    ];
    const app = makeMessage({
      type: 'MsgApp',
      from: 'n1',
      to: 'n2',
      term: 3,
      logTerm: 2,
      index: 4,
      commit: 4,
      entries,
    });
    const resp = makeMessage({
      type: 'MsgAppResp',
      from: 'n1',
      to: 'n2',
      term: 3,
      index: 9,
      reject: true,
      rejectHint: 7,
      logTerm: 2,
    });
    const vote = makeMessage({
      type: 'MsgVote',
      from: 'n1',
      to: 'n2',
      term: 4,
      index: 6,
      logTerm: 3,
      transfer: true,
    });
    const transfer = makeMessage({
      type: 'MsgTransferLeader',
      from: 'n1',
      to: 'n2',
      term: 3,
      transferee: 'n3',
    });
    const snap = makeMessage({
      type: 'MsgSnap',
      from: 'n1',
      to: 'n2',
      term: 3,
      snapshot: {
        metadata: { index: 10, term: 3, confState: { voters: ['n1', 'n2'], learners: ['n3'] } },
        data: new TextEncoder().encode('{"v":1}'),
      },
    });
    const back = roundTrip([app, resp, vote, transfer, snap]);
    const normalise = (value: unknown): unknown => {
      if (value instanceof Uint8Array) return [...value];
      if (Array.isArray(value)) return value.map(normalise);
      if (value !== null && typeof value === 'object') {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalise(v)]));
      }
      return value;
    };
    assert.deepEqual(back.map(normalise), [app, resp, vote, transfer, snap].map(normalise));
    for (const entry of back[0]!.entries) assert.ok(entry.data instanceof Uint8Array);
  });

  test('an unknown message or entry type is RDB_MESSAGE_MALFORMED', () => {
    const wire = messageToWire(
      makeMessage({ type: 'MsgHeartbeat', from: 'n1', to: 'n2', term: 1 }),
    );
    assert.throws(() => messageFromWire({ ...wire, type: 99 }, 'n1', 'n2'), {
      code: 'RDB_MESSAGE_MALFORMED',
    });
    assert.throws(
      () =>
        messageFromWire(
          { ...wire, entries: [{ index: 1, term: 1, type: 7 as 0, data: new Uint8Array(0) }] },
          'n1',
          'n2',
        ),
      { code: 'RDB_MESSAGE_MALFORMED' },
    );
  });
});

describe('the access control list in the configuration', () => {
  const add = (priority: number, source = '169.254.2.0/24') =>
    command(encodeConfigCommand({ op: 'aclAdd', rule: { source, action: 'deny', priority } }));

  test('adds, removes and the default apply the same everywhere; snapshots carry them', () => {
    const a = founding();
    const b = founding();
    const entries = [
      add(10),
      add(10, '169.254.3.0/24'), // the same priority: skipped by every member alike
      add(20, '::1'),
      command(encodeConfigCommand({ op: 'aclDefault', action: 'deny' })),
      command(encodeConfigCommand({ op: 'aclRemove', id: 'acl-nope' })), // no such rule: skipped
    ];
    for (const entry of entries) {
      a.apply(entry);
      b.apply(entry);
    }
    const first = entries[0]!.index;
    assert.deepEqual(
      a.acl.rules.map((rule) => [rule.id, rule.priority, rule.source]),
      [
        [aclRuleId(first), 10, '169.254.2.0/24'],
        [aclRuleId(entries[2]!.index), 20, '::1/128'],
      ],
    );
    assert.equal(a.acl.defaultAction, 'deny');
    assert.equal(a.ignoredEntries, 2);
    assert.deepEqual(b.encode(), a.encode());
    const restored = ClusterConfig.fromSnapshot({
      metadata: { index: a.appliedIndex, term: 2, confState: a.confState() },
      data: a.encode(),
    });
    assert.deepEqual(restored.acl, a.acl);
    const before = restored.acl;
    restored.apply(command(encodeConfigCommand({ op: 'aclRemove', id: aclRuleId(first) })));
    assert.notEqual(restored.acl, before, 'a new list is a new object (the node recompiles on it)');
    assert.deepEqual(
      restored.acl.rules.map((rule) => rule.id),
      [aclRuleId(entries[2]!.index)],
    );
  });

  test('a snapshot written before ACLs has the empty list, default allow', () => {
    const config = founding();
    assert.deepEqual(config.acl, { rules: [], defaultAction: 'allow' });
  });
});
