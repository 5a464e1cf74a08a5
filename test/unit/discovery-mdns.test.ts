import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { ProviderContext } from '../../src/core/discovery/provider.ts';
import {
  answerQuery,
  type MdnsOptions,
  type MdnsProvider,
  mdnsProvider,
  ownRecords,
} from '../../src/core/discovery/providers/mdns.ts';
import {
  MDNS_CACHE_RECORDS_MAX,
  MdnsCache,
  txtLabels,
} from '../../src/core/discovery/providers/mdns-cache.ts';
import {
  decodeMessage,
  emptyMessage,
  encodeMessage,
  FLAGS_RESPONSE,
  MDNS_MESSAGE_BYTES_MAX,
  MDNS_RECORDS_MAX,
  MdnsFormatError,
  type Message,
  RecordType,
  type ResourceRecord,
} from '../../src/core/discovery/providers/mdns-codec.ts';
import { isRdbnetError } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/runtime/index.ts';

const SERVICE = '_rdbnet._tcp.local';

function response(...answers: ResourceRecord[]): Message {
  const message = emptyMessage(FLAGS_RESPONSE);
  message.answers = answers;
  return message;
}

function instanceRecords(id: string, ip: string, port: number, ttl = 120): ResourceRecord[] {
  const instance = `${id}.${SERVICE}`;
  const host = `host-${id}.local`;
  return [
    { name: SERVICE, ttl: ttl === 0 ? 0 : 4500, data: { type: RecordType.PTR, target: instance } },
    {
      name: instance,
      ttl,
      cacheFlush: true,
      data: { type: RecordType.SRV, srv: { priority: 0, weight: 0, port, target: host } },
    },
    {
      name: instance,
      ttl,
      cacheFlush: true,
      data: { type: RecordType.TXT, strings: [`id=${id}`, 'cluster=c1', 'v=1'] },
    },
    { name: host, ttl, cacheFlush: true, data: { type: RecordType.A, address: ip } },
  ];
}

describe('mDNS wire codec', () => {
  test('every record kind survives encode → decode', () => {
    const message = emptyMessage(FLAGS_RESPONSE, 7);
    message.questions = [{ name: SERVICE, type: RecordType.PTR, unicastResponse: true }];
    message.answers = [
      ...instanceRecords('n1', '127.0.0.1', 7400),
      { name: 'host-n1.local', ttl: 120, data: { type: RecordType.AAAA, address: 'fe80::1:2' } },
      { name: 'host-n1.local', ttl: 120, data: { type: RecordType.AAAA, address: '::1' } },
      { name: 'odd\\.name.local', ttl: 5, data: { type: 99, raw: Buffer.from([1, 2, 3]) } },
    ];
    message.additionals = [
      { name: 'empty.local', ttl: 1, data: { type: RecordType.TXT, strings: [] } },
    ];
    const decoded = decodeMessage(encodeMessage(message));
    assert.deepEqual(decoded, message);
  });

  test('compression pointers are followed', () => {
    // Header, then a PTR answer whose owner is a full name and whose target points into it.
    const owner = Buffer.from('\x07_rdbnet\x04_tcp\x05local\x00', 'latin1');
    const target = Buffer.concat([Buffer.from('\x02n1', 'latin1'), Buffer.from([0xc0, 12])]);
    const fixed = Buffer.from([0, 12, 0, 1, 0, 0, 0, 10, 0, target.length]);
    const header = Buffer.from([0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    const decoded = decodeMessage(Buffer.concat([header, owner, fixed, target]));
    assert.deepEqual(decoded.answers[0]?.data, { type: RecordType.PTR, target: `n1.${SERVICE}` });
  });

  test('pointer loops, forward pointers and long chains are refused, never followed forever', () => {
    const header = Buffer.from([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    const selfLoop = Buffer.concat([header, Buffer.from([0xc0, 12, 0, 12, 0, 1])]);
    assert.throws(() => decodeMessage(selfLoop), /does not point back/);
    const forward = Buffer.concat([header, Buffer.from([0xc0, 14, 0, 0, 0, 12, 0, 1])]);
    assert.throws(() => decodeMessage(forward), MdnsFormatError);
    // 100 pointers each pointing to the one before, inside an unknown record's data, and a
    // second record whose name points at the last: a chain longer than the jump limit.
    const twoAnswers = Buffer.from([0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0]);
    const chain = [Buffer.from([1, 0x61, 0])];
    for (let i = 0; i < 100; i++) {
      const to = i === 0 ? 23 : 26 + 2 * (i - 1);
      chain.push(Buffer.from([0xc0 | (to >> 8), to & 0xff]));
    }
    const rdata = Buffer.concat(chain);
    const first = Buffer.concat([
      Buffer.from([0, 0, 99, 0, 1, 0, 0, 0, 1, 0, rdata.length]),
      rdata,
    ]);
    const lastPointer = 26 + 2 * 99;
    const second = Buffer.from([
      0xc0 | (lastPointer >> 8),
      lastPointer & 0xff,
      0,
      1,
      0,
      1,
      0,
      0,
      0,
      1,
      0,
      0,
    ]);
    const chained = Buffer.concat([twoAnswers, first, second]);
    assert.throws(() => decodeMessage(chained), /too many compression pointers/);
  });

  test('counts and sizes over their bounds are refused', () => {
    const tooMany = Buffer.from([0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    assert.throws(() => decodeMessage(tooMany), new RegExp(`at most ${MDNS_RECORDS_MAX}`));
    assert.throws(() => decodeMessage(Buffer.alloc(MDNS_MESSAGE_BYTES_MAX + 1)), /at most 9000/);
    const longName = 'a'.repeat(64);
    assert.throws(
      () =>
        encodeMessage({ ...emptyMessage(), questions: [{ name: `${longName}.local`, type: 1 }] }),
      /1..63 bytes/,
    );
  });

  test('any truncation of a valid message, and arbitrary bytes, fail only with MdnsFormatError', () => {
    const message = response(...instanceRecords('n1', '127.0.0.1', 7400));
    const packet = encodeMessage(message);
    for (let length = 0; length < packet.length; length++) {
      try {
        decodeMessage(packet.subarray(0, length));
      } catch (error) {
        assert.ok(error instanceof MdnsFormatError, String(error));
      }
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          decodeMessage(Buffer.from(bytes));
        } catch (error) {
          if (!(error instanceof MdnsFormatError)) throw error;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('mDNS browse cache', () => {
  test('PTR → SRV + TXT + A resolves to a node with id and labels', () => {
    const cache = new MdnsCache(SERVICE);
    assert.equal(cache.ingest(response(...instanceRecords('n1', '127.0.0.1', 7400)), 0), true);
    assert.deepEqual(cache.resolve('mdns:x'), [
      {
        address: '127.0.0.1:7400',
        id: 'n1',
        source: 'mdns:x',
        meta: { instance: 'n1', host: 'host-n1.local', cluster: 'c1', v: '1' },
      },
    ]);
    assert.deepEqual(cache.missing(), []);
  });

  test('queries and unrelated records are not kept', () => {
    const cache = new MdnsCache(SERVICE);
    const query = emptyMessage();
    query.answers = instanceRecords('n1', '127.0.0.1', 7400);
    assert.equal(cache.ingest(query, 0), false);
    cache.ingest(
      response({
        name: 'printer.local',
        ttl: 120,
        data: { type: RecordType.A, address: '127.0.0.9' },
      }),
      0,
    );
    assert.equal(cache.size, 0);
  });

  test('what is missing is asked for; a partial instance is not listed', () => {
    const cache = new MdnsCache(SERVICE);
    const [ptr, srv] = instanceRecords('n1', '127.0.0.1', 7400);
    cache.ingest(response(ptr as ResourceRecord), 0);
    assert.deepEqual(cache.resolve('s'), []);
    assert.deepEqual(cache.missing(), [
      { name: `n1.${SERVICE}`, type: RecordType.SRV },
      { name: `n1.${SERVICE}`, type: RecordType.TXT },
    ]);
    cache.ingest(response(srv as ResourceRecord), 0);
    assert.deepEqual(cache.missing(), [
      { name: `n1.${SERVICE}`, type: RecordType.TXT },
      { name: 'host-n1.local', type: RecordType.A },
    ]);
  });

  test('records expire with their TTL; a goodbye (TTL 0) removes at once', () => {
    const cache = new MdnsCache(SERVICE);
    cache.ingest(response(...instanceRecords('n1', '127.0.0.1', 7400, 2)), 0);
    assert.equal(cache.expire(1999), false);
    assert.equal(cache.resolve('s').length, 1);
    assert.equal(cache.expire(2000), true);
    assert.deepEqual(cache.resolve('s'), []);
    cache.ingest(response(...instanceRecords('n2', '127.0.0.2', 7400)), 3000);
    assert.equal(cache.resolve('s').length, 1);
    assert.equal(
      cache.ingest(response(...instanceRecords('n2', '127.0.0.2', 7400, 0)), 3500),
      true,
    );
    assert.deepEqual(cache.resolve('s'), []);
  });

  test('a cache-flush record replaces older ones of its set (a node that moved)', () => {
    const cache = new MdnsCache(SERVICE);
    cache.ingest(response(...instanceRecords('n1', '127.0.0.1', 7400)), 0);
    cache.ingest(response(...instanceRecords('n1', '127.0.0.5', 7400)), 5000);
    assert.deepEqual(
      cache.resolve('s').map((node) => node.address),
      ['127.0.0.5:7400'],
    );
  });

  test('the cache is bounded: beyond its limit new records are refused and counted', () => {
    const cache = new MdnsCache(SERVICE);
    for (let i = 0; cache.size < MDNS_CACHE_RECORDS_MAX; i++) {
      cache.ingest(
        response({
          name: SERVICE,
          ttl: 60,
          data: { type: RecordType.PTR, target: `n${i}.${SERVICE}` },
        }),
        0,
      );
    }
    cache.ingest(
      response({
        name: SERVICE,
        ttl: 60,
        data: { type: RecordType.PTR, target: `extra.${SERVICE}` },
      }),
      0,
    );
    assert.equal(cache.size, MDNS_CACHE_RECORDS_MAX);
    assert.equal(cache.refused, 1);
  });

  test('TXT labels: keys lower-cased, first occurrence wins, bare keys are empty', () => {
    assert.deepEqual(txtLabels(['ID=a', 'id=b', 'flag', '=x', 'k=v=w']), {
      id: 'a',
      flag: '',
      k: 'v=w',
    });
  });
});

describe('mDNS responder', () => {
  const options: MdnsOptions = { service: '_rdbnet._tcp', domain: 'local', timeoutMs: 2000 };
  const own = ownRecords(
    { id: 'n1', address: '127.0.0.1:7400', meta: { cluster: 'c1' } },
    options,
    [],
  );

  test('the records: enumeration PTR, service PTR, SRV, TXT with id/v/cluster, A', () => {
    assert.deepEqual(
      own.map((record) => [record.name, record.data.type]),
      [
        ['_services._dns-sd._udp.local', RecordType.PTR],
        [SERVICE, RecordType.PTR],
        [`n1.${SERVICE}`, RecordType.SRV],
        [`n1.${SERVICE}`, RecordType.TXT],
        ['rdbnet-n1.local', RecordType.A],
      ],
    );
    assert.deepEqual((own[3]?.data as { strings: string[] } | undefined)?.strings, [
      'id=n1',
      'v=1',
      'cluster=c1',
    ]);
    const anyHost = ownRecords({ id: 'n1', address: '0.0.0.0:7400', meta: {} }, options, [
      '127.0.0.3',
    ]);
    assert.deepEqual(anyHost.at(-1)?.data, { type: RecordType.A, address: '127.0.0.3' });
  });

  test('a PTR query is answered with the PTR, and SRV, TXT and A as additionals', () => {
    const query = emptyMessage();
    query.questions = [{ name: '_RDBNET._tcp.local', type: RecordType.PTR }];
    const answer = answerQuery(query, own);
    assert.ok(answer !== undefined);
    assert.equal(answer.flags, FLAGS_RESPONSE);
    assert.deepEqual(answer.answers, [own[1]]);
    assert.equal(answer.additionals.length, 3);
    for (const record of [own[2], own[3], own[4]])
      assert.ok(answer.additionals.includes(record as ResourceRecord));
    // What a browser needs comes in one packet: it resolves with nothing else.
    const cache = new MdnsCache(SERVICE);
    cache.ingest(decodeMessage(encodeMessage(answer)), 0);
    assert.deepEqual(
      cache.resolve('s').map((node) => [node.id, node.address]),
      [['n1', '127.0.0.1:7400']],
    );
  });

  test('known answers are suppressed; other names, and responses, get nothing', () => {
    const query = emptyMessage();
    query.questions = [{ name: SERVICE, type: RecordType.PTR }];
    query.answers = [{ ...(own[1] as ResourceRecord), ttl: 4000 }];
    assert.equal(answerQuery(query, own), undefined);
    query.answers = [{ ...(own[1] as ResourceRecord), ttl: 100 }];
    assert.ok(answerQuery(query, own) !== undefined, 'a known answer near its end is refreshed');
    const other = emptyMessage();
    other.questions = [{ name: '_http._tcp.local', type: RecordType.PTR }];
    assert.equal(answerQuery(other, own), undefined);
    assert.equal(answerQuery(response(), own), undefined);
  });
});

describe('mdns provider keys', () => {
  const ctx: ProviderContext = { env: {}, clock: systemClock, log: () => {} };

  test('defaults and overrides', () => {
    assert.deepEqual((mdnsProvider.create(new Map(), ctx) as MdnsProvider).options, {
      service: '_rdbnet._tcp',
      domain: 'local',
      timeoutMs: 2000,
    });
    const tuned = mdnsProvider.create(
      new Map([
        ['service', '_db._udp'],
        ['domain', 'lan'],
        ['timeout', '500ms'],
        ['interface', 'lo'],
      ]),
      ctx,
    ) as MdnsProvider;
    assert.deepEqual(tuned.options, {
      service: '_db._udp',
      domain: 'lan',
      timeoutMs: 500,
      interfaceAddress: '127.0.0.1',
    });
  });

  test('bad values are syntax errors naming provider and key', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['service', 'rdbnet', /provider=mdns: service must be/],
      ['service', '_rdbnet._sctp', /: service must be _name._tcp or _name._udp/],
      ['domain', 'bad domain', /: domain/],
      ['timeout', '0s', /: timeout must be a duration from 100 ms to 60000 ms, got "0s"/],
      ['interface', 'no-such-if0', /: interface names no local interface/],
    ];
    for (const [key, value, message] of cases) {
      assert.throws(
        () => mdnsProvider.create(new Map([[key, value]]), ctx),
        (error: unknown) =>
          isRdbnetError(error, 'RDB_DISCOVERY_SYNTAX') && message.test(error.message),
        `${key}=${value}`,
      );
    }
  });
});
