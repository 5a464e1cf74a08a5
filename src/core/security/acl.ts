/**
 * Access control lists: who (certificate identity or role) may do what (operation class) from
 * where (source CIDR). Pure: parsing, validation and evaluation, no I/O and no clock; the
 * rules live in the Raft-replicated cluster configuration (membership/raft/cluster-config.ts)
 * so every member enforces the same list, and the node enforces it at three points:
 *
 *   accept     only the source address is known: refused when every rule that could apply
 *              to that source (whatever the identity and operation) denies;
 *   handshake  source and identity known: refused when every rule that could apply denies;
 *   message    source, identity and operation class known: the first matching rule decides.
 *
 * Rules are evaluated in ascending `priority` (0 first); two rules never share a priority,
 * so the order is total and the same on every member. No matching rule: the default action.
 *
 * Speed (goal ≤ 1 µs per message at 1,000 rules): a connection's rules are filtered once, by
 * source and identity, into an AclView; each message then walks only that short list, and a
 * view remembers the answer per operation (bounded by ACL_VIEW_CACHE_MAX), so a message costs
 * a map lookup whatever the size of the list.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ErrorCode, RdbnetError } from '../errors.ts';

/** Rules one cluster keeps; more are refused (RDB_ACL_INVALID). */
export const ACL_RULES_MAX = 10_000;
/** Highest priority number accepted (lowest precedence). */
export const ACL_PRIORITY_MAX = 1_000_000_000;
/** Answers an AclView remembers (one per operation class or data topic); past it, evaluated each time. */
export const ACL_VIEW_CACHE_MAX = 256;
/** Longest identity or topic pattern of a rule, in characters. */
const ACL_PATTERN_CHARS_MAX = 256;

export const ACL_ACTIONS = ['allow', 'deny'] as const;
export type AclAction = (typeof ACL_ACTIONS)[number];

/**
 * Operation classes: `gossip` (push-pull and UDP datagrams), `raft` (Raft traffic and the other
 * requests members send each other), `admin-read` (status, members, lists), `admin-write` (every
 * operator change), `data:PATTERN` (messages to topics matching PATTERN, `*` any characters;
 * `data` alone is every topic).
 */
export const ACL_OP_CLASSES = ['gossip', 'raft', 'admin-read', 'admin-write', 'data'] as const;
export type AclOpClass = (typeof ACL_OP_CLASSES)[number];

/** A rule as an operator writes it (`rdbnet acl add`). */
export interface AclRuleSpec {
  /** CIDR (`169.254.2.0/24`, `::1/128`), a bare address (one host), or `any`. */
  source: string;
  action: AclAction;
  /** 0 ..= ACL_PRIORITY_MAX; lower is evaluated first; unique in the list. */
  priority: number;
  /** Operation class (ACL_OP_CLASSES, `data:PATTERN`); absent: every operation. */
  op?: string;
  /** `client/NAME`, `node/ID` (a trailing `*` matches any rest) or `role:admin|read|node`;
   * absent: every identity. */
  identity?: string;
}

/** A rule of the list, with the id the cluster gave it. */
export interface AclRule extends AclRuleSpec {
  id: string;
}

export interface AclPolicy {
  rules: readonly AclRule[];
  /** What happens when no rule matches. */
  defaultAction: AclAction;
}

export const EMPTY_ACL_POLICY: AclPolicy = { rules: [], defaultAction: 'allow' };

/** Who is asking, as a rule sees them: `client/<name>` or `node/<id>`, and the role. */
export interface AclPrincipal {
  name: string;
  role: string;
}

/** What is asked: an operation class, with the topic for `data`. */
export interface AclOperation {
  cls: AclOpClass;
  topic?: string;
}

export interface AclDecision {
  allowed: boolean;
  /** The deciding rule's id; null when the default action decided. */
  rule: string | null;
}

function invalid(message: string, hint?: string): never {
  throw new RdbnetError(ErrorCode.AclInvalid, message, hint === undefined ? undefined : { hint });
}

// ---- addresses: every address is four 32-bit words; IPv4 is mapped (::ffff:a.b.c.d)

type Words = [number, number, number, number];

function ipv4Word(text: string): number {
  const parts = text.split('.');
  return (
    ((Number(parts[0]) << 24) |
      (Number(parts[1]) << 16) |
      (Number(parts[2]) << 8) |
      Number(parts[3])) >>>
    0
  );
}

function ipv6Words(text: string): Words {
  const [head = '', tail] = text.split('::');
  const groupsOf = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const group of part.split(':')) {
      if (group.includes('.')) {
        const word = ipv4Word(group);
        out.push(word >>> 16, word & 0xffff);
      } else out.push(Number.parseInt(group, 16));
    }
    return out;
  };
  const left = groupsOf(head);
  const right = tail === undefined ? [] : groupsOf(tail);
  const groups = [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
  const words: Words = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) words[i] = ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0;
  return words;
}

/** The words of an address (IPv4, IPv6, IPv4-mapped IPv6; a zone is ignored), or undefined. */
export function addressWords(address: string): Words | undefined {
  if (isIPv4(address)) return [0, 0, 0xffff, ipv4Word(address)];
  const bare = address.split('%')[0]!;
  if (!isIPv6(bare)) return undefined;
  return ipv6Words(bare);
}

function maskWords(prefixBits: number): Words {
  const out: Words = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    const bits = Math.max(0, Math.min(32, prefixBits - 32 * i));
    out[i] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  }
  return out;
}

export interface ParsedCidr {
  /** The network, masked, as four words. */
  network: Words;
  mask: Words;
  /** How the rule is shown: `a.b.c.d/n`, `x::/n` or `any`. */
  text: string;
}

/** Parses a rule's source; throws RDB_ACL_INVALID naming the input. */
export function parseCidr(input: string): ParsedCidr {
  if (typeof input !== 'string' || input === '' || input.length > 64) {
    invalid(
      `source '${String(input).slice(0, 64)}' is not a CIDR`,
      'e.g. 169.254.2.0/24, ::1/128 or any',
    );
  }
  if (input === 'any') return { network: [0, 0, 0, 0], mask: [0, 0, 0, 0], text: 'any' };
  const slash = input.indexOf('/');
  const host = slash === -1 ? input : input.slice(0, slash);
  const v4 = isIPv4(host);
  if (!v4 && !isIPv6(host)) {
    invalid(
      `source '${input}' is not a CIDR: '${host}' is not an IP address`,
      'e.g. 169.254.2.0/24, ::1/128 or any',
    );
  }
  const bitsMax = v4 ? 32 : 128;
  let bits = bitsMax;
  if (slash !== -1) {
    const text = input.slice(slash + 1);
    if (!/^\d{1,3}$/.test(text) || Number(text) > bitsMax) {
      invalid(`source '${input}' has a bad prefix length '${text}' (0..${bitsMax})`);
    }
    bits = Number(text);
  }
  const words = addressWords(host)!;
  const mask = maskWords(v4 ? 96 + bits : bits);
  const network = words.map((word, i) => (word & mask[i]!) >>> 0) as Words;
  if (network.some((word, i) => word !== words[i])) {
    invalid(
      `source '${input}' has host bits set past /${bits}`,
      `the network is ${formatNetwork(network, v4, bits)}`,
    );
  }
  return { network, mask, text: slash === -1 ? `${host}/${bits}` : input };
}

function formatNetwork(network: Words, v4: boolean, bits: number): string {
  if (v4) {
    const word = network[3]!;
    return `${word >>> 24}.${(word >>> 16) & 255}.${(word >>> 8) & 255}.${word & 255}/${bits}`;
  }
  const groups: string[] = [];
  for (const word of network) groups.push((word >>> 16).toString(16), (word & 0xffff).toString(16));
  return `${groups.join(':')}/${bits}`;
}

// ---- operations and identities

const TOPIC_PATTERN = /^[A-Za-z0-9._:/*-]+$/;
const NAME_PATTERN = /^[A-Za-z0-9._-]*\*?$/;
const ROLES = new Set(['admin', 'read', 'node']);

interface OpMatcher {
  /** undefined: every operation. */
  cls?: AclOpClass;
  /** For `data`: the topics matched; undefined: every topic. */
  topic?: RegExp;
}

function globRegex(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\/]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

/** Parses `--op`; throws RDB_ACL_INVALID for an unknown class. */
export function parseAclOp(input: string | undefined): OpMatcher {
  if (input === undefined) return {};
  if (typeof input !== 'string' || input.length > ACL_PATTERN_CHARS_MAX)
    invalid('operation class too long');
  if (input === 'data' || input === 'data:*') return { cls: 'data' };
  if (input.startsWith('data:')) {
    const pattern = input.slice('data:'.length);
    if (!TOPIC_PATTERN.test(pattern)) {
      invalid(`topic pattern '${pattern}' has characters outside [A-Za-z0-9._:/-*]`);
    }
    return { cls: 'data', topic: globRegex(pattern) };
  }
  if ((ACL_OP_CLASSES as readonly string[]).includes(input)) return { cls: input as AclOpClass };
  return invalid(
    `unknown operation class '${input}'`,
    `one of ${ACL_OP_CLASSES.slice(0, 4).join(', ')}, data or data:TOPIC-PATTERN`,
  );
}

interface IdentityMatcher {
  kind: 'any' | 'exact' | 'prefix' | 'role';
  value: string;
}

/** Parses `--identity`; throws RDB_ACL_INVALID for anything but the three forms. */
export function parseAclIdentity(input: string | undefined): IdentityMatcher {
  if (input === undefined) return { kind: 'any', value: '' };
  const hint = 'client/NAME, node/ID (a trailing * matches any rest) or role:admin|read|node';
  if (typeof input !== 'string' || input.length > ACL_PATTERN_CHARS_MAX)
    invalid('identity too long', hint);
  if (input.startsWith('role:')) {
    const role = input.slice('role:'.length);
    if (!ROLES.has(role)) invalid(`unknown role '${role}' in identity '${input}'`, hint);
    return { kind: 'role', value: role };
  }
  const slash = input.indexOf('/');
  const kind = input.slice(0, slash);
  const name = input.slice(slash + 1);
  if (
    slash === -1 ||
    (kind !== 'client' && kind !== 'node') ||
    name === '' ||
    !NAME_PATTERN.test(name)
  ) {
    invalid(`identity '${input}' is not a certificate name or role`, hint);
  }
  return name.endsWith('*')
    ? { kind: 'prefix', value: input.slice(0, -1) }
    : { kind: 'exact', value: input };
}

/** Checks one rule spec as typed by an operator; returns it normalized, or throws RDB_ACL_INVALID. */
export function parseAclRule(spec: AclRuleSpec): AclRuleSpec {
  if (spec === null || typeof spec !== 'object') invalid('a rule must be an object');
  const cidr = parseCidr(spec.source);
  if (!(ACL_ACTIONS as readonly string[]).includes(spec.action)) {
    invalid(`action '${String(spec.action)}' is neither allow nor deny`);
  }
  if (
    !Number.isSafeInteger(spec.priority) ||
    spec.priority < 0 ||
    spec.priority > ACL_PRIORITY_MAX
  ) {
    invalid(`priority ${String(spec.priority)} is not an integer in 0..${ACL_PRIORITY_MAX}`);
  }
  parseAclOp(spec.op);
  parseAclIdentity(spec.identity);
  return {
    source: cidr.text,
    action: spec.action,
    priority: spec.priority,
    ...(spec.op === undefined ? {} : { op: spec.op === 'data:*' ? 'data' : spec.op }),
    ...(spec.identity === undefined ? {} : { identity: spec.identity }),
  };
}

/**
 * Checks that `rule` may join `policy`: a valid rule, the list not full, its priority free.
 * Returns the normalized rule; throws RDB_ACL_INVALID otherwise.
 */
export function checkAclAddition(policy: AclPolicy, rule: AclRuleSpec): AclRuleSpec {
  const parsed = parseAclRule(rule);
  if (policy.rules.length >= ACL_RULES_MAX)
    invalid(`the list holds ${ACL_RULES_MAX} rules, the most allowed`);
  const taken = policy.rules.find((existing) => existing.priority === parsed.priority);
  if (taken !== undefined) {
    invalid(
      `priority ${parsed.priority} is taken by rule ${taken.id}`,
      'every rule needs its own priority',
    );
  }
  return parsed;
}

// ---- evaluation

interface CompiledRule {
  index: number;
  id: string;
  allow: boolean;
  n0: number;
  n1: number;
  n2: number;
  n3: number;
  m0: number;
  m1: number;
  m2: number;
  m3: number;
  identity: IdentityMatcher;
  op: OpMatcher;
}

function sourceMatches(rule: CompiledRule, a: Words): boolean {
  return (
    (a[3] & rule.m3) >>> 0 === rule.n3 &&
    (a[2] & rule.m2) >>> 0 === rule.n2 &&
    (a[1] & rule.m1) >>> 0 === rule.n1 &&
    (a[0] & rule.m0) >>> 0 === rule.n0
  );
}

/** Whether the rule names this identity; `null` (no identity: UDP) matches only `any`. */
function identityMatches(matcher: IdentityMatcher, who: AclPrincipal | null): boolean {
  switch (matcher.kind) {
    case 'any':
      return true;
    case 'exact':
      return who !== null && who.name === matcher.value;
    case 'prefix':
      return who?.name.startsWith(matcher.value) === true;
    case 'role':
      return who !== null && who.role === matcher.value;
  }
}

function opMatches(matcher: OpMatcher, op: AclOperation): boolean {
  if (matcher.cls === undefined) return true;
  if (matcher.cls !== op.cls) return false;
  return matcher.topic === undefined || matcher.topic.test(op.topic ?? '');
}

/** A policy ready to evaluate, with a hit counter per rule (and one for the default). */
export class CompiledAcl {
  readonly policy: AclPolicy;
  readonly defaultAllows: boolean;
  /** Hits per rule, in evaluation order (rules sorted by priority). */
  readonly hits: Float64Array;
  defaultHits = 0;
  private readonly rules: CompiledRule[];

  constructor(policy: AclPolicy) {
    this.policy = policy;
    this.defaultAllows = policy.defaultAction === 'allow';
    const sorted = [...policy.rules].sort((a, b) => a.priority - b.priority);
    this.rules = sorted.map((rule, index) => {
      const cidr = parseCidr(rule.source);
      return {
        index,
        id: rule.id,
        allow: rule.action === 'allow',
        n0: cidr.network[0],
        n1: cidr.network[1],
        n2: cidr.network[2],
        n3: cidr.network[3],
        m0: cidr.mask[0],
        m1: cidr.mask[1],
        m2: cidr.mask[2],
        m3: cidr.mask[3],
        identity: parseAclIdentity(rule.identity),
        op: parseAclOp(rule.op),
      };
    });
    this.hits = new Float64Array(this.rules.length);
  }

  get size(): number {
    return this.rules.length;
  }

  /** Hit counts by rule id (this node's, since it started), and the default's. */
  counters(): { byRule: Map<string, number>; defaultHits: number } {
    const byRule = new Map<string, number>();
    for (const rule of this.rules) byRule.set(rule.id, this.hits[rule.index]!);
    return { byRule, defaultHits: this.defaultHits };
  }

  /** Carries hit counts over from the list this one replaces (rules keep their ids). */
  inherit(previous: CompiledAcl): void {
    const old = previous.counters().byRule;
    for (const rule of this.rules) this.hits[rule.index] = old.get(rule.id) ?? 0;
    this.defaultHits = previous.defaultHits;
  }

  /**
   * Accept and handshake: may anything from `source` (as `who`, when known) be allowed?
   * Refused only when every rule that could apply denies. Counts the deciding rule of a refusal.
   */
  admits(source: string, who?: AclPrincipal): AclDecision {
    const words = addressWords(source);
    if (words === undefined) return { allowed: this.defaultAllows, rule: null };
    for (const rule of this.rules) {
      if (!sourceMatches(rule, words)) continue;
      if (who !== undefined && !identityMatches(rule.identity, who)) continue;
      const unconditional =
        rule.op.cls === undefined && (who !== undefined || rule.identity.kind === 'any');
      if (rule.allow) return { allowed: true, rule: unconditional ? rule.id : null };
      if (unconditional) {
        this.hits[rule.index]!++;
        return { allowed: false, rule: rule.id };
      }
    }
    if (!this.defaultAllows) this.defaultHits++;
    return { allowed: this.defaultAllows, rule: null };
  }

  /** The rules that can apply to a connection from `source` as `who` (null: no identity). */
  view(source: string, who: AclPrincipal | null): AclView {
    const words = addressWords(source);
    const rules =
      words === undefined
        ? []
        : this.rules.filter(
            (rule) => sourceMatches(rule, words) && identityMatches(rule.identity, who),
          );
    return new AclView(this, rules);
  }

  /** One full evaluation (no view, no cache): `acl test`, and the lockout check. Not counted. */
  decide(source: string, who: AclPrincipal | null, op: AclOperation): AclDecision {
    return this.decideWords(addressWords(source), who, op);
  }

  decideWords(words: Words | undefined, who: AclPrincipal | null, op: AclOperation): AclDecision {
    if (words !== undefined) {
      for (const rule of this.rules) {
        if (
          sourceMatches(rule, words) &&
          identityMatches(rule.identity, who) &&
          opMatches(rule.op, op)
        ) {
          return { allowed: rule.allow, rule: rule.id };
        }
      }
    }
    return { allowed: this.defaultAllows, rule: null };
  }

  /** @internal for AclView */
  ruleAt(index: number): CompiledRule {
    return this.rules[index]!;
  }
}

/** The rules of one connection (or one UDP source), with the answer per operation remembered. */
export class AclView {
  readonly acl: CompiledAcl;
  private readonly rules: CompiledRule[];
  /** Operation key → deciding rule index (-1: the default). */
  private readonly cache = new Map<string, number>();

  constructor(acl: CompiledAcl, rules: CompiledRule[]) {
    this.acl = acl;
    this.rules = rules;
  }

  /** Decides one message; counts the deciding rule. Returns the rule index (-1: default). */
  check(op: AclOperation): number {
    const key = op.cls === 'data' ? `data:${op.topic ?? ''}` : op.cls;
    let index = this.cache.get(key);
    if (index === undefined) {
      index = -1;
      for (const rule of this.rules) {
        if (opMatches(rule.op, op)) {
          index = rule.index;
          break;
        }
      }
      if (this.cache.size < ACL_VIEW_CACHE_MAX) this.cache.set(key, index);
    }
    if (index === -1) this.acl.defaultHits++;
    else this.acl.hits[index]!++;
    return index;
  }

  allowedBy(index: number): boolean {
    return index === -1 ? this.acl.defaultAllows : this.acl.ruleAt(index).allow;
  }

  ruleIdOf(index: number): string | null {
    return index === -1 ? null : this.acl.ruleAt(index).id;
  }
}

/**
 * Whether `policy` leaves no admin able to change anything: no admin identity (the asker's, or
 * any other admin client) may do `admin-write` from any candidate source (the asker's, loopback,
 * or the first address of any rule's network). A change that leads there is refused unless forced.
 */
export function locksOutAdmins(
  policy: AclPolicy,
  asker: { source: string; who: AclPrincipal },
): boolean {
  const acl = new CompiledAcl(policy);
  const sources = new Set<string>([asker.source, '127.0.0.1', '::1']);
  const identities: AclPrincipal[] = [{ name: 'client/\u0000any-admin', role: 'admin' }];
  if (asker.who.role === 'admin') identities.push(asker.who);
  const candidates: Words[] = [];
  for (const rule of policy.rules) candidates.push(parseCidr(rule.source).network);
  const op: AclOperation = { cls: 'admin-write' };
  for (const who of identities) {
    for (const source of sources) if (acl.decide(source, who, op).allowed) return false;
    for (const words of candidates) if (acl.decideWords(words, who, op).allowed) return false;
  }
  return true;
}
