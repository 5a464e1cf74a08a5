/**
 * The typed node config's idReclaimAfterMs: its default follows the gossip preset (it is
 * also gossip's deadReclaimMs), a config file may set it, and bad values are refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveNodeConfig } from '../../src/core/config/node-config.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { SWIM_PRESETS } from '../../src/core/membership/swim/index.ts';

const env = { RDBNET_HOME: '/nonexistent/rdbnet-home' };

test('idReclaimAfterMs defaults to the gossip preset reclaim time', () => {
  assert.equal(resolveNodeConfig({}, {}, env).idReclaimAfterMs, 5000);
  for (const preset of ['lan', 'wan', 'local'] as const) {
    assert.equal(
      resolveNodeConfig({}, { gossipPreset: preset }, env).idReclaimAfterMs,
      SWIM_PRESETS[preset].deadReclaimMs,
    );
  }
});

test('a config file sets idReclaimAfterMs; bad values are refused', () => {
  assert.equal(resolveNodeConfig({}, { idReclaimAfterMs: 0 }, env).idReclaimAfterMs, 0);
  assert.equal(resolveNodeConfig({}, { idReclaimAfterMs: 12_000 }, env).idReclaimAfterMs, 12_000);
  for (const bad of [-1, 1.5, 86_400_001]) {
    assert.throws(
      () => resolveNodeConfig({}, { idReclaimAfterMs: bad }, env),
      (error: unknown) =>
        isRdbnetError(error, ErrorCode.ConfigInvalid) && /idReclaimAfterMs/.test(error.message),
    );
  }
});
