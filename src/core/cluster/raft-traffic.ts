/**
 * Raft messages between members: the driver's outgoing batches sent over the peer links
 * (failures reported back to the core as unreachable peers and failed snapshots), incoming
 * batches accepted only from members — or from a node a member vouches for, when this
 * node's configuration may be stale — and the time each member was last heard from.
 */
import { ErrorCode, isRdbnetError } from '../errors.ts';
import type { Message, NodeId } from '../membership/raft/types.ts';
import type { Envelope, RaftBatch } from '../protocol/messages.ts';
import type { PeerIdentity } from '../rpc/peer.ts';
import { request } from '../rpc/request.ts';
import { PEERS_MAX } from './address-book.ts';
import type { ClusterContext } from './context.ts';
import { fail, nodePeer, validAddress } from './guards.ts';
import { messageFromWire, messageToWire } from './raft-codec.ts';

/** Between two rounds of asking members whether an unknown sender is one of them. */
export const VOUCH_INTERVAL_MS = 1000;

export class RaftTraffic {
  /** When each unknown sender was last asked about (bounded by PEERS_MAX). */
  private readonly vouchAskedMs = new Map<NodeId, number>();

  private readonly ctx: ClusterContext;

  constructor(ctx: ClusterContext) {
    this.ctx = ctx;
  }

  /** The driver's `send`: one Ready's messages for `to`, best effort. */
  sendRaft(to: NodeId, messages: Message[]): void {
    const { ctx } = this;
    const counters = ctx.counters;
    const snapshots = messages.some((message) => message.type === 'MsgSnap');
    const address = ctx.addressOf(to);
    if (address === undefined) {
      counters.increment('raft.batches_dropped.no_address');
      ctx.driver?.reportUnreachable(to);
      if (snapshots) ctx.driver?.reportSnapshot(to, false);
      return;
    }
    counters.increment('raft.messages_out', messages.length);
    // Raft keeps its own heartbeats and retries: measured, never refused or retried here.
    request(
      ctx.observedPeer(address),
      'raftBatch',
      { messages: messages.map(messageToWire), to },
      ctx.tunables.peerRequestTimeoutMs,
    ).then(
      () => {
        if (snapshots) ctx.driver?.reportSnapshot(to, true);
      },
      (error: unknown) => {
        const code = isRdbnetError(error) ? error.code : ErrorCode.Internal;
        counters.increment(`raft.batches_failed.${code}`);
        ctx.driver?.reportUnreachable(to);
        if (snapshots) ctx.driver?.reportSnapshot(to, false);
      },
    );
  }

  onRaftBatch(batch: RaftBatch, from: PeerIdentity): Envelope {
    const { ctx } = this;
    const peer = nodePeer(from);
    const driver = ctx.driver;
    if (driver === null || ctx.state !== 'member') {
      fail(ErrorCode.NotMember, `${ctx.id} is not in a cluster (yet)`);
    }
    if (batch.to !== ctx.id) {
      ctx.counters.increment('raft.batches_refused.misaddressed');
      fail(ErrorCode.NotMember, `raft batch for '${batch.to}' reached node ${ctx.id}`);
    }
    if (
      !driver.isKnownMember(peer.id) &&
      !ctx.addresses.preApplyMembers.has(peer.id) &&
      !ctx.vouched.has(peer.id)
    ) {
      ctx.counters.increment('raft.batches_refused.not_member');
      this.askVouch(peer.id);
      fail(ErrorCode.NotMember, `${peer.id} is not a member of cluster ${ctx.clusterId}`);
    }
    const messages = (batch.messages ?? []).map((wire) => messageFromWire(wire, peer.id, ctx.id));
    driver.step(messages);
    ctx.lastHeardMs.set(peer.id, ctx.clock.nowMs());
    ctx.counters.increment('raft.messages_in', messages.length);
    return { raftBatchReply: {} };
  }

  /**
   * A node this one does not know as a member sends Raft traffic: maybe this node's
   * configuration is stale (it was down while that node was added, and that node now leads,
   * so the log entry that would tell it is exactly what it refuses to receive). It asks the
   * members it knows (over their node links, TLS-authenticated); when one of them, in the
   * same cluster, lists the node as a member, that node is accepted until a removal of it
   * is applied. At most one round per node per VOUCH_INTERVAL_MS.
   */
  private askVouch(id: NodeId): void {
    const { ctx } = this;
    const driver = ctx.driver;
    const now = ctx.clock.nowMs();
    if (driver === null || this.vouchAskedMs.size >= PEERS_MAX) return;
    if (now - (this.vouchAskedMs.get(id) ?? Number.NEGATIVE_INFINITY) < VOUCH_INTERVAL_MS) return;
    this.vouchAskedMs.set(id, now);
    const clusterId = driver.config.clusterId;
    for (const member of driver.config.members()) {
      if (member.id === ctx.id || member.id === id) continue;
      const address = ctx.addressOf(member.id);
      if (address === undefined) continue;
      request(
        ctx.guardedPeer(address),
        'clusterStatusRequest',
        { localOnly: true },
        ctx.tunables.peerRequestTimeoutMs,
      ).then(
        (reply) => {
          const listed = (reply.members ?? []).find((entry) => entry.id === id);
          if (
            reply.id === member.id &&
            reply.clusterId === clusterId &&
            listed !== undefined &&
            !ctx.vouched.has(id)
          ) {
            ctx.vouched.add(id);
            // Where to answer it: the voucher's committed address for it.
            if (ctx.addressOf(id) === undefined && validAddress(listed.address)) {
              ctx.addresses.hints.set(id, listed.address);
            }
            this.vouchAskedMs.delete(id);
            ctx.log.info('member vouched for by another member', { node: id, by: member.id });
          }
        },
        () => {},
      );
    }
  }
}
