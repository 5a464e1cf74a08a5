/**
 * What the `rdbnet acl …` commands share: the request with every field filled, and the JSON
 * shape of a rule (docs/CLI.md).
 */
import type { AclReply, AclRequest, AclRuleMessage } from '../core/protocol/messages.ts';

/** An AclRequest with the fields `fields` does not set empty. */
export function aclRequest(fields: Partial<AclRequest> & { op: string }): AclRequest {
  return {
    rule: null,
    id: '',
    force: false,
    forwarded: false,
    testSource: '',
    testOp: '',
    testIdentity: '',
    testRole: '',
    defaultAction: '',
    ...fields,
  };
}

/** One rule as `acl list --json` prints it: absent op or identity are null (every one). */
export interface AclRuleView {
  id: string;
  priority: number;
  action: string;
  source: string;
  op: string | null;
  identity: string | null;
  /** Connections and messages this rule decided on the node asked, since it started. */
  hits: number;
}

export function ruleView(rule: AclRuleMessage): AclRuleView {
  return {
    id: rule.id,
    priority: rule.priority,
    action: rule.action,
    source: rule.source,
    op: rule.op === '' ? null : rule.op,
    identity: rule.identity === '' ? null : rule.identity,
    hits: Number(rule.hits ?? 0),
  };
}

export interface AclChangeResult {
  /** The rule added or removed ('' for `acl default`). */
  id: string;
  /** The configuration entry that applied the change. */
  index: number;
  defaultAction: string;
}

export function changeResult(reply: AclReply): AclChangeResult {
  return { id: reply.id, index: reply.index, defaultAction: reply.defaultAction };
}
