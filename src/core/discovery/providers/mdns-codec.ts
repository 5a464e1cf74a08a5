/**
 * The DNS wire format as multicast DNS uses it (RFC 1035 §4, RFC 6762 §18): just what the
 * mdns provider needs — questions, and A, AAAA, PTR, SRV and TXT records (others are kept as
 * raw bytes). Pure and bounded: a hostile packet can cost at most MDNS_MESSAGE_BYTES_MAX bytes,
 * MDNS_RECORDS_MAX records and MDNS_POINTER_JUMPS_MAX compression jumps per name; anything
 * malformed is an MdnsFormatError, never a crash or a loop.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** RFC 6762 §17: an mDNS message may be up to 9000 bytes (jumbo frames); more is refused. */
export const MDNS_MESSAGE_BYTES_MAX = 9000;
/** Questions + records per message, at most. */
export const MDNS_RECORDS_MAX = 256;
/** Compression pointers followed per name, at most (a loop fails here). */
export const MDNS_POINTER_JUMPS_MAX = 64;
const NAME_BYTES_MAX = 255;
const LABEL_BYTES_MAX = 63;

export const RecordType = {
  A: 1,
  PTR: 12,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  ANY: 255,
} as const;

const CLASS_IN = 1;
/** Top bit of a record's class: cache-flush (RFC 6762 §10.2); of a question's: unicast-response. */
const CLASS_TOP_BIT = 0x8000;
/** QR bit (response) and AA bit (authoritative) of the flags. */
export const FLAGS_RESPONSE = 0x8400;

export class MdnsFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MdnsFormatError';
  }
}

export interface Question {
  name: string;
  type: number;
  /** QU: the asker would take a unicast answer. */
  unicastResponse?: boolean;
}

export interface SrvData {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

export type RecordData =
  | { type: typeof RecordType.A; address: string }
  | { type: typeof RecordType.AAAA; address: string }
  | { type: typeof RecordType.PTR; target: string }
  | { type: typeof RecordType.SRV; srv: SrvData }
  | { type: typeof RecordType.TXT; strings: string[] }
  | { type: number; raw: Buffer };

export interface ResourceRecord {
  name: string;
  ttl: number;
  /** Cache-flush bit: this record replaces every other one of its name and type. */
  cacheFlush?: boolean;
  data: RecordData;
}

export interface Message {
  id: number;
  flags: number;
  questions: Question[];
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
}

export function isResponse(message: Message): boolean {
  return (message.flags & 0x8000) !== 0;
}

/** Names compare case-insensitively (RFC 6762 §16); this is the key to compare them by. */
export function nameKey(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

// ---- decoding ----

class Reader {
  offset = 0;
  readonly buffer: Buffer;

  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }

  need(bytes: number): void {
    if (this.offset + bytes > this.buffer.length) {
      throw new MdnsFormatError(`truncated at byte ${this.offset} (needs ${bytes} more)`);
    }
  }

  u8(): number {
    this.need(1);
    return this.buffer.readUInt8(this.offset++);
  }

  u16(): number {
    this.need(2);
    const value = this.buffer.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  bytes(count: number): Buffer {
    this.need(count);
    const slice = this.buffer.subarray(this.offset, this.offset + count);
    this.offset += count;
    return slice;
  }

  /** A name, following compression pointers (only backwards, at most MDNS_POINTER_JUMPS_MAX). */
  name(): string {
    const labels: string[] = [];
    let position = this.offset;
    let jumps = 0;
    let nameBytes = 0;
    let endOfName = -1;
    for (;;) {
      if (position >= this.buffer.length) throw new MdnsFormatError('name runs past the message');
      const length = this.buffer.readUInt8(position);
      if ((length & 0xc0) === 0xc0) {
        if (position + 1 >= this.buffer.length) throw new MdnsFormatError('truncated pointer');
        const target = ((length & 0x3f) << 8) | this.buffer.readUInt8(position + 1);
        if (endOfName < 0) endOfName = position + 2;
        if (target >= position)
          throw new MdnsFormatError('compression pointer does not point back');
        if (++jumps > MDNS_POINTER_JUMPS_MAX)
          throw new MdnsFormatError('too many compression pointers');
        position = target;
        continue;
      }
      if ((length & 0xc0) !== 0) throw new MdnsFormatError(`bad label length byte ${length}`);
      if (length === 0) {
        if (endOfName < 0) endOfName = position + 1;
        break;
      }
      if (position + 1 + length > this.buffer.length)
        throw new MdnsFormatError('label runs past the message');
      nameBytes += length + 1;
      if (nameBytes > NAME_BYTES_MAX) throw new MdnsFormatError('name longer than 255 bytes');
      labels.push(
        this.buffer
          .subarray(position + 1, position + 1 + length)
          .toString('utf8')
          .replace(/[\\.]/g, (c) => `\\${c}`),
      );
      position += 1 + length;
    }
    this.offset = endOfName;
    return labels.join('.');
  }
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // Shortest form: the longest run of zero groups becomes '::'.
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength && j - i > 1) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}

function readRecord(reader: Reader): ResourceRecord {
  const name = reader.name();
  const type = reader.u16();
  const klass = reader.u16();
  const ttl = reader.u32();
  const length = reader.u16();
  reader.need(length);
  const end = reader.offset + length;
  let data: RecordData;
  switch (type) {
    case RecordType.A:
      if (length !== 4) throw new MdnsFormatError(`A record of ${length} bytes`);
      data = { type, address: [...reader.bytes(4)].join('.') };
      break;
    case RecordType.AAAA:
      if (length !== 16) throw new MdnsFormatError(`AAAA record of ${length} bytes`);
      data = { type, address: ipv6Text(reader.bytes(16)) };
      break;
    case RecordType.PTR:
      data = { type, target: reader.name() };
      break;
    case RecordType.SRV: {
      const priority = reader.u16();
      const weight = reader.u16();
      const port = reader.u16();
      data = { type, srv: { priority, weight, port, target: reader.name() } };
      break;
    }
    case RecordType.TXT: {
      const strings: string[] = [];
      while (reader.offset < end) {
        const size = reader.u8();
        if (reader.offset + size > end)
          throw new MdnsFormatError('TXT string runs past its record');
        if (size > 0) strings.push(reader.bytes(size).toString('utf8'));
      }
      data = { type, strings };
      break;
    }
    default:
      data = { type, raw: Buffer.from(reader.bytes(length)) };
  }
  if (reader.offset !== end)
    throw new MdnsFormatError(`record data of ${name} is not ${length} bytes`);
  const record: ResourceRecord = { name, ttl, data };
  if ((klass & CLASS_TOP_BIT) !== 0) record.cacheFlush = true;
  return record;
}

/** Decodes one message; throws MdnsFormatError on anything malformed or over a bound. */
export function decodeMessage(packet: Buffer): Message {
  if (packet.length > MDNS_MESSAGE_BYTES_MAX) {
    throw new MdnsFormatError(
      `message of ${packet.length} bytes; at most ${MDNS_MESSAGE_BYTES_MAX}`,
    );
  }
  const reader = new Reader(packet);
  const id = reader.u16();
  const flags = reader.u16();
  const counts = [reader.u16(), reader.u16(), reader.u16(), reader.u16()];
  const total = counts.reduce((sum, count) => sum + count, 0);
  if (total > MDNS_RECORDS_MAX) {
    throw new MdnsFormatError(`${total} questions and records; at most ${MDNS_RECORDS_MAX}`);
  }
  const questions: Question[] = [];
  for (let i = 0; i < (counts[0] as number); i++) {
    const name = reader.name();
    const type = reader.u16();
    const klass = reader.u16();
    const question: Question = { name, type };
    if ((klass & CLASS_TOP_BIT) !== 0) question.unicastResponse = true;
    questions.push(question);
  }
  const section = (count: number): ResourceRecord[] =>
    Array.from({ length: count }, () => readRecord(reader));
  const answers = section(counts[1] as number);
  const authorities = section(counts[2] as number);
  const additionals = section(counts[3] as number);
  return { id, flags, questions, answers, authorities, additionals };
}

// ---- encoding (no compression: always valid, and our messages are small) ----

/** Splits a name into labels, honouring `\.` escapes (an instance name may hold dots). */
export function labelsOf(name: string): string[] {
  const labels: string[] = [];
  let current = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i] as string;
    if (c === '\\' && i + 1 < name.length) {
      current += name[++i];
    } else if (c === '.') {
      labels.push(current);
      current = '';
    } else current += c;
  }
  if (current !== '') labels.push(current);
  return labels.filter((label, index) => label !== '' || index < labels.length - 1);
}

function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of labelsOf(name)) {
    const bytes = Buffer.from(label, 'utf8');
    if (bytes.length === 0 || bytes.length > LABEL_BYTES_MAX) {
      throw new MdnsFormatError(`label "${label}" of ${name} must be 1..63 bytes`);
    }
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  const encoded = Buffer.concat(parts);
  if (encoded.length > NAME_BYTES_MAX) throw new MdnsFormatError(`name ${name} is over 255 bytes`);
  return encoded;
}

function u16(value: number): Buffer {
  const buffer = Buffer.alloc(2);
  buffer.writeUInt16BE(value);
  return buffer;
}

function encodeData(data: RecordData): Buffer {
  if ('address' in data && data.type === RecordType.A) {
    if (!isIPv4(data.address)) throw new MdnsFormatError(`A record for ${data.address}`);
    return Buffer.from(data.address.split('.').map(Number));
  }
  if ('address' in data && data.type === RecordType.AAAA) {
    // A dotted IPv4 tail (::ffff:127.0.0.1) is not taken: node reports plain hex groups.
    if (!isIPv6(data.address) || data.address.includes('.')) {
      throw new MdnsFormatError(`AAAA record for ${data.address}`);
    }
    const [head = '', tail = ''] = data.address.split('::');
    const headGroups = head === '' ? [] : head.split(':');
    const tailGroups = data.address.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
    const zeros = 8 - headGroups.length - tailGroups.length;
    const groups = [...headGroups, ...Array(Math.max(0, zeros)).fill('0'), ...tailGroups];
    const buffer = Buffer.alloc(16);
    for (const [i, group] of groups.entries()) {
      buffer.writeUInt16BE(Number.parseInt(group, 16), i * 2);
    }
    return buffer;
  }
  if ('target' in data) return encodeName(data.target);
  if ('srv' in data) {
    return Buffer.concat([
      u16(data.srv.priority),
      u16(data.srv.weight),
      u16(data.srv.port),
      encodeName(data.srv.target),
    ]);
  }
  if ('strings' in data) {
    const parts = data.strings.map((text) => {
      const bytes = Buffer.from(text, 'utf8');
      if (bytes.length > 255) throw new MdnsFormatError(`TXT string of ${bytes.length} bytes`);
      return Buffer.concat([Buffer.from([bytes.length]), bytes]);
    });
    // An empty TXT record is one empty string (RFC 6763 §6.1).
    return parts.length === 0 ? Buffer.from([0]) : Buffer.concat(parts);
  }
  return (data as { raw: Buffer }).raw;
}

function encodeRecord(record: ResourceRecord): Buffer {
  const data = encodeData(record.data);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(record.data.type, 0);
  fixed.writeUInt16BE(CLASS_IN | (record.cacheFlush === true ? CLASS_TOP_BIT : 0), 2);
  fixed.writeUInt32BE(record.ttl, 4);
  fixed.writeUInt16BE(data.length, 8);
  return Buffer.concat([encodeName(record.name), fixed, data]);
}

export function encodeMessage(message: Message): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(message.id, 0);
  header.writeUInt16BE(message.flags, 2);
  header.writeUInt16BE(message.questions.length, 4);
  header.writeUInt16BE(message.answers.length, 6);
  header.writeUInt16BE(message.authorities.length, 8);
  header.writeUInt16BE(message.additionals.length, 10);
  const parts: Buffer[] = [header];
  for (const question of message.questions) {
    parts.push(
      encodeName(question.name),
      u16(question.type),
      u16(CLASS_IN | (question.unicastResponse === true ? CLASS_TOP_BIT : 0)),
    );
  }
  for (const record of [...message.answers, ...message.authorities, ...message.additionals]) {
    parts.push(encodeRecord(record));
  }
  const packet = Buffer.concat(parts);
  if (packet.length > MDNS_MESSAGE_BYTES_MAX) {
    throw new MdnsFormatError(
      `message of ${packet.length} bytes; at most ${MDNS_MESSAGE_BYTES_MAX}`,
    );
  }
  return packet;
}

export function emptyMessage(flags = 0, id = 0): Message {
  return { id, flags, questions: [], answers: [], authorities: [], additionals: [] };
}
