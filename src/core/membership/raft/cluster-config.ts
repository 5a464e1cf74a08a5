/**
 * The cluster configuration state machine: what every member applies from the committed
 * Raft log, identically, and rebuilds from snapshot + log on restart.
 *
 * State: the cluster id (made once, at bootstrap), the members (voters and learners, from
 * the Raft membership changes) with their addresses, free-form settings, and a bounded
 * history of every configuration change applied (so nodes can be compared: no committed
 * change may ever be missing from a member that applied past it).
 *
 * The access control list (security/acl.ts) is part of it: `aclAdd`, `aclRemove` and
 * `aclDefault` commands, each checked again when applied (a duplicate priority that raced
 * another add is skipped the same way everywhere), a rule's id made from its entry's index.
 *
 * Entries: membership changes are Raft conf-change entries (`ConfChange`, which carries
 * only a node id); addresses and settings are normal entries holding one JSON command.
 * A new node's address is committed in a normal entry just before its `addLearner`. An
 * empty normal entry is a new leader's no-op. Pure: no I/O, no clocks.
 */
import { ErrorCode, isRdbnetError, RdbnetError } from '../../errors.ts';
import {
  ACL_ACTIONS,
  type AclAction,
  type AclPolicy,
  type AclRuleSpec,
  checkAclAddition,
  EMPTY_ACL_POLICY,
} from '../../security/acl.ts';
import type { ConfChange, ConfState, Entry, NodeId, Snapshot } from './types.ts';
import { decodeConfChange } from './types.ts';

/** History records kept (oldest dropped first): a snapshot carries at most this many. */
export const CONFIG_HISTORY_MAX = 1024;
/** Settings kept; more are refused when proposed and ignored when applied. */
export const CONFIG_SETTINGS_MAX = 256;
/** Longest address or setting value accepted, in characters. */
export const CONFIG_VALUE_CHARS_MAX = 1024;

export type ConfigCommand =
  | { op: 'setAddress'; id: NodeId; address: string }
  | { op: 'setSetting'; key: string; value: string }
  | { op: 'aclAdd'; rule: AclRuleSpec }
  | { op: 'aclRemove'; id: string }
  | { op: 'aclDefault'; action: AclAction };

/** The id of the rule an `aclAdd` entry at `index` adds. */
export function aclRuleId(index: number): string {
  return `acl-${index}`;
}

export interface ConfigRecord {
  index: number;
  term: number;
  /** bootstrap, setAddress, setSetting, addVoter, addLearner, promoteLearner, removeNode. */
  op: string;
  nodeId: string;
  /** The member's address (bootstrap, setAddress, add*), or the setting's `key=value`. */
  address: string;
}

export interface ConfigMember {
  id: NodeId;
  /** Empty when no address was ever committed for it. */
  address: string;
  voter: boolean;
}

/** What applying one entry changed, for the driver's events and waiters. */
export interface AppliedChange {
  record: ConfigRecord;
  /** The conf change, for conf-change entries that were valid and applied. */
  confChange?: ConfChange;
}

interface EncodedConfig {
  v: 1;
  clusterId: string;
  addresses: Record<string, string>;
  settings: Record<string, string>;
  history: ConfigRecord[];
  /** Absent in snapshots written before ACLs: the empty list, default allow. */
  acl?: AclPolicy;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class ClusterConfig {
  clusterId = '';
  /** Index of the last entry applied (or of the snapshot restored). */
  appliedIndex = 0;
  readonly voters = new Set<NodeId>();
  readonly learners = new Set<NodeId>();
  readonly addresses = new Map<NodeId, string>();
  readonly settings = new Map<string, string>();
  history: ConfigRecord[] = [];
  /** The access control list; replaced (never changed in place) by each ACL entry, so a
   * holder can tell a new list by identity. */
  acl: AclPolicy = EMPTY_ACL_POLICY;
  /** Normal entries that were not a command this build knows (counted, then skipped). */
  ignoredEntries = 0;

  /** The configuration a snapshot holds (an empty one for the empty snapshot). */
  static fromSnapshot(snapshot: Snapshot): ClusterConfig {
    const config = new ClusterConfig();
    config.appliedIndex = snapshot.metadata.index;
    for (const id of snapshot.metadata.confState.voters) config.voters.add(id);
    for (const id of snapshot.metadata.confState.learners) config.learners.add(id);
    if (snapshot.data.byteLength === 0) return config;
    let parsed: EncodedConfig;
    try {
      parsed = JSON.parse(decoder.decode(snapshot.data)) as EncodedConfig;
    } catch (cause) {
      throw new RdbnetError(
        ErrorCode.StorageCorrupt,
        'cluster configuration snapshot is not JSON',
        {
          cause,
        },
      );
    }
    if (parsed?.v !== 1 || typeof parsed.clusterId !== 'string') {
      throw new RdbnetError(
        ErrorCode.StorageCorrupt,
        'cluster configuration snapshot is malformed',
      );
    }
    config.clusterId = parsed.clusterId;
    for (const [id, address] of Object.entries(parsed.addresses ?? {})) {
      config.addresses.set(id, String(address));
    }
    for (const [key, value] of Object.entries(parsed.settings ?? {})) {
      config.settings.set(key, String(value));
    }
    config.history = Array.isArray(parsed.history) ? parsed.history.slice(-CONFIG_HISTORY_MAX) : [];
    if (parsed.acl !== undefined) {
      if (!Array.isArray(parsed.acl.rules) || !ACL_ACTIONS.includes(parsed.acl.defaultAction)) {
        throw new RdbnetError(
          ErrorCode.StorageCorrupt,
          'cluster configuration snapshot: malformed acl',
        );
      }
      config.acl = { rules: parsed.acl.rules, defaultAction: parsed.acl.defaultAction };
    }
    return config;
  }

  /**
   * The data of the bootstrap snapshot (index 1, term 1) of a new cluster: every founding
   * member gets the same bytes, so all of them start from the same state.
   */
  static founding(
    clusterId: string,
    voters: readonly { id: NodeId; address: string }[],
  ): ClusterConfig {
    const config = new ClusterConfig();
    config.clusterId = clusterId;
    config.appliedIndex = 1;
    for (const voter of [...voters].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
      config.voters.add(voter.id);
      config.addresses.set(voter.id, voter.address);
      config.history.push({
        index: 1,
        term: 1,
        op: 'bootstrap',
        nodeId: voter.id,
        address: voter.address,
      });
    }
    return config;
  }

  encode(): Uint8Array {
    const encoded: EncodedConfig = {
      v: 1,
      clusterId: this.clusterId,
      addresses: Object.fromEntries([...this.addresses].sort(byKey)),
      settings: Object.fromEntries([...this.settings].sort(byKey)),
      history: this.history,
      ...(this.acl === EMPTY_ACL_POLICY ? {} : { acl: this.acl }),
    };
    return encoder.encode(JSON.stringify(encoded));
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() };
  }

  isMember(id: NodeId): boolean {
    return this.voters.has(id) || this.learners.has(id);
  }

  members(): ConfigMember[] {
    const out: ConfigMember[] = [];
    for (const id of [...this.voters, ...this.learners].sort()) {
      out.push({ id, address: this.addresses.get(id) ?? '', voter: this.voters.has(id) });
    }
    return out;
  }

  /**
   * Applies one committed entry (in index order). Never throws for an entry's content: an
   * entry every member applies must have the same outcome everywhere, so anything malformed
   * or invalid is skipped the same way on every member (and counted).
   */
  apply(entry: Entry): AppliedChange | undefined {
    if (entry.index <= this.appliedIndex) return undefined;
    this.appliedIndex = entry.index;
    if (entry.type === 'confChange') {
      let change: ConfChange;
      try {
        change = decodeConfChange(entry.data);
      } catch {
        this.ignoredEntries++;
        return undefined;
      }
      if (!this.applyConfChange(change)) {
        this.ignoredEntries++;
        return undefined;
      }
      return {
        record: this.record(
          entry,
          change.type,
          change.nodeId,
          this.addresses.get(change.nodeId) ?? '',
        ),
        confChange: change,
      };
    }
    if (entry.data.byteLength === 0) return undefined; // a new leader's empty entry
    const command = decodeConfigCommand(entry.data);
    if (command === undefined) {
      this.ignoredEntries++;
      return undefined;
    }
    switch (command.op) {
      case 'setAddress':
        this.addresses.set(command.id, command.address);
        return { record: this.record(entry, 'setAddress', command.id, command.address) };
      case 'setSetting':
        if (command.value === '') this.settings.delete(command.key);
        else if (this.settings.has(command.key) || this.settings.size < CONFIG_SETTINGS_MAX) {
          this.settings.set(command.key, command.value);
        } else {
          this.ignoredEntries++;
          return undefined;
        }
        return { record: this.record(entry, 'setSetting', '', `${command.key}=${command.value}`) };
      case 'aclAdd':
      case 'aclRemove':
      case 'aclDefault': {
        const applied = this.applyAcl(command, entry.index);
        if (applied === undefined) {
          this.ignoredEntries++;
          return undefined;
        }
        return { record: this.record(entry, command.op, '', applied) };
      }
    }
  }

  /** Applies an ACL command; returns what it did, for the history, or undefined when invalid. */
  private applyAcl(
    command: Extract<ConfigCommand, { op: 'aclAdd' | 'aclRemove' | 'aclDefault' }>,
    index: number,
  ): string | undefined {
    switch (command.op) {
      case 'aclAdd': {
        let rule: AclRuleSpec;
        try {
          rule = checkAclAddition(this.acl, command.rule);
        } catch (error) {
          if (isRdbnetError(error, ErrorCode.AclInvalid)) return undefined;
          throw error;
        }
        const id = aclRuleId(index);
        this.acl = { ...this.acl, rules: [...this.acl.rules, { ...rule, id }] };
        return `${id} ${rule.action} ${rule.source} priority ${rule.priority}${rule.op === undefined ? '' : ` op ${rule.op}`}${rule.identity === undefined ? '' : ` identity ${rule.identity}`}`;
      }
      case 'aclRemove': {
        const rules = this.acl.rules.filter((rule) => rule.id !== command.id);
        if (rules.length === this.acl.rules.length) return undefined;
        this.acl = { ...this.acl, rules };
        return command.id;
      }
      case 'aclDefault':
        this.acl = { ...this.acl, defaultAction: command.action };
        return `default ${command.action}`;
    }
  }

  /** The same validity rules as the Raft core's checkConfChange, so both agree on membership. */
  private applyConfChange(change: ConfChange): boolean {
    const { nodeId } = change;
    const isVoter = this.voters.has(nodeId);
    const isLearner = this.learners.has(nodeId);
    switch (change.type) {
      case 'addVoter':
        if (isVoter || isLearner) return false;
        this.voters.add(nodeId);
        return true;
      case 'addLearner':
        if (isVoter || isLearner) return false;
        this.learners.add(nodeId);
        return true;
      case 'promoteLearner':
        if (!isLearner) return false;
        this.learners.delete(nodeId);
        this.voters.add(nodeId);
        return true;
      case 'removeNode':
        if (!isVoter && !isLearner) return false;
        if (isVoter && this.voters.size === 1) return false;
        this.voters.delete(nodeId);
        this.learners.delete(nodeId);
        this.addresses.delete(nodeId);
        return true;
    }
  }

  private record(entry: Entry, op: string, nodeId: string, address: string): ConfigRecord {
    const record = { index: entry.index, term: entry.term, op, nodeId, address };
    this.history.push(record);
    if (this.history.length > CONFIG_HISTORY_MAX) {
      this.history.splice(0, this.history.length - CONFIG_HISTORY_MAX);
    }
    return record;
  }
}

function byKey(a: [string, string], b: [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

export function encodeConfigCommand(command: ConfigCommand): Uint8Array {
  const problem = checkConfigCommand(command);
  if (problem !== undefined) throw new RdbnetError(ErrorCode.Usage, problem);
  return encoder.encode(JSON.stringify(command));
}

function checkConfigCommand(command: ConfigCommand): string | undefined {
  switch (command.op) {
    case 'setAddress':
      if (typeof command.id !== 'string' || command.id === '') return 'setAddress without an id';
      if (typeof command.address !== 'string' || command.address.length > CONFIG_VALUE_CHARS_MAX) {
        return 'setAddress with a bad address';
      }
      return undefined;
    case 'setSetting':
      if (typeof command.key !== 'string' || command.key === '' || command.key.length > 128) {
        return 'setSetting with a bad key';
      }
      if (typeof command.value !== 'string' || command.value.length > CONFIG_VALUE_CHARS_MAX) {
        return 'setSetting with a bad value';
      }
      return undefined;
    case 'aclAdd':
      return command.rule !== null && typeof command.rule === 'object'
        ? undefined
        : 'aclAdd without a rule';
    case 'aclRemove':
      return typeof command.id === 'string' && command.id !== '' && command.id.length <= 64
        ? undefined
        : 'aclRemove without an id';
    case 'aclDefault':
      return ACL_ACTIONS.includes(command.action) ? undefined : 'aclDefault with a bad action';
    default:
      return `unknown configuration command ${String((command as { op?: unknown }).op)}`;
  }
}

/** The command a normal entry holds, or undefined when it holds none this build knows. */
export function decodeConfigCommand(data: Uint8Array): ConfigCommand | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object') return undefined;
  const command = parsed as ConfigCommand;
  return checkConfigCommand(command) === undefined ? command : undefined;
}
