/**
 * The node's enforcement of the cluster's access control list (security/acl.ts) and its audit
 * log (audit-log.ts): the gates the listener calls at accept and at the handshake, the check
 * the admin handler makes per request, the check gossip makes per datagram, and the
 * `rdbnet acl …` / `rdbnet audit tail` requests.
 *
 * The list is the one of the applied cluster configuration, compiled again whenever a new one
 * is applied (no restart), with each rule's hit counter carried over. A connection's view of
 * the list (its rules, filtered by source and identity) is built once and rebuilt only when the
 * list changes, so a message costs a map lookup (see the AclView cache).
 */

import type { AccessRequests } from '../api/admin.ts';
import type { Operation } from '../api/authorization.ts';
import { aclOperationOf, principalOf } from '../api/authorization.ts';
import type { AclCommand } from '../cluster/acl-changes.ts';
import { ErrorCode, isRdbnetError, RdbnetError } from '../errors.ts';
import type { PeerInfo } from '../protocol/handshake.ts';
import type {
  AclReply,
  AclRequest,
  AuditReply,
  DecodedEnvelope,
  FirewallReply,
  FirewallRequest,
} from '../protocol/messages.ts';
import type { PeerIdentity } from '../rpc/peer.ts';
import {
  ACL_OP_CLASSES,
  type AclOperation,
  type AclPolicy,
  type AclPrincipal,
  type AclRuleSpec,
  type AclView,
  addressWords,
  CompiledAcl,
  checkAclAddition,
  EMPTY_ACL_POLICY,
  locksOutAdmins,
  parseAclIdentity,
} from '../security/acl.ts';
import type { AuditLog } from './audit-log.ts';
import type { NodeFirewall } from './firewall.ts';

/** UDP sources whose view is remembered; past it the table starts over (bounded memory). */
export const ACL_DATAGRAM_SOURCES_MAX = 4096;

export interface NodeAccessInit {
  id: string;
  audit: AuditLog;
  /** The applied configuration's list (the empty one until the node is a member). */
  policy(): AclPolicy;
  /** The node's firewall: `rdbnet firewall …` requests are its. */
  firewall: NodeFirewall;
  /** Proposes a change through the leader (ClusterService.changeAcl); throws before a cluster. */
  change(command: AclCommand, request: AclRequest, from: PeerIdentity): Promise<AclReply>;
}

/** The host of a `host:port` (IPv6 hosts as written, without brackets). */
export function hostOf(remoteAddress: string): string {
  const colon = remoteAddress.lastIndexOf(':');
  const host = colon === -1 ? remoteAddress : remoteAddress.slice(0, colon);
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function principalOfPeer(
  peer: Pick<PeerInfo, 'id' | 'role' | 'authenticated' | 'clientRole'>,
): AclPrincipal {
  const principal = principalOf(peer);
  return { name: principal.name, role: principal.role };
}

function denied(what: string, source: string, who: string, rule: string | null): RdbnetError {
  const by = rule === null ? 'the default policy (deny)' : `rule ${rule}`;
  return new RdbnetError(
    ErrorCode.AclDenied,
    `${what} from ${source}${who === '' ? '' : ` as ${who}`} denied by the access control list: ${by}`,
    { hint: 'see `rdbnet acl list` and `rdbnet acl test`' },
  );
}

export class NodeAccess implements AccessRequests {
  private readonly init: NodeAccessInit;
  private compiledAcl = new CompiledAcl(EMPTY_ACL_POLICY);
  private readonly views = new WeakMap<object, AclView>();
  private datagramViews = new Map<string, AclView>();

  constructor(init: NodeAccessInit) {
    this.init = init;
  }

  /** The compiled list, compiled again when a new one was applied. */
  current(): CompiledAcl {
    const policy = this.init.policy();
    if (policy !== this.compiledAcl.policy) {
      const next = new CompiledAcl(policy);
      next.inherit(this.compiledAcl);
      this.compiledAcl = next;
    }
    return this.compiledAcl;
  }

  /** Accept: a RdbnetError when nothing from `remoteIp` could be allowed (the socket is closed). */
  onAccept(remoteIp: string): RdbnetError | undefined {
    const acl = this.current();
    if (acl.size === 0 && acl.defaultAllows) return undefined;
    const decision = acl.admits(remoteIp);
    if (decision.allowed) return undefined;
    const error = denied('connection', remoteIp, '', decision.rule);
    this.record('deny', 'accept', remoteIp, '', 'connect', decision.rule, error.message);
    return error;
  }

  /** Handshake: throws RDB_ACL_DENIED when nothing this peer could ask would be allowed. */
  onHandshake(remoteAddress: string, peer: PeerInfo): void {
    const acl = this.current();
    if (acl.size === 0 && acl.defaultAllows) return;
    const who = principalOfPeer(peer);
    const decision = acl.admits(hostOf(remoteAddress), who);
    if (decision.allowed) return;
    const error = denied('connection', remoteAddress, who.name, decision.rule);
    this.record(
      'deny',
      'handshake',
      remoteAddress,
      who.name,
      'hello',
      decision.rule,
      error.message,
    );
    throw error;
  }

  /** Per request: throws RDB_ACL_DENIED when the first matching rule (or the default) denies. */
  admitRequest(operation: Operation, request: DecodedEnvelope, connection: PeerIdentity): void {
    const acl = this.current();
    if (acl.size === 0) {
      if (acl.defaultAllows) return;
    }
    let view = this.views.get(connection);
    if (view === undefined || view.acl !== acl) {
      const peer = connection.peer;
      view = acl.view(
        hostOf(connection.remoteAddress),
        peer === null ? null : principalOfPeer(peer),
      );
      this.views.set(connection, view);
    }
    const op = aclOperationOf(operation, request);
    const index = view.check(op);
    if (view.allowedBy(index)) return;
    const who = connection.peer === null ? '' : principalOfPeer(connection.peer).name;
    const rule = view.ruleIdOf(index);
    const error = denied(`${operation} (${describeOp(op)})`, connection.remoteAddress, who, rule);
    this.record('deny', 'message', connection.remoteAddress, who, operation, rule, error.message);
    throw error;
  }

  /** Gossip datagrams (no identity): whether one from `remoteIp` may be taken in. */
  admitsDatagram(remoteIp: string): boolean {
    const acl = this.current();
    if (acl.size === 0 && acl.defaultAllows) return true;
    let view = this.datagramViews.get(remoteIp);
    if (view === undefined || view.acl !== acl) {
      if (this.datagramViews.size >= ACL_DATAGRAM_SOURCES_MAX) this.datagramViews = new Map();
      view = acl.view(remoteIp, null);
      this.datagramViews.set(remoteIp, view);
    }
    const index = view.check({ cls: 'gossip' });
    if (view.allowedBy(index)) return true;
    const rule = view.ruleIdOf(index);
    this.record('deny', 'gossip', remoteIp, '', 'gossip.datagram', rule, 'gossip datagram dropped');
    return false;
  }

  /** A refusal by the role table, or an operator's change (applied or failed). */
  record(
    decision: 'deny' | 'allow' | 'fail',
    stage: 'accept' | 'handshake' | 'message' | 'gossip' | 'admin',
    source: string,
    who: string,
    what: string,
    rule: string | null | undefined,
    reason: string,
  ): void {
    this.init.audit.record({
      decision,
      stage,
      source,
      who,
      what,
      rule: rule === undefined ? '' : (rule ?? 'default'),
      reason,
    });
  }

  audit(afterSeq: number): AuditReply {
    return this.init.audit.after(afterSeq, this.init.id);
  }

  firewall(request: FirewallRequest, connection: PeerIdentity): FirewallReply {
    const reply = this.init.firewall.handle(request, connection);
    if (request.op === 'ban' || request.op === 'unban') {
      const who = connection.peer === null ? '' : principalOfPeer(connection.peer).name;
      this.record(
        'allow',
        'admin',
        connection.remoteAddress,
        who,
        `firewall.${request.op}`,
        undefined,
        `${request.op} ${request.source}${request.op === 'ban' ? ` for ${request.banMs || 'the default'} ms` : reply.changed ? '' : ' (was not banned)'}`,
      );
    }
    return reply;
  }

  async handle(request: AclRequest, connection: PeerIdentity): Promise<AclReply> {
    switch (request.op) {
      case 'list':
        return this.list();
      case 'test':
        return this.test(request);
      case 'add':
      case 'remove':
      case 'default':
        break;
      default:
        throw new RdbnetError(ErrorCode.AclInvalid, `unknown acl operation '${request.op}'`);
    }
    const who = connection.peer === null ? '' : principalOfPeer(connection.peer).name;
    if (request.forwarded) return this.init.change(commandOf(request), request, connection);
    let command: AclCommand | undefined;
    try {
      command = commandOf(request);
      this.checkChange(command, request.force, connection);
      const reply = await this.init.change(command, request, connection);
      this.record(
        'allow',
        'admin',
        connection.remoteAddress,
        who,
        `acl.${request.op}`,
        reply.id || null,
        describeCommand(command, reply),
      );
      return reply;
    } catch (error) {
      const message = isRdbnetError(error) ? `${error.code}: ${error.message}` : String(error);
      this.record(
        'fail',
        'admin',
        connection.remoteAddress,
        who,
        `acl.${request.op}`,
        undefined,
        message,
      );
      throw error;
    }
  }

  /** Checks against this node's applied list, before anything is proposed. */
  private checkChange(command: AclCommand, force: boolean, connection: PeerIdentity): void {
    const policy = this.current().policy;
    let next: AclPolicy;
    switch (command.op) {
      case 'aclAdd':
        command.rule = checkAclAddition(policy, command.rule);
        next = { ...policy, rules: [...policy.rules, { ...command.rule, id: 'new' }] };
        break;
      case 'aclRemove':
        if (!policy.rules.some((rule) => rule.id === command.id)) {
          throw new RdbnetError(
            ErrorCode.AclInvalid,
            `no rule ${command.id} in the access control list`,
            {
              hint: 'see `rdbnet acl list`',
            },
          );
        }
        next = { ...policy, rules: policy.rules.filter((rule) => rule.id !== command.id) };
        break;
      case 'aclDefault':
        next = { ...policy, defaultAction: command.action };
        break;
    }
    if (force || connection.peer === null) return;
    const asker = {
      source: hostOf(connection.remoteAddress),
      who: principalOfPeer(connection.peer),
    };
    if (locksOutAdmins(next, asker)) {
      throw new RdbnetError(
        ErrorCode.AclLockout,
        'this change would leave no admin able to change anything (admin-write denied to every admin from every source)',
        { hint: 'add an allow rule for admins first, or pass --force' },
      );
    }
  }

  private list(): AclReply {
    const acl = this.current();
    const { byRule, defaultHits } = acl.counters();
    const rules = [...acl.policy.rules]
      .sort((a, b) => a.priority - b.priority)
      .map((rule) => ({
        id: rule.id,
        source: rule.source,
        action: rule.action,
        priority: rule.priority,
        op: rule.op ?? '',
        identity: rule.identity ?? '',
        hits: byRule.get(rule.id) ?? 0,
      }));
    return {
      rules,
      id: '',
      defaultAction: acl.policy.defaultAction,
      defaultHits,
      allowed: false,
      rule: '',
      index: 0,
      node: this.init.id,
    };
  }

  private test(request: AclRequest): AclReply {
    const source = request.testSource;
    if (addressWords(source) === undefined) {
      throw new RdbnetError(ErrorCode.AclInvalid, `--source '${source}' is not an IP address`);
    }
    const op = parseTestOp(request.testOp);
    let who: AclPrincipal | null = null;
    if (request.testIdentity !== '') {
      const identity = parseAclIdentity(request.testIdentity);
      if (identity.kind !== 'exact') {
        throw new RdbnetError(
          ErrorCode.AclInvalid,
          `--identity '${request.testIdentity}' must name one certificate: client/NAME or node/ID`,
        );
      }
      const role =
        request.testRole !== ''
          ? request.testRole
          : identity.value.startsWith('node/')
            ? 'node'
            : '';
      if (role !== '' && !['admin', 'read', 'node'].includes(role)) {
        throw new RdbnetError(ErrorCode.AclInvalid, `--role '${role}' is not admin, read or node`);
      }
      who = { name: identity.value, role };
    }
    const decision = this.current().decide(source, who, op);
    return {
      rules: [],
      id: '',
      defaultAction: this.current().policy.defaultAction,
      defaultHits: 0,
      allowed: decision.allowed,
      rule: decision.rule ?? '',
      index: 0,
      node: this.init.id,
    };
  }
}

function describeOp(op: AclOperation): string {
  return op.cls === 'data' ? `data:${op.topic ?? ''}` : op.cls;
}

/** `acl test --op`: a class, or `data:TOPIC` (one topic, not a pattern). */
function parseTestOp(text: string): AclOperation {
  if (text.startsWith('data:')) {
    const topic = text.slice('data:'.length);
    if (topic === '' || topic.includes('*')) {
      throw new RdbnetError(
        ErrorCode.AclInvalid,
        `--op '${text}' must name one topic (data:TOPIC)`,
      );
    }
    return { cls: 'data', topic };
  }
  if (text !== 'data' && (ACL_OP_CLASSES as readonly string[]).includes(text)) {
    return { cls: text as AclOperation['cls'] };
  }
  throw new RdbnetError(ErrorCode.AclInvalid, `unknown operation class '${text}'`, {
    hint: 'one of gossip, raft, admin-read, admin-write or data:TOPIC',
  });
}

/** The configuration command an AclRequest asks for (checked for syntax only). */
export function commandOf(request: AclRequest): AclCommand {
  switch (request.op) {
    case 'add': {
      const rule = request.rule;
      if (rule === null || rule === undefined) {
        throw new RdbnetError(ErrorCode.AclInvalid, 'acl add without a rule');
      }
      const spec: AclRuleSpec = {
        source: rule.source,
        action: rule.action as AclRuleSpec['action'],
        priority: rule.priority,
        ...(rule.op === '' ? {} : { op: rule.op }),
        ...(rule.identity === '' ? {} : { identity: rule.identity }),
      };
      return { op: 'aclAdd', rule: spec };
    }
    case 'remove':
      if (!/^acl-\d{1,15}$/.test(request.id)) {
        throw new RdbnetError(ErrorCode.AclInvalid, `'${request.id}' is not a rule id (acl-N)`, {
          hint: 'see `rdbnet acl list`',
        });
      }
      return { op: 'aclRemove', id: request.id };
    case 'default':
      if (request.defaultAction !== 'allow' && request.defaultAction !== 'deny') {
        throw new RdbnetError(
          ErrorCode.AclInvalid,
          `default '${request.defaultAction}' is neither allow nor deny`,
        );
      }
      return { op: 'aclDefault', action: request.defaultAction };
    default:
      throw new RdbnetError(ErrorCode.AclInvalid, `unknown acl operation '${request.op}'`);
  }
}

function describeCommand(command: AclCommand, reply: AclReply): string {
  switch (command.op) {
    case 'aclAdd': {
      const rule = command.rule;
      return `added ${reply.id}: ${rule.action} ${rule.source} priority ${rule.priority}${rule.op === undefined ? '' : ` op ${rule.op}`}${rule.identity === undefined ? '' : ` identity ${rule.identity}`}`;
    }
    case 'aclRemove':
      return `removed ${command.id}`;
    case 'aclDefault':
      return `default ${command.action}`;
  }
}
