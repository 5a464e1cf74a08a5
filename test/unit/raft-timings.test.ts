/**
 * Raft timings in milliseconds (what a node's config and presets hold) and the tick-based
 * Raft core config they become.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  RAFT_TIMINGS_LAN,
  RAFT_TIMINGS_PRESETS,
  RAFT_TIMINGS_WAN,
  raftCoreConfig,
  raftTimingsProblems,
} from '../../src/core/cluster/timings.ts';
import { DEFAULT_RAFT_CONFIG, validateRaftConfig } from '../../src/core/membership/raft/config.ts';

describe('raft timings', () => {
  test('every preset becomes a core config the core accepts, with the same timings', () => {
    for (const [name, raft] of Object.entries(RAFT_TIMINGS_PRESETS)) {
      assert.deepEqual(raftTimingsProblems(raft), [], name);
      const core = validateRaftConfig(raftCoreConfig(raft));
      assert.equal(core.electionTicks * raft.tickMs, raft.electionTimeoutMs, name);
      assert.equal(core.heartbeatTicks * raft.tickMs, raft.heartbeatIntervalMs, name);
      assert.equal(core.preVote, raft.preVote, name);
      assert.equal(core.checkQuorum, raft.checkQuorum, name);
    }
  });

  test('lan is the core default; wan counts 30 ticks of 100 ms per election', () => {
    assert.equal(raftCoreConfig(RAFT_TIMINGS_LAN).electionTicks, DEFAULT_RAFT_CONFIG.electionTicks);
    assert.equal(
      raftCoreConfig(RAFT_TIMINGS_LAN).heartbeatTicks,
      DEFAULT_RAFT_CONFIG.heartbeatTicks,
    );
    assert.equal(raftCoreConfig(RAFT_TIMINGS_WAN).electionTicks, 30);
    assert.equal(raftCoreConfig(RAFT_TIMINGS_WAN).heartbeatTicks, 3);
  });

  test('timings that cannot work together are reported field by field', () => {
    const problems = (overrides: Partial<typeof RAFT_TIMINGS_LAN>) =>
      raftTimingsProblems({ ...RAFT_TIMINGS_LAN, ...overrides }).map((p) => p.field);
    assert.deepEqual(problems({ electionTimeoutMs: 525 }), ['electionTimeoutMs']);
    assert.deepEqual(problems({ heartbeatIntervalMs: 500 }), ['heartbeatIntervalMs']);
    assert.deepEqual(problems({ heartbeatIntervalMs: 75 }), ['heartbeatIntervalMs']);
    assert.deepEqual(problems({ electionTimeoutMs: 50 }), [
      'electionTimeoutMs',
      'heartbeatIntervalMs',
    ]);
    assert.deepEqual(problems({ transferTimeoutMs: 400 }), ['transferTimeoutMs']);
    assert.deepEqual(problems({ forwardDeadlineMs: 4000 }), ['forwardDeadlineMs']);
  });
});
