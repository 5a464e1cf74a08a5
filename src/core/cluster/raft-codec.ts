/**
 * Raft core messages ⇄ their protobuf form (RaftMessage in proto/rdbnet.proto). The sender is
 * the other end of the connection a batch arrives on and the batch names its receiver once,
 * so the wire form of a message leaves both out; the receiver fills them in from the
 * authenticated peer and itself (after checking the batch is for it).
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { Entry, Message, NodeId, Snapshot } from '../membership/raft/types.ts';
import { MESSAGE_TYPES } from '../membership/raft/types.ts';
import {
  RaftEntryTypeCode,
  type RaftEntryWire,
  type RaftMessageWire,
  type RaftSnapshotWire,
} from '../protocol/messages.ts';

const TYPE_CODES = new Map(MESSAGE_TYPES.map((type, code) => [type, code]));
const EMPTY = new Uint8Array(0);

export function messageToWire(message: Message): RaftMessageWire {
  const wire: RaftMessageWire = {
    type: TYPE_CODES.get(message.type)!,
    term: message.term,
    logTerm: message.logTerm,
    index: message.index,
    commit: message.commit,
    entries: message.entries.map(entryToWire),
    reject: message.reject,
    rejectHint: message.rejectHint,
    transfer: message.transfer,
    transferee: message.transferee,
  };
  if (message.snapshot !== undefined) wire.snapshot = snapshotToWire(message.snapshot);
  return wire;
}

function entryToWire(entry: Entry): RaftEntryWire {
  return {
    term: entry.term,
    index: entry.index,
    type: entry.type === 'confChange' ? RaftEntryTypeCode.ConfChange : RaftEntryTypeCode.Normal,
    data: entry.data,
  };
}

function snapshotToWire(snapshot: Snapshot): RaftSnapshotWire {
  return {
    index: snapshot.metadata.index,
    term: snapshot.metadata.term,
    confState: {
      voters: snapshot.metadata.confState.voters,
      learners: snapshot.metadata.confState.learners,
    },
    data: snapshot.data,
  };
}

/** protobufjs gives an absent bytes field as a shared empty array, not a Uint8Array. */
function bytes(value: Uint8Array | undefined | null): Uint8Array {
  return value instanceof Uint8Array ? value : EMPTY;
}

function malformed(detail: string): never {
  throw new RdbnetError(ErrorCode.MessageMalformed, `raft batch: ${detail}`);
}

/**
 * The core message for a wire message from `from` to `to`. Shape problems are
 * RDB_MESSAGE_MALFORMED here; RawNode.step checks the protocol-level ones.
 */
export function messageFromWire(wire: RaftMessageWire, from: NodeId, to: NodeId): Message {
  const type = MESSAGE_TYPES[wire.type];
  if (type === undefined) malformed(`unknown message type ${wire.type}`);
  const message: Message = {
    type,
    from,
    to,
    term: wire.term ?? 0,
    logTerm: wire.logTerm ?? 0,
    index: wire.index ?? 0,
    commit: wire.commit ?? 0,
    entries: (wire.entries ?? []).map(entryFromWire),
    reject: wire.reject === true,
    rejectHint: wire.rejectHint ?? 0,
    transfer: wire.transfer === true,
    transferee: wire.transferee ?? '',
  };
  const snapshot = wire.snapshot;
  if (snapshot !== undefined && snapshot !== null) {
    message.snapshot = {
      metadata: {
        index: snapshot.index ?? 0,
        term: snapshot.term ?? 0,
        confState: {
          voters: [...(snapshot.confState?.voters ?? [])],
          learners: [...(snapshot.confState?.learners ?? [])],
        },
      },
      data: bytes(snapshot.data),
    };
  }
  return message;
}

function entryFromWire(wire: RaftEntryWire): Entry {
  const code = wire.type ?? RaftEntryTypeCode.Normal;
  if (code !== RaftEntryTypeCode.Normal && code !== RaftEntryTypeCode.ConfChange) {
    malformed(`unknown entry type ${code}`);
  }
  return {
    term: wire.term ?? 0,
    index: wire.index ?? 0,
    type: code === RaftEntryTypeCode.ConfChange ? 'confChange' : 'normal',
    data: bytes(wire.data),
  };
}
