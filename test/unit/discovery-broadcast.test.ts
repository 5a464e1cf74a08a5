import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { ProviderContext } from '../../src/core/discovery/provider.ts';
import {
  type BroadcastProvider,
  broadcastProvider,
} from '../../src/core/discovery/providers/broadcast.ts';
import {
  announcementKey,
  BROADCAST_PAYLOAD_BYTES_MAX,
  openAnnouncement,
  ReplayGuard,
  sealAnnouncement,
} from '../../src/core/discovery/providers/broadcast-codec.ts';
import { broadcastAddressOf } from '../../src/core/discovery/providers/lan.ts';
import { LiveNodeTable } from '../../src/core/discovery/providers/lan-table.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/runtime/index.ts';

const ctx: ProviderContext = {
  env: {},
  clock: systemClock,
  log: () => {},
  gossipKey: randomBytes(32),
};
const announcement = { id: 'n1', address: '127.0.0.1:7400', ttlMs: 3000, meta: { cluster: 'c1' } };

function syntaxError(message: RegExp) {
  return (error: unknown) =>
    isRdbnetError(error, 'RDB_DISCOVERY_SYNTAX') && message.test(error.message);
}

describe('broadcast announcement codec', () => {
  const key = announcementKey(randomBytes(32));
  const nonce = randomBytes(16);

  test('a sealed announcement opens with the same key, with its time and nonce', () => {
    const opened = openAnnouncement(
      key,
      sealAnnouncement(key, announcement, 1_700_000_000_000, nonce),
    );
    assert.deepEqual(opened, {
      ok: true,
      announcement,
      sentWallMs: 1_700_000_000_000,
      nonce: nonce.toString('hex'),
    });
  });

  test('another key is a stranger; the announcement key is not the gossip key itself', () => {
    const gossip = randomBytes(32);
    const packet = sealAnnouncement(announcementKey(gossip), announcement, 1, nonce);
    assert.deepEqual(openAnnouncement(announcementKey(randomBytes(32)), packet), {
      ok: false,
      reason: 'stranger',
    });
    assert.deepEqual(openAnnouncement(gossip, packet), { ok: false, reason: 'stranger' });
  });

  test('any flipped byte is refused, truncation and garbage are malformed, nothing throws', () => {
    const packet = sealAnnouncement(key, announcement, 5, nonce);
    for (let i = 0; i < packet.length; i++) {
      const bent = Buffer.from(packet);
      bent[i] = (bent[i] as number) ^ 0x01;
      assert.equal(openAnnouncement(key, bent).ok, false, `byte ${i} flipped was accepted`);
    }
    for (let length = 0; length < packet.length; length++) {
      assert.equal(openAnnouncement(key, packet.subarray(0, length)).ok, false);
    }
    assert.deepEqual(openAnnouncement(key, randomBytes(4000)), { ok: false, reason: 'malformed' });
  });

  test('a signed payload that is not an announcement is malformed', () => {
    const bad = { id: '', address: 'x', ttlMs: -1, meta: {} };
    const packet = sealAnnouncement(key, bad, 5, nonce);
    assert.deepEqual(openAnnouncement(key, packet), { ok: false, reason: 'malformed' });
  });

  test('an announcement above the payload cap is refused when sealing', () => {
    const big = { ...announcement, meta: { blob: 'x'.repeat(BROADCAST_PAYLOAD_BYTES_MAX) } };
    assert.throws(
      () => sealAnnouncement(key, big, 5, nonce),
      (error: unknown) => isRdbnetError(error, ErrorCode.DiscoveryFailed),
    );
  });
});

describe('replay guard', () => {
  test('a nonce is accepted once; a packet outside the window is stale either way', () => {
    const guard = new ReplayGuard(1000, 10);
    assert.equal(guard.check('a', 5000, 5000), 'fresh');
    assert.equal(guard.check('a', 5000, 5100), 'replay');
    assert.equal(guard.check('b', 3000, 5000), 'stale');
    assert.equal(guard.check('c', 7000, 5000), 'stale');
  });

  test('nonces are forgotten once their packets would be stale, and the cache is bounded', () => {
    const guard = new ReplayGuard(1000, 3);
    for (const nonce of ['a', 'b', 'c']) assert.equal(guard.check(nonce, 5000, 5000), 'fresh');
    assert.equal(guard.check('d', 5000, 5000), 'full');
    assert.equal(guard.size, 3);
    assert.equal(guard.check('d', 6500, 6500), 'fresh');
    assert.equal(guard.size, 1);
    // 'a' at 5000 is stale at 6500 whether or not it is still remembered.
    assert.equal(guard.check('a', 5000, 6500), 'stale');
  });
});

describe('broadcast provider keys', () => {
  test('defaults, durations and the limited broadcast address', () => {
    const provider = broadcastProvider.create(new Map(), ctx) as BroadcastProvider;
    assert.deepEqual(provider.options, {
      port: 7947,
      address: '255.255.255.255',
      intervalMs: 1000,
      timeoutMs: 3000,
    });
    const tuned = broadcastProvider.create(
      new Map([
        ['port', '9000'],
        ['address', '169.254.255.255'],
        ['interval', '250ms'],
        ['timeout', '1.5s'],
      ]),
      ctx,
    ) as BroadcastProvider;
    assert.deepEqual(tuned.options, {
      port: 9000,
      address: '169.254.255.255',
      intervalMs: 250,
      timeoutMs: 1500,
    });
  });

  test('interface= by name or address uses its subnet broadcast address and sends from it', () => {
    for (const name of ['lo', '127.0.0.1']) {
      const provider = broadcastProvider.create(
        new Map([['interface', name]]),
        ctx,
      ) as BroadcastProvider;
      assert.equal(provider.options.address, '127.255.255.255');
      assert.equal(provider.options.sourceAddress, '127.0.0.1');
    }
  });

  test('bad values are syntax errors naming provider and key, before any socket', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['port', '0', /provider=broadcast: port must be a port/],
      ['port', '70000', /: port/],
      ['address', 'db.internal', /: address must be an IPv4 broadcast address/],
      ['interval', '1h', /: interval must be a duration/],
      ['interval', '10ms', /: interval must be a duration from 100 ms to 60000 ms/],
      ['timeout', 'soon', /: timeout/],
      ['interface', 'no-such-if0', /: interface names no local interface "no-such-if0"/],
    ];
    for (const [key, value, message] of cases) {
      assert.throws(
        () => broadcastProvider.create(new Map([[key, value]]), ctx),
        syntaxError(message),
        `${key}=${value}`,
      );
    }
  });

  test('without a gossip key there is nothing to authenticate with: refused', () => {
    const { gossipKey: _, ...keyless } = ctx;
    assert.throws(
      () => broadcastProvider.create(new Map(), keyless),
      syntaxError(/needs the gossip key/),
    );
  });
});

describe('LAN interface helpers', () => {
  test('subnet broadcast addresses', () => {
    assert.equal(broadcastAddressOf('169.254.1.2', '255.255.0.0'), '169.254.255.255');
    assert.equal(broadcastAddressOf('127.0.0.1', '255.0.0.0'), '127.255.255.255');
    assert.equal(broadcastAddressOf('169.254.7.9', '255.255.255.252'), '169.254.7.11');
  });
});

describe('live node table (what a LAN listener believes)', () => {
  const node = (address: string) => ({ address, id: address, source: 's', meta: {} });

  test('a node lives for its ttl unless heard of again; a refresh that changes nothing is no change', () => {
    const table = new LiveNodeTable(4);
    assert.equal(table.upsert('a', node('127.0.0.1:1'), 0, 1000), true);
    assert.equal(table.upsert('a', node('127.0.0.1:1'), 500, 1000), false);
    assert.equal(table.expire(1400), false);
    assert.equal(table.nextExpiryMs(), 1500);
    assert.equal(table.expire(1500), true);
    assert.deepEqual(table.list(), []);
  });

  test('a moved node is a change; remove is a goodbye; the list is sorted by address', () => {
    const table = new LiveNodeTable(4);
    table.upsert('b', node('127.0.0.2:1'), 0, 1000);
    table.upsert('a', node('127.0.0.1:1'), 0, 1000);
    assert.equal(table.upsert('a', node('127.0.0.3:1'), 0, 1000), true);
    assert.deepEqual(
      table.list().map((n) => n.address),
      ['127.0.0.2:1', '127.0.0.3:1'],
    );
    assert.equal(table.remove('a'), true);
    assert.equal(table.remove('a'), false);
  });

  test('full: new nodes are refused and counted, known ones still refresh', () => {
    const table = new LiveNodeTable(2);
    table.upsert('a', node('127.0.0.1:1'), 0, 1000);
    table.upsert('b', node('127.0.0.2:1'), 0, 1000);
    assert.equal(table.upsert('c', node('127.0.0.3:1'), 0, 1000), false);
    assert.equal(table.refused, 1);
    table.upsert('a', node('127.0.0.1:1'), 900, 1000);
    table.expire(1000);
    assert.deepEqual(
      table.list().map((n) => n.id),
      ['127.0.0.1:1'],
    );
  });
});
