/**
 * clusterHealth: the rules of `rdbnet health`, as a table of situations — the node's gossip
 * view, the voters of its Raft configuration — and the status, quorum and node states that
 * follow.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clusterHealth } from '../../src/core/health/cluster-health.ts';
import type { GossipMember, NodeHealth } from '../../src/core/protocol/messages.ts';

function self(overrides: Partial<NodeHealth> = {}): NodeHealth {
  return {
    id: 'n1',
    address: 'n1:7000',
    state: 'alive',
    phi: 0,
    lastHeartbeatMs: 0,
    live: true,
    ready: true,
    problems: [],
    certDaysLeft: 300,
    hasCertificate: true,
    score: 1,
    ...overrides,
  };
}

/** "n2=alive n3=left" → gossip members (n1 itself first). */
function members(text: string): GossipMember[] {
  const others = text
    .split(/\s+/)
    .filter((cell) => cell !== '')
    .map((cell) => {
      const [id, state] = cell.split('=') as [string, string];
      return member(id, state, false);
    });
  return [member('n1', 'alive', true), ...others];
}

function member(id: string, state: string, isSelf: boolean): GossipMember {
  return {
    id,
    address: `${id}:7000`,
    state,
    incarnation: 0,
    rttMs: 1,
    phi: 0.5,
    score: 0.9,
    lastAckMs: 100,
    isSelf,
  };
}

function voters(...ids: string[]) {
  return ids.map((id) => ({ id, address: `${id}:7000` }));
}

/** The result as "status quorum | id=state …". */
function summary(reply: ReturnType<typeof clusterHealth>): string {
  return `${reply.status} ${reply.quorum ? 'quorum' : 'no-quorum'} | ${reply.nodes
    .map((node) => `${node.id}=${node.state}`)
    .join(' ')}`;
}

describe('clusterHealth', () => {
  const three = voters('n1', 'n2', 'n3');
  const table: [string, string, ReturnType<typeof voters> | null, string][] = [
    [
      'every voter alive',
      'n2=alive n3=alive',
      three,
      'healthy quorum | n1=alive n2=alive n3=alive',
    ],
    [
      'a voter suspect',
      'n2=alive n3=suspect',
      three,
      'degraded quorum | n1=alive n2=alive n3=suspect',
    ],
    ['a voter dead', 'n2=alive n3=dead', three, 'degraded quorum | n1=alive n2=alive n3=dead'],
    [
      'a voter that stopped cleanly (left in gossip, still a voter)',
      'n2=alive n3=left',
      three,
      'degraded quorum | n1=alive n2=alive n3=left',
    ],
    [
      'a voter gossip does not know (another key)',
      'n2=alive',
      three,
      'degraded quorum | n1=alive n2=alive n3=missing',
    ],
    [
      'only voters gossip does not know',
      '',
      three,
      'critical no-quorum | n1=alive n2=missing n3=missing',
    ],
    ['two voters left', 'n2=left n3=left', three, 'critical no-quorum | n1=alive n2=left n3=left'],
    [
      'two voters suspect: only alive counts for the majority',
      'n2=suspect n3=suspect',
      three,
      'critical no-quorum | n1=alive n2=suspect n3=suspect',
    ],
    [
      'a member that left and is no voter (removed by cluster leave)',
      'n2=alive n3=alive n4=left',
      three,
      'healthy quorum | n1=alive n2=alive n3=alive n4=left',
    ],
    [
      'a gossip member that is no voter, dead',
      'n2=alive n3=alive n4=dead',
      three,
      'degraded quorum | n1=alive n2=alive n3=alive n4=dead',
    ],
    ['alone, a single voter', '', voters('n1'), 'healthy quorum | n1=alive'],
    ['alone, outside a cluster', '', null, 'healthy quorum | n1=alive'],
    [
      'outside a cluster: a majority of the gossip members alive or suspect',
      'n2=suspect n3=alive',
      null,
      'degraded quorum | n1=alive n2=suspect n3=alive',
    ],
    [
      'outside a cluster: two of three dead',
      'n2=dead n3=dead',
      null,
      'critical no-quorum | n1=alive n2=dead n3=dead',
    ],
  ];
  for (const [what, view, voterList, expected] of table) {
    test(what, () => {
      assert.equal(
        summary(
          clusterHealth({
            self: self(),
            selfCritical: false,
            members: members(view),
            voters: voterList,
          }),
        ),
        expected,
      );
    });
  }

  test('voters not alive in gossip say why; missing ones carry their Raft address', () => {
    const reply = clusterHealth({
      self: self(),
      selfCritical: false,
      members: members('n2=left n4=dead'),
      voters: voters('n1', 'n2', 'n3', 'n5', 'n6'),
    });
    const problems = Object.fromEntries(reply.nodes.map((node) => [node.id, node.problems]));
    assert.deepEqual(problems, {
      n1: [],
      n2: ['n2 is a voter but left in gossip'],
      n4: ['n4 is dead'],
      n3: ['n3 is a voter that gossip does not know'],
      n5: ['n5 is a voter that gossip does not know'],
      n6: ['n6 is a voter that gossip does not know'],
    });
    const n3 = reply.nodes.find((node) => node.id === 'n3')!;
    assert.deepEqual([n3.address, n3.live, n3.ready, n3.score], ['n3:7000', false, false, 0]);
    assert.equal(reply.status, 'critical');
  });

  test('the node itself: not serving is critical, a certificate expiring soon degraded', () => {
    const stopping = clusterHealth({
      self: self({ state: 'stopping', ready: false, problems: ['node is stopping'] }),
      selfCritical: true,
      members: members('n2=alive n3=alive'),
      voters: three,
    });
    assert.equal(summary(stopping), 'critical no-quorum | n1=stopping n2=alive n3=alive');
    const expiring = clusterHealth({
      self: self({ problems: ['certificate expires in 3.0 days'] }),
      selfCritical: false,
      members: members('n2=alive n3=alive'),
      voters: three,
    });
    assert.equal(expiring.status, 'degraded');
    const alone = clusterHealth({
      self: self({ problems: ['certificate expires in 3.0 days'] }),
      selfCritical: false,
      members: [],
      voters: null,
    });
    assert.equal(summary(alone), 'degraded quorum | n1=alive');
  });
});
