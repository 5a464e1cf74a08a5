/**
 * The pure decisions that tie Raft membership to gossip membership: which dead (or
 * missing) voter the leader removes, how long a voter has been missing from gossip, and
 * whether a process may take a node id that gossip knows.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEAD_VOTER_MIN_VOTERS,
  deadVoterToRemove,
  withMissingVoters,
} from '../../src/core/cluster/dead-voters.ts';
import { idClaim } from '../../src/core/cluster/id-claims.ts';
import type { GossipLiveness } from '../../src/core/cluster/init.ts';

const AFTER_MS = 30_000;

/** "a=alive b=dead:40000" → gossip entries (inStateMs after the colon, default 0). */
function gossip(text: string): GossipLiveness[] {
  return text
    .split(/\s+/)
    .filter((cell) => cell !== '')
    .map((cell) => {
      const [id, rest] = cell.split('=') as [string, string];
      const [state, ms, address] = rest.split(':') as [string, string?, string?];
      return { id, state, inStateMs: Number(ms ?? 0), address: address ?? `${id}-address` };
    });
}

describe('deadVoterToRemove', () => {
  const five = ['a', 'b', 'c', 'd', 'e'];

  test('a voter dead for longer than the window is removed, the longest dead first', () => {
    const decision = deadVoterToRemove(
      'a',
      five,
      gossip('a=alive b=alive c=alive d=dead:40000 e=dead:50000'),
      AFTER_MS,
    );
    assert.deepEqual(decision, { remove: 'e', deadForMs: 50_000, state: 'dead' });
  });

  test('not before the window', () => {
    const decision = deadVoterToRemove(
      'a',
      five,
      gossip('a=alive b=alive c=alive d=alive e=dead:29999'),
      AFTER_MS,
    );
    assert.equal(decision.remove, null);
  });

  test('a voter missing from gossip for longer than the window counts as dead', () => {
    const decision = deadVoterToRemove(
      'a',
      five,
      gossip('a=alive b=alive c=alive d=alive e=missing:31000'),
      AFTER_MS,
    );
    assert.deepEqual(decision, { remove: 'e', deadForMs: 31_000, state: 'missing' });
  });

  test('the same quorum rules hold for a missing voter', () => {
    // Three voters: never below DEAD_VOTER_MIN_VOTERS.
    const three = deadVoterToRemove(
      'a',
      ['a', 'b', 'c'],
      gossip('a=alive b=alive c=missing:60000'),
      AFTER_MS,
    );
    assert.equal(three.remove, null);
    assert.equal(three.remove === null && three.candidate, 'c');
    assert.match(
      three.remove === null ? three.reason : '',
      new RegExp(`minimum is ${DEAD_VOTER_MIN_VOTERS}`),
    );
    // Five voters, two of the remaining four not alive: no majority of the new set.
    const five2 = deadVoterToRemove(
      'a',
      five,
      gossip('a=alive b=alive c=suspect d=left:1000 e=missing:60000'),
      AFTER_MS,
    );
    assert.equal(five2.remove, null);
    assert.match(five2.remove === null ? five2.reason : '', /2 are alive; a majority needs 3/);
  });

  test('a voter that left gossip (a clean stop) is not removed', () => {
    const decision = deadVoterToRemove(
      'a',
      five,
      gossip('a=alive b=alive c=alive d=alive e=left:600000'),
      AFTER_MS,
    );
    assert.equal(decision.remove, null);
  });
});

describe('withMissingVoters', () => {
  test('adds voters gossip does not list, with the time since they were first missed', () => {
    const since = new Map<string, number>();
    const view = gossip('a=alive b=alive');
    const first = withMissingVoters('a', ['a', 'b', 'c', 'd'], view, since, 1000);
    assert.deepEqual(
      first.filter((m) => m.state === 'missing').map((m) => `${m.id}:${m.inStateMs}`),
      ['c:0', 'd:0'],
    );
    const later = withMissingVoters('a', ['a', 'b', 'c', 'd'], view, since, 4000);
    assert.deepEqual(
      later.filter((m) => m.state === 'missing').map((m) => `${m.id}:${m.inStateMs}`),
      ['c:3000', 'd:3000'],
    );
    // d shows up in gossip: its clock is dropped; gone again, it starts over.
    withMissingVoters('a', ['a', 'b', 'c', 'd'], gossip('a=alive b=alive d=alive'), since, 5000);
    assert.deepEqual([...since.keys()], ['c']);
    const again = withMissingVoters('a', ['a', 'b', 'c', 'd'], view, since, 6000);
    assert.deepEqual(
      again.filter((m) => m.state === 'missing').map((m) => `${m.id}:${m.inStateMs}`),
      ['c:5000', 'd:0'],
    );
    // No longer a voter: forgotten.
    withMissingVoters('a', ['a', 'b', 'd'], view, since, 7000);
    assert.deepEqual([...since.keys()], ['d']);
  });

  test('this node is never missing, even when its own gossip does not list it', () => {
    const since = new Map<string, number>();
    const out = withMissingVoters('a', ['a', 'b'], gossip('b=alive'), since, 0);
    assert.deepEqual(
      out.map((m) => m.id),
      ['b'],
    );
  });
});

describe('idClaim', () => {
  const WINDOW_MS = 5000;
  const cases: [string, string, string, boolean | 'live' | 'recent'][] = [
    ['an id gossip does not know', 'x=alive:0:x-address', 'n2-new', true],
    ['the same address (a restart in place)', 'n2=alive:0:n2-old', 'n2-old', true],
    ['alive elsewhere', 'n2=alive:0:n2-old', 'n2-new', 'live'],
    ['suspect elsewhere', 'n2=suspect:0:n2-old', 'n2-new', 'live'],
    ['dead elsewhere within the window', 'n2=dead:4999:n2-old', 'n2-new', 'recent'],
    ['left elsewhere within the window', 'n2=left:100:n2-old', 'n2-new', 'recent'],
    ['dead elsewhere past the window', 'n2=dead:5000:n2-old', 'n2-new', true],
    ['left elsewhere past the window', 'n2=left:60000:n2-old', 'n2-new', true],
  ];
  for (const [what, view, address, expected] of cases) {
    test(`${what}: ${expected === true ? 'free' : `held (${expected})`}`, () => {
      const decision = idClaim('n2', address, gossip(view), WINDOW_MS);
      if (expected === true) {
        assert.deepEqual(decision, { allowed: true });
      } else {
        assert.equal(decision.allowed, false);
        assert.equal(!decision.allowed && decision.live, expected === 'live');
        assert.equal(!decision.allowed && decision.holder.address, 'n2-old');
      }
    });
  }
});
