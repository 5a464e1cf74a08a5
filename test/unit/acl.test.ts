/**
 * The ACL core (src/core/security/acl.ts): parsing (fuzzed: any input is a rule or one
 * RDB_ACL_INVALID, never another exception), the three enforcement stages (accept, handshake,
 * message), priorities, the default policy, per-rule counters, and the admin lockout check.
 * A reference evaluator (a plain first-match over sorted rules) checks the compiled one on
 * random lists.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  type AclOperation,
  type AclPolicy,
  type AclPrincipal,
  type AclRule,
  addressWords,
  CompiledAcl,
  checkAclAddition,
  locksOutAdmins,
  parseAclRule,
  parseCidr,
} from '../../src/core/security/acl.ts';

const admin: AclPrincipal = { name: 'client/admin', role: 'admin' };
const viewer: AclPrincipal = { name: 'client/viewer', role: 'read' };
const node1: AclPrincipal = { name: 'node/n1', role: 'node' };

function rule(id: string, priority: number, fields: Partial<AclRule>): AclRule {
  return { id, priority, source: 'any', action: 'allow', ...fields };
}

function aclInvalid(error: unknown): boolean {
  return isRdbnetError(error, ErrorCode.AclInvalid) && !error.message.includes('\n');
}

describe('parsing', () => {
  test('CIDRs: v4, v6, bare hosts, any; host bits and bad prefixes refused', () => {
    assert.equal(parseCidr('169.254.2.0/24').text, '169.254.2.0/24');
    assert.equal(parseCidr('127.0.0.1').text, '127.0.0.1/32');
    assert.equal(parseCidr('::1').text, '::1/128');
    assert.equal(parseCidr('fe80::/10').text, 'fe80::/10');
    assert.equal(parseCidr('any').text, 'any');
    for (const bad of [
      '169.254.2.1/24',
      '169.254.2.0/33',
      '1.2.3/8',
      'fe80::1/10',
      'x',
      '',
      '::/129',
      '1.2.3.4/',
    ]) {
      assert.throws(() => parseCidr(bad), aclInvalid, bad);
    }
  });

  test('operation classes and identities', () => {
    for (const op of ['gossip', 'raft', 'admin-read', 'admin-write', 'data', 'data:orders.*']) {
      assert.equal(parseAclRule({ source: 'any', action: 'deny', priority: 1, op }).op, op);
    }
    for (const op of ['admin', 'data:a b', 'gossipx', '']) {
      assert.throws(
        () => parseAclRule({ source: 'any', action: 'deny', priority: 1, op }),
        aclInvalid,
        op,
      );
    }
    for (const identity of ['client/admin', 'node/n1', 'node/*', 'client/db-*', 'role:read']) {
      assert.doesNotThrow(() =>
        parseAclRule({ source: 'any', action: 'deny', priority: 1, identity }),
      );
    }
    for (const identity of ['admin', 'role:root', 'user/x', 'client/', 'client/a*b']) {
      assert.throws(
        () => parseAclRule({ source: 'any', action: 'deny', priority: 1, identity }),
        aclInvalid,
        identity,
      );
    }
  });

  test('a duplicate priority is refused naming the rule that holds it', () => {
    const policy: AclPolicy = { rules: [rule('r7', 10, {})], defaultAction: 'allow' };
    assert.throws(
      () => checkAclAddition(policy, { source: 'any', action: 'deny', priority: 10 }),
      (error: unknown) => aclInvalid(error) && (error as Error).message.includes('r7'),
    );
  });

  test('fuzz: any input is a valid rule or one RDB_ACL_INVALID line', () => {
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom('any', '169.254.0.0/16', '::1/128', 'data:x*', 'role:admin', 'node/*'),
      fc.ipV4().map((ip) => `${ip}/${Math.floor(Math.random() * 40)}`),
      fc.ipV6(),
    );
    fc.assert(
      fc.property(
        text,
        fc.oneof(fc.constantFrom('allow', 'deny'), fc.string({ maxLength: 6 })),
        fc.oneof(fc.integer(), fc.double(), fc.constant(Number.NaN)),
        fc.option(text, { nil: undefined }),
        fc.option(text, { nil: undefined }),
        (source, action, priority, op, identity) => {
          try {
            const parsed = parseAclRule({
              source,
              action: action as 'allow',
              priority,
              ...(op === undefined ? {} : { op }),
              ...(identity === undefined ? {} : { identity }),
            });
            // A rule that parsed compiles and evaluates.
            new CompiledAcl({ rules: [{ ...parsed, id: 'r1' }], defaultAction: 'deny' }).decide(
              '127.0.0.1',
              admin,
              { cls: 'admin-read' },
            );
          } catch (error) {
            if (!aclInvalid(error)) throw error;
          }
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe('evaluation', () => {
  const policy: AclPolicy = {
    defaultAction: 'allow',
    rules: [
      rule('deny-net', 20, { source: '169.254.2.0/24', action: 'deny' }),
      rule('allow-admin-host', 10, { source: '169.254.2.7', identity: 'role:admin' }),
      rule('no-writes-v6', 30, { source: 'fe80::/10', action: 'deny', op: 'admin-write' }),
      rule('orders-only-n1', 40, { action: 'deny', op: 'data:orders.*', identity: 'client/*' }),
    ],
  };
  const acl = new CompiledAcl(policy);

  test('accept: a source every rule denies is refused, naming the rule; others pass', () => {
    assert.deepEqual(acl.admits('169.254.2.9'), { allowed: false, rule: 'deny-net' });
    assert.deepEqual(acl.admits('::ffff:169.254.2.9'), { allowed: false, rule: 'deny-net' });
    // An allow for some identity earlier in the list: not refused before the handshake.
    assert.equal(acl.admits('169.254.2.7').allowed, true);
    assert.equal(acl.admits('169.254.3.1').allowed, true);
    assert.equal(acl.admits('fe80::1').allowed, true);
  });

  test('handshake: the identity decides at 169.254.2.7', () => {
    assert.deepEqual(acl.admits('169.254.2.7', admin), { allowed: true, rule: 'allow-admin-host' });
    assert.deepEqual(acl.admits('169.254.2.7', viewer), { allowed: false, rule: 'deny-net' });
  });

  test('message: the first matching rule by priority, topic patterns, the default', () => {
    const op = (cls: AclOperation['cls'], topic?: string): AclOperation =>
      topic === undefined ? { cls } : { cls, topic };
    assert.deepEqual(acl.decide('fe80::1', admin, op('admin-write')), {
      allowed: false,
      rule: 'no-writes-v6',
    });
    assert.deepEqual(acl.decide('fe80::1', admin, op('admin-read')), { allowed: true, rule: null });
    assert.deepEqual(acl.decide('127.0.0.1', viewer, op('data', 'orders.eu')), {
      allowed: false,
      rule: 'orders-only-n1',
    });
    assert.deepEqual(acl.decide('127.0.0.1', node1, op('data', 'orders.eu')), {
      allowed: true,
      rule: null,
    });
    assert.deepEqual(acl.decide('127.0.0.1', viewer, op('data', 'ordersx')), {
      allowed: true,
      rule: null,
    });
    const view = acl.view('fe80::2', admin);
    for (let i = 0; i < 3; i++) assert.equal(view.allowedBy(view.check(op('admin-write'))), false);
    assert.equal(acl.counters().byRule.get('no-writes-v6'), 3);
  });

  test('default deny: a source no rule names is refused at accept', () => {
    const closed = new CompiledAcl({
      defaultAction: 'deny',
      rules: [rule('lo', 1, { source: '127.0.0.0/8' })],
    });
    assert.deepEqual(closed.admits('169.254.1.2'), { allowed: false, rule: null });
    assert.equal(closed.admits('127.0.0.5').allowed, true);
  });

  test('compiled and cached evaluation agree with a plain first match on random lists', () => {
    const sources = [
      'any',
      '169.254.0.0/16',
      '169.254.2.0/24',
      '169.254.2.7',
      '127.0.0.0/8',
      '::1',
      'fe80::/10',
    ];
    const addresses = [
      '169.254.2.7',
      '169.254.2.8',
      '169.254.9.1',
      '127.0.0.1',
      '::1',
      'fe80::5',
      '::ffff:169.254.2.7',
    ];
    const ops = ['gossip', 'raft', 'admin-read', 'admin-write', 'data', 'data:a.*'];
    const whos = [admin, viewer, node1];
    const identities = ['role:admin', 'role:read', 'client/*', 'node/n1', 'client/viewer'];
    const arbRule = fc.record({
      source: fc.constantFrom(...sources),
      action: fc.constantFrom('allow' as const, 'deny' as const),
      op: fc.option(fc.constantFrom(...ops), { nil: undefined }),
      identity: fc.option(fc.constantFrom(...identities), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        fc.array(arbRule, { maxLength: 30 }),
        fc.constantFrom('allow' as const, 'deny' as const),
        fc.constantFrom(...addresses),
        fc.constantFrom(...whos),
        fc.constantFrom<AclOperation>(
          { cls: 'gossip' },
          { cls: 'admin-write' },
          { cls: 'data', topic: 'a.b' },
          { cls: 'data', topic: 'z' },
        ),
        (specs, defaultAction, address, who, op) => {
          const rules = specs.map((spec, i) => {
            const out: AclRule = {
              id: `r${i}`,
              priority: (i * 7919) % 1000,
              source: spec.source,
              action: spec.action,
            };
            if (spec.op !== undefined) out.op = spec.op;
            if (spec.identity !== undefined) out.identity = spec.identity;
            return out;
          });
          const acl = new CompiledAcl({ rules, defaultAction });
          const expected = reference(rules, defaultAction, address, who, op);
          assert.deepEqual(acl.decide(address, who, op), expected);
          const view = acl.view(address, who);
          for (let i = 0; i < 2; i++) {
            const index = view.check(op);
            assert.equal(view.allowedBy(index), expected.allowed);
            assert.equal(view.ruleIdOf(index), expected.rule);
          }
          // Refused at accept or handshake only when the message would be refused anyway.
          if (!acl.admits(address).allowed || !acl.admits(address, who).allowed) {
            assert.equal(expected.allowed, false);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

/** A plain first-match, written apart from the compiled one. */
function reference(
  rules: AclRule[],
  defaultAction: string,
  address: string,
  who: AclPrincipal,
  op: AclOperation,
): { allowed: boolean; rule: string | null } {
  const words = addressWords(address)!;
  for (const r of [...rules].sort((a, b) => a.priority - b.priority)) {
    const cidr = parseCidr(r.source);
    if (!words.every((w, i) => (w & cidr.mask[i]!) >>> 0 === cidr.network[i])) continue;
    if (r.identity !== undefined) {
      if (r.identity.startsWith('role:')) {
        if (who.role !== r.identity.slice(5)) continue;
      } else if (r.identity.endsWith('*')) {
        if (!who.name.startsWith(r.identity.slice(0, -1))) continue;
      } else if (who.name !== r.identity) continue;
    }
    if (r.op !== undefined) {
      const [cls, pattern] = r.op.split(':');
      if (cls !== op.cls) continue;
      if (
        pattern !== undefined &&
        !new RegExp(`^${pattern.replace('.', '\\.').replace('*', '.*')}$`).test(op.topic ?? '')
      ) {
        continue;
      }
    }
    return { allowed: r.action === 'allow', rule: r.id };
  }
  return { allowed: defaultAction === 'allow', rule: null };
}

describe('lockout', () => {
  const asker = { source: '127.0.0.1', who: admin };
  test('denying every admin write everywhere is a lockout; leaving one way in is not', () => {
    const all = rule('x', 1, { action: 'deny', op: 'admin-write' });
    assert.equal(locksOutAdmins({ rules: [all], defaultAction: 'allow' }, asker), true);
    assert.equal(locksOutAdmins({ rules: [], defaultAction: 'deny' }, asker), true);
    const loopbackAllowed = rule('lo', 0, { source: '127.0.0.0/8', identity: 'role:admin' });
    assert.equal(
      locksOutAdmins({ rules: [loopbackAllowed, all], defaultAction: 'deny' }, asker),
      false,
    );
    const elsewhere = rule('net', 0, { source: '169.254.2.0/24' });
    assert.equal(locksOutAdmins({ rules: [elsewhere], defaultAction: 'deny' }, asker), false);
    // One admin denied by name: other admins are not locked out.
    const named = rule('n', 1, { action: 'deny', identity: 'client/admin' });
    assert.equal(locksOutAdmins({ rules: [named], defaultAction: 'allow' }, asker), false);
  });
});
