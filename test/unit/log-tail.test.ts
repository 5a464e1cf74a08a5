/** The log lines a node keeps for `rdbnet monitor`: the ring, what was dropped, the level lease. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../../src/core/runtime/log.ts';
import {
  LOG_LEVEL_LEASE_MS,
  LOG_TAIL_BATCH_MAX,
  LOG_TAIL_RECORDS,
  LogTail,
} from '../../src/core/runtime/log-tail.ts';

function setup() {
  let now = 0;
  const tail = new LogTail(() => now);
  const stderr: string[] = [];
  const log = createLogger({
    level: 'info',
    format: 'json',
    tail,
    write: (line) => stderr.push(line),
    now: () => now,
  });
  return { tail, log, stderr, advance: (ms: number) => (now += ms) };
}

describe('log tail', () => {
  test('lines after a sequence number, filtered by level', () => {
    const { tail, log, stderr } = setup();
    log.info('one');
    log.warn('two', { peer: 'n2' });
    log.debug('not kept: nobody asked for debug');
    const all = tail.since(0, 'info');
    assert.deepEqual(
      all.records.map((r) => JSON.parse(r.line).msg),
      ['one', 'two'],
    );
    assert.equal(JSON.parse(all.records[1]!.line).peer, 'n2');
    assert.deepEqual(
      tail.since(0, 'warn').records.map((r) => r.level),
      ['warn'],
    );
    assert.deepEqual(tail.since(all.lastSeq, 'info').records, []);
    assert.equal(stderr.length, 2);
  });

  test('a monitor asking for debug gets debug lines, the node stderr does not, until the lease ends', () => {
    const { tail, log, stderr, advance } = setup();
    tail.since(0, 'debug');
    log.debug('detail');
    assert.deepEqual(
      tail.since(0, 'debug').records.map((r) => JSON.parse(r.line).msg),
      ['detail'],
    );
    assert.equal(stderr.length, 0);
    advance(LOG_LEVEL_LEASE_MS + 1);
    log.debug('after the lease');
    assert.deepEqual(
      tail.since(0, 'info').records.map((r) => JSON.parse(r.line).msg),
      [],
    );
  });

  test('the ring is bounded and says what was dropped', () => {
    const { tail, log } = setup();
    const first = tail.since(0, 'info');
    for (let i = 0; i < LOG_TAIL_RECORDS + 300; i++) log.info(`line ${i}`);
    const reply = tail.since(first.lastSeq + 1, 'info');
    assert.equal(reply.dropped, 299);
    assert.equal(reply.records.length, LOG_TAIL_BATCH_MAX);
    assert.equal(JSON.parse(reply.records[0]!.line).msg, 'line 300');
    let afterSeq = reply.lastSeq;
    let count = reply.records.length;
    for (;;) {
      const next = tail.since(afterSeq, 'info');
      if (next.records.length === 0) break;
      assert.equal(next.dropped, 0);
      count += next.records.length;
      afterSeq = next.lastSeq;
    }
    assert.equal(count, LOG_TAIL_RECORDS);
  });

  test('a long line is cut', () => {
    const { tail, log } = setup();
    log.info('x'.repeat(20_000));
    assert.equal(tail.since(0, 'info').records[0]!.line.length, 8192);
  });
});
