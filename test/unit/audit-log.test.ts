/**
 * The audit log (src/core/node/audit-log.ts): records numbered in a bounded ring that a reader
 * follows by sequence number (told what it missed), NDJSON lines in a file rotated by size
 * with a bounded number of files, and a bounded queue of lines waiting for the disk.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AUDIT_FILE_BYTES_MAX,
  AUDIT_FILES_KEPT,
  AUDIT_PENDING_LINES_MAX,
  AUDIT_RING_MAX,
  AuditLog,
  type AuditSink,
  auditFileSink,
} from '../../src/core/node/audit-log.ts';
import { Counters } from '../../src/core/runtime/index.ts';
import { VirtualClock } from '../../src/core/sim/index.ts';
import { tempHome } from '../helpers/processes.ts';

let home: { dir: string; cleanup(): Promise<void> };
before(async () => {
  home = await tempHome('rdbnet-audit-');
});
after(() => home.cleanup());

function refusal(n: number) {
  return {
    decision: 'deny',
    stage: 'accept',
    source: `169.254.2.${n % 250}`,
    who: '',
    what: 'connect',
    rule: 'acl-7',
    reason: `refusal ${n} ${'x'.repeat(200)}`,
  };
}

describe('audit log', () => {
  test('the ring keeps the newest records and tells a reader what it missed', () => {
    const log = new AuditLog({ clock: new VirtualClock(), counters: new Counters(), sink: null });
    for (let n = 1; n <= AUDIT_RING_MAX + 10; n++) log.record(refusal(n));
    const all = log.after(0, 'n1');
    assert.equal(all.records.length, AUDIT_RING_MAX);
    assert.equal(all.records[0]!.seq, 11);
    assert.equal(all.missed, 10);
    assert.equal(all.lastSeq, AUDIT_RING_MAX + 10);
    const tail = log.after(AUDIT_RING_MAX + 8, 'n1');
    assert.deepEqual(
      tail.records.map((record) => record.seq),
      [AUDIT_RING_MAX + 9, AUDIT_RING_MAX + 10],
    );
    assert.equal(tail.missed, 0);
  });

  test('the file is NDJSON, rotated past its size, with at most AUDIT_FILES_KEPT files', async () => {
    const path = join(home.dir, 'audit.log');
    const counters = new Counters();
    const log = new AuditLog({ clock: new VirtualClock(), counters, sink: auditFileSink(path) });
    // About 300 bytes a line: enough lines for more rotations than files kept.
    const lines = Math.ceil((AUDIT_FILE_BYTES_MAX * (AUDIT_FILES_KEPT + 1)) / 300);
    for (let n = 1; n <= lines; n++) {
      log.record(refusal(n));
      if (n % 1000 === 0) await log.drain();
    }
    await log.drain();
    const files = (await readdir(home.dir)).filter((name) => name.startsWith('audit.log')).sort();
    assert.deepEqual(files, [
      'audit.log',
      ...Array.from({ length: AUDIT_FILES_KEPT - 1 }, (_, i) => `audit.log.${i + 1}`),
    ]);
    for (const name of files) {
      assert.ok((await stat(join(home.dir, name))).size <= AUDIT_FILE_BYTES_MAX, name);
    }
    const last = (await readFile(path, 'utf8')).trimEnd().split('\n').at(-1)!;
    const parsed = JSON.parse(last) as Record<string, unknown>;
    assert.equal(parsed.seq, lines);
    assert.equal(parsed.decision, 'deny');
    assert.equal(parsed.source, `169.254.2.${lines % 250}`);
    assert.equal(parsed.rule, 'acl-7');
    assert.equal(counters.get('audit.dropped'), 0);
  });

  test('lines waiting for a slow disk are bounded: the rest are dropped and counted', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let written = 0;
    const slow: AuditSink = {
      async write(lines) {
        await gate;
        written += lines.split('\n').length - 1;
      },
    };
    const counters = new Counters();
    const log = new AuditLog({ clock: new VirtualClock(), counters, sink: slow });
    log.record(refusal(0));
    await new Promise((resolve) => setImmediate(resolve)); // the first batch is at the disk
    for (let n = 1; n <= AUDIT_PENDING_LINES_MAX + 100; n++) log.record(refusal(n));
    release();
    await log.drain();
    assert.equal(counters.get('audit.dropped'), 100);
    assert.equal(written, AUDIT_PENDING_LINES_MAX + 1);
  });
});
