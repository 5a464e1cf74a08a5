/**
 * What an mDNS browser has heard (RFC 6762 §10, RFC 6763 §4–6): the records relevant to one
 * service type, each until its TTL runs out, and the nodes they resolve to — a PTR names an
 * instance, its SRV gives host and port, its TXT the id and labels, the host's A/AAAA the
 * address. Pure: time is passed in. Bounded: at MDNS_CACHE_RECORDS_MAX new records are
 * refused and counted, so a noisy segment cannot grow it without limit.
 */
import { isIPv4 } from 'node:net';
import { formatHostPort } from '../../transport/address.ts';
import type { DiscoveredNode } from '../provider.ts';
import {
  isResponse,
  type Message,
  nameKey,
  type Question,
  RecordType,
  type ResourceRecord,
  type SrvData,
} from './mdns-codec.ts';

export const MDNS_CACHE_RECORDS_MAX = 2048;
/** TXT labels copied into a node's meta, at most. */
export const MDNS_META_KEYS_MAX = 32;
/** RFC 6762 §10.2: a cache-flush record replaces others of its set received over 1 s ago. */
const CACHE_FLUSH_GRACE_MS = 1000;

interface Entry {
  record: ResourceRecord;
  receivedAtMs: number;
  expiresAtMs: number;
}

function dataKey(record: ResourceRecord): string {
  const data = record.data;
  if ('address' in data) return data.address;
  if ('target' in data) return nameKey(data.target);
  if ('srv' in data)
    return `${data.srv.priority} ${data.srv.weight} ${data.srv.port} ${nameKey(data.srv.target)}`;
  if ('strings' in data) return JSON.stringify(data.strings);
  return data.raw.toString('hex');
}

function setKey(record: ResourceRecord): string {
  return `${nameKey(record.name)}|${record.data.type}`;
}

/** `key=value` strings of a TXT record as labels (keys lower-case, RFC 6763 §6.4). */
export function txtLabels(strings: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const text of strings) {
    const equals = text.indexOf('=');
    const key = (equals < 0 ? text : text.slice(0, equals)).toLowerCase();
    // The first occurrence wins (RFC 6763 §6.4); an empty key is ignored.
    if (key === '' || key in labels) continue;
    labels[key] = equals < 0 ? '' : text.slice(equals + 1);
  }
  return labels;
}

export class MdnsCache {
  /** Records refused because the cache was full. */
  refused = 0;
  readonly serviceName: string;
  private readonly serviceKey: string;
  private readonly entries = new Map<string, Entry>();

  /** `serviceName`: the full browse name, `_rdbnet._tcp.local`. */
  constructor(serviceName: string) {
    this.serviceName = serviceName;
    this.serviceKey = nameKey(serviceName);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether a record concerns this service: its PTR, an instance's SRV/TXT, an SRV target's address. */
  private relevant(record: ResourceRecord, targets: Set<string>): boolean {
    const name = nameKey(record.name);
    switch (record.data.type) {
      case RecordType.PTR:
        return name === this.serviceKey;
      case RecordType.SRV:
      case RecordType.TXT:
        return name.endsWith(`.${this.serviceKey}`);
      case RecordType.A:
      case RecordType.AAAA:
        return targets.has(name);
      default:
        return false;
    }
  }

  /** Takes in one received message; true when the cache changed. Queries are ignored. */
  ingest(message: Message, nowMs: number): boolean {
    if (!isResponse(message)) return false;
    // SRV first, so addresses in the same packet find their target known.
    const records = [...message.answers, ...message.additionals].sort(
      (a, b) => Number(b.data.type === RecordType.SRV) - Number(a.data.type === RecordType.SRV),
    );
    const targets = this.srvTargets();
    let changed = false;
    for (const record of records) {
      if (!this.relevant(record, targets)) continue;
      if (record.data.type === RecordType.SRV && 'srv' in record.data) {
        targets.add(nameKey(record.data.srv.target));
      }
      const key = `${setKey(record)}|${dataKey(record)}`;
      if (record.ttl === 0) {
        // A goodbye (RFC 6762 §10.1): gone now.
        changed = this.entries.delete(key) || changed;
        continue;
      }
      if (record.cacheFlush === true) {
        const set = setKey(record);
        for (const [otherKey, entry] of this.entries) {
          if (
            otherKey !== key &&
            setKey(entry.record) === set &&
            entry.receivedAtMs < nowMs - CACHE_FLUSH_GRACE_MS
          ) {
            this.entries.delete(otherKey);
            changed = true;
          }
        }
      }
      const existing = this.entries.get(key);
      if (existing === undefined && this.entries.size >= MDNS_CACHE_RECORDS_MAX) {
        this.refused++;
        continue;
      }
      if (existing === undefined) changed = true;
      this.entries.set(key, {
        record,
        receivedAtMs: nowMs,
        expiresAtMs: nowMs + record.ttl * 1000,
      });
    }
    return changed;
  }

  /** Drops records whose TTL ran out; true when any did. */
  expire(nowMs: number): boolean {
    let changed = false;
    for (const [key, entry] of this.entries) {
      if (entry.expiresAtMs <= nowMs) {
        this.entries.delete(key);
        changed = true;
      }
    }
    return changed;
  }

  private recordsOf(name: string, type: number): ResourceRecord[] {
    const key = nameKey(name);
    const found: ResourceRecord[] = [];
    for (const entry of this.entries.values()) {
      if (entry.record.data.type === type && nameKey(entry.record.name) === key) {
        found.push(entry.record);
      }
    }
    return found;
  }

  private srvTargets(): Set<string> {
    const targets = new Set<string>();
    for (const entry of this.entries.values()) {
      if ('srv' in entry.record.data) targets.add(nameKey(entry.record.data.srv.target));
    }
    return targets;
  }

  private instances(): string[] {
    return this.recordsOf(this.serviceName, RecordType.PTR).flatMap((record) =>
      'target' in record.data ? [record.data.target] : [],
    );
  }

  private srvOf(instance: string): SrvData | undefined {
    const srvs = this.recordsOf(instance, RecordType.SRV).flatMap((record) =>
      'srv' in record.data ? [record.data.srv] : [],
    );
    srvs.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
    return srvs[0];
  }

  /** The host's usable address: IPv4 first, then a global IPv6 (link-local needs a scope). */
  private addressOf(host: string): string | undefined {
    const v4 = this.recordsOf(host, RecordType.A)
      .flatMap((record) => ('address' in record.data ? [record.data.address] : []))
      .filter((address) => isIPv4(address))
      .sort();
    if (v4[0] !== undefined) return v4[0];
    return this.recordsOf(host, RecordType.AAAA)
      .flatMap((record) => ('address' in record.data ? [record.data.address] : []))
      .filter((address) => !/^fe[89ab]/i.test(address))
      .sort()[0];
  }

  /** The nodes resolved so far (an instance lacking its SRV or address is left out). */
  resolve(source: string): DiscoveredNode[] {
    const nodes: DiscoveredNode[] = [];
    for (const instance of new Set(this.instances())) {
      const srv = this.srvOf(instance);
      if (srv === undefined) continue;
      const host = this.addressOf(srv.target);
      if (host === undefined) continue;
      const txt = this.recordsOf(instance, RecordType.TXT)[0];
      const labels = txt !== undefined && 'strings' in txt.data ? txtLabels(txt.data.strings) : {};
      const instanceLabel = instance.slice(0, instance.length - this.serviceName.length - 1);
      const meta: Record<string, string> = { instance: instanceLabel, host: srv.target };
      for (const [key, value] of Object.entries(labels)) {
        if (key === 'id' || key in meta) continue;
        if (Object.keys(meta).length >= MDNS_META_KEYS_MAX) break;
        meta[key] = value;
      }
      nodes.push({
        address: formatHostPort({ host, port: srv.port }),
        id: labels.id !== undefined && labels.id !== '' ? labels.id : instanceLabel,
        source,
        meta,
      });
    }
    return nodes.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  /** What to ask for next: SRV/TXT of instances without them, addresses of bare targets. */
  missing(): Question[] {
    const questions: Question[] = [];
    for (const instance of new Set(this.instances())) {
      const srv = this.srvOf(instance);
      if (srv === undefined) questions.push({ name: instance, type: RecordType.SRV });
      if (this.recordsOf(instance, RecordType.TXT).length === 0) {
        questions.push({ name: instance, type: RecordType.TXT });
      }
      if (srv !== undefined && this.addressOf(srv.target) === undefined) {
        questions.push({ name: srv.target, type: RecordType.A });
      }
    }
    return questions;
  }
}
