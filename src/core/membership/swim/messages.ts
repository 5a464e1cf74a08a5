/**
 * SWIM messages. A UDP packet carries one or more of the datagram messages (a primary
 * ping/ack/… plus piggybacked broadcasts); the full-state push-pull travels alone on the
 * stream transport (TCP in a node), because it grows with the cluster.
 *
 * Incarnations are u32 and only ever grow: the member itself bumps its own to refute a
 * suspicion or to announce new metadata; everyone else only copies them.
 */

import type { Coordinate } from '../vivaldi.ts';

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

/** Wire codes of member states (push-pull entries). */
export const MEMBER_STATE_CODES: Readonly<Record<MemberState, number>> = Object.freeze({
  alive: 0,
  suspect: 1,
  dead: 2,
  left: 3,
});
export const MEMBER_STATES: readonly MemberState[] = ['alive', 'suspect', 'dead', 'left'];

/** Wire codes of message types; never reuse a retired code. */
export const MESSAGE_TYPE_CODES = Object.freeze({
  ping: 1,
  'ping-req': 2,
  ack: 3,
  nack: 4,
  alive: 5,
  suspect: 6,
  dead: 7,
  leave: 8,
} as const);

/** Direct probe. `targetId` lets a node that now sits at a probed address, but is not the
 * member we meant, stay silent instead of acking for it. */
export interface PingMessage {
  type: 'ping';
  seq: number;
  targetId: string;
  /** The prober. A receiver that has never heard of it (the rumour of its join missed
   * this member) starts a push-pull with it. */
  sourceId: string;
}

/** Indirect probe: "ping `targetId` at `targetAddress` for me and forward its ack". */
export interface PingReqMessage {
  type: 'ping-req';
  seq: number;
  targetId: string;
  targetAddress: string;
  /** Ask the relay for a nack if the target does not answer (Lifeguard). */
  wantNack: boolean;
}

export interface AckMessage {
  type: 'ack';
  seq: number;
  /** The answering member's Vivaldi coordinate (direct acks; a relay forwards none). */
  coordinate?: Coordinate;
}

/** From a relay: the target did not answer me either — but I, the relay, am alive. */
export interface NackMessage {
  type: 'nack';
  seq: number;
}

export interface AliveMessage {
  type: 'alive';
  incarnation: number;
  id: string;
  address: string;
  meta: Uint8Array;
}

export interface SuspectMessage {
  type: 'suspect';
  incarnation: number;
  id: string;
  /** The member that suspects; each distinct one is an independent confirmation. */
  fromId: string;
}

export interface DeadMessage {
  type: 'dead';
  incarnation: number;
  id: string;
  fromId: string;
}

/** Graceful departure, sent by the member itself. Only a higher incarnation revives it. */
export interface LeaveMessage {
  type: 'leave';
  incarnation: number;
  id: string;
}

export type BroadcastMessage = AliveMessage | SuspectMessage | DeadMessage | LeaveMessage;
export type DatagramMessage =
  | PingMessage
  | PingReqMessage
  | AckMessage
  | NackMessage
  | BroadcastMessage;

export interface PushPullMember {
  id: string;
  address: string;
  meta: Uint8Array;
  incarnation: number;
  state: MemberState;
}

/** Full-state exchange. The receiver merges it and, unless it is a reply, answers with its
 * own state to `fromAddress` (the sender's advertised address, not the stream's source). */
export interface PushPullMessage {
  type: 'push-pull';
  /** Sent by `join()` rather than by the periodic anti-entropy timer. */
  join: boolean;
  reply: boolean;
  fromAddress: string;
  members: PushPullMember[];
}

export type Transport = 'udp' | 'stream';
