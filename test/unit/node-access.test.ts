/**
 * The node's enforcement of the ACL (src/core/node/access.ts) without sockets: the gates at
 * accept and handshake, the per-request check with its operation class, gossip datagrams
 * (no identity), each refusal audited with its rule, a new list applied without a restart
 * (rule counters carried over), and `acl list|test|add` answered from the applied list.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { aclRequest } from '../../src/cli/acl.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { aclRuleId } from '../../src/core/membership/raft/cluster-config.ts';
import { NodeAccess } from '../../src/core/node/access.ts';
import { AuditLog } from '../../src/core/node/audit-log.ts';
import { NodeFirewall } from '../../src/core/node/firewall.ts';
import type { DecodedEnvelope } from '../../src/core/protocol/messages.ts';
import type { PeerIdentity } from '../../src/core/rpc/peer.ts';
import { Counters } from '../../src/core/runtime/index.ts';
import type { AclPolicy } from '../../src/core/security/acl.ts';
import { FIREWALL_LIMITS_DEFAULT } from '../../src/core/security/firewall.ts';
import { VirtualClock } from '../../src/core/sim/index.ts';

function setup(initial: AclPolicy) {
  let policy = initial;
  const clock = new VirtualClock();
  const counters = new Counters();
  const audit = new AuditLog({ clock, counters, sink: null });
  const firewall = new NodeFirewall({
    id: 'n1',
    limits: FIREWALL_LIMITS_DEFAULT,
    clock,
    counters,
    audit,
  });
  const proposed: unknown[] = [];
  const access = new NodeAccess({
    id: 'n1',
    audit,
    firewall,
    policy: () => policy,
    change: async (command) => {
      proposed.push(command);
      return {
        rules: [],
        id: 'acl-99',
        defaultAction: 'allow',
        defaultHits: 0,
        allowed: false,
        rule: '',
        index: 99,
        node: 'n1',
      };
    },
  });
  return { access, audit, proposed, setPolicy: (next: AclPolicy) => (policy = next) };
}

const admin = (remoteAddress: string): PeerIdentity => ({
  remoteAddress,
  peer: { id: 'ops', role: 'client', authenticated: true, clientRole: 'admin' },
});
const request = (kind: string, body: object = {}) => ({ kind, body }) as unknown as DecodedEnvelope;
const denied = (error: unknown) => isRdbnetError(error, ErrorCode.AclDenied);

describe('node access', () => {
  const policy: AclPolicy = {
    defaultAction: 'allow',
    rules: [
      { id: 'acl-2', priority: 10, source: '169.254.2.0/24', action: 'deny' },
      { id: 'acl-3', priority: 20, source: '169.254.1.0/24', action: 'deny', op: 'admin-write' },
      { id: 'acl-4', priority: 30, source: 'any', action: 'deny', op: 'data:secret.*' },
    ],
  };

  test('accept, handshake, request and datagram refusals, each audited with its rule', () => {
    const { access, audit } = setup(policy);
    assert.equal(access.onAccept('169.254.2.2')?.code, ErrorCode.AclDenied);
    assert.equal(access.onAccept('169.254.1.2'), undefined);
    assert.throws(
      () =>
        access.onHandshake('169.254.2.2:5000', {
          id: 'ops',
          role: 'client',
          authenticated: true,
          clientRole: 'admin',
        } as never),
      denied,
    );
    const near = admin('169.254.1.2:4000');
    assert.doesNotThrow(() => access.admitRequest('node.status', request('statusRequest'), near));
    assert.throws(
      () => access.admitRequest('keys.install', request('keyringRequest'), near),
      denied,
    );
    assert.throws(
      () =>
        access.admitRequest(
          'dataplane.message',
          request('topicRequest', { topic: 'secret.keys' }),
          near,
        ),
      denied,
    );
    assert.doesNotThrow(() =>
      access.admitRequest('dataplane.message', request('topicRequest', { topic: 'public' }), near),
    );
    assert.equal(access.admitsDatagram('169.254.2.2'), false);
    assert.equal(access.admitsDatagram('169.254.1.2'), true);
    const records = audit.after(0, 'n1').records.map((r) => [r.stage, r.rule, r.decision]);
    assert.deepEqual(records, [
      ['accept', 'acl-2', 'deny'],
      ['handshake', 'acl-2', 'deny'],
      ['message', 'acl-3', 'deny'],
      ['message', 'acl-4', 'deny'],
      ['gossip', 'acl-2', 'deny'],
    ]);
  });

  test('a new list applies at once on open connections; counters survive it', async () => {
    const { access, setPolicy } = setup(policy);
    const near = admin('169.254.1.2:4000');
    assert.throws(
      () => access.admitRequest('keys.install', request('keyringRequest'), near),
      denied,
    );
    setPolicy({ ...policy, rules: policy.rules.filter((rule) => rule.id !== 'acl-3') });
    assert.doesNotThrow(() => access.admitRequest('keys.install', request('keyringRequest'), near));
    access.onAccept('169.254.2.9');
    const list = await access.handle(aclRequest({ op: 'list' }), near);
    assert.deepEqual(
      list.rules.map((rule) => [rule.id, rule.hits]),
      [
        ['acl-2', 1],
        ['acl-4', 0],
      ],
    );
  });

  test('acl test and add: syntax and lockout checked before anything is proposed', async () => {
    const { access, proposed } = setup(policy);
    const local = admin('127.0.0.1:4000');
    const test1 = await access.handle(
      aclRequest({ op: 'test', testSource: '169.254.1.7', testOp: 'admin-write' }),
      local,
    );
    assert.deepEqual([test1.allowed, test1.rule], [false, 'acl-3']);
    await assert.rejects(
      access.handle(
        aclRequest({ op: 'test', testSource: '169.254.1.0/24', testOp: 'admin-write' }),
        local,
      ),
      (error: unknown) => isRdbnetError(error, ErrorCode.AclInvalid),
    );
    const rule = (priority: number, fields: object = {}) => ({
      id: '',
      source: 'any',
      action: 'deny',
      priority,
      op: 'admin-write',
      identity: '',
      hits: 0,
      ...fields,
    });
    await assert.rejects(
      access.handle(aclRequest({ op: 'add', rule: rule(5) }), local),
      (error: unknown) => isRdbnetError(error, ErrorCode.AclLockout),
    );
    await assert.rejects(
      access.handle(aclRequest({ op: 'add', rule: rule(10, { op: '' }) }), local),
      (error: unknown) => isRdbnetError(error, ErrorCode.AclInvalid),
    );
    assert.deepEqual(proposed, []);
    const added = await access.handle(aclRequest({ op: 'add', rule: rule(5), force: true }), local);
    assert.equal(added.id, 'acl-99');
    assert.equal(proposed.length, 1);
    assert.equal(aclRuleId(99), 'acl-99');
  });
});
