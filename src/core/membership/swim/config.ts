/**
 * Typed configuration of the SWIM + Lifeguard membership machine, with named presets
 * (`lan` is the default; `wan` and `local` override it) and a validator that rejects a
 * config whose timers cannot work together.
 *
 * How the `lan` numbers meet the targets (~0.1 ms RTT, 5–20 nodes):
 *   - A member stops answering at t0. Someone's round-robin reaches it within W (every
 *     survivor probes one member per 150 ms interval; at 20 nodes W has median ≈ 1 and
 *     p99 ≈ 4.5 intervals), and that prober suspects it one interval later, once the
 *     direct ping, two retries and three relays have all failed.
 *   - The suspicion timeout never drops below the stall floor, stallToleranceMs +
 *     refuteBudgetMs − probeIntervalMs = 1950 ms, counted from that suspicion — so from t0
 *     at least 2000 + 100 ms pass before anyone can declare death. A member that froze for
 *     at most 2 s therefore has ≥ 100 ms after it resumes; it refutes on resuming without
 *     waiting to be told (it notices its own pause), and urgent gossip (rounds every 20 ms
 *     until sent) plus a direct packet to its accuser deliver the refutation in time.
 *   - Confirmations from the other probers (k = 3) drive every timer to the floor; the
 *     first death is gossiped urgently, so all survivors mark it dead at t0 + W +
 *     stallToleranceMs + refuteBudgetMs: ≈ 2.2 s median, ≈ 2.7 s p99 at 20 nodes.
 *   The price of tolerating 2 s stalls is that no crash is declared sooner than 2.1 s.
 *   Probing every 150 ms (at 200 ms W's p99 alone is ~0.9 s) keeps W's tail inside the 3 s
 *   target; gossip, at 100 ms, still runs more often than probing.
 */
import { ErrorCode, RdbnetError } from '../../errors.ts';

export interface SwimConfig {
  /** Longest the caller may wait between two `tick()` calls when `nextWakeMs()` is further
   * away; timers fire up to this late. lan 10 ms. */
  tickMs: number;
  /** A tick (or receive) this much later than the machine expected means our own process
   * was paused (GC, CPU starvation, suspended VM): the probe in flight is abandoned without
   * a verdict and every suspicion timer is extended by the pause, because we could not
   * hear refutations while paused. lan 100 ms. */
  localStallThresholdMs: number;

  // --- failure detection -----------------------------------------------------------------
  /** Time between two probes of this node (one member per interval, round-robin over a
   * shuffled member list, so every member is probed within N intervals). Scaled by the
   * local health (awareness) multiplier. lan 150 ms: W's tail (see above) is ~4.5 of these
   * at 20 nodes, and 3 s − 2.1 s leaves room for about 900 ms of it. */
  probeIntervalMs: number;
  /** Time to wait for the direct ack before re-sending the ping (probeDirectRetries), or
   * asking relays if there are no retries. Scaled by the awareness multiplier. lan 50 ms
   * (500× the LAN RTT; room for a busy event loop). */
  probeTimeoutMs: number;
  /** Direct pings re-sent when the first ack is late, each an independent chance through a
   * lossy link: one lost datagram (the usual case) then costs 2 packets instead of the 12+
   * of an indirect probe, and a suspicion needs every retry lost as well (memberlist sends
   * a TCP ping for the same reason). 0 goes straight to the indirect probe. lan 2. */
  probeDirectRetries: number;
  /** Time to wait for the retried pings' ack before asking relays. Scaled by awareness.
   * lan 25 ms. */
  probeRetryTimeoutMs: number;
  /** Members asked to probe a target that missed its direct ack (the `k` of SWIM). lan 3. */
  indirectChecks: number;
  /** Time a member relaying an indirect probe waits for the target's ack before it sends
   * us a nack (Lifeguard: a nack tells us the relay is alive, so a missing nack points at
   * our own health). The whole probe (timeout + retry timeout + this) must end before the
   * probe interval does. lan 60 ms. */
  indirectProbeTimeoutMs: number;
  /** Lifeguard local-health ceiling: the awareness score runs 0..max−1 and multiplies the
   * probe interval and timeout by (score + 1). lan 8. */
  awarenessMaxMultiplier: number;

  // --- suspicion -------------------------------------------------------------------------
  /** Minimum suspicion timeout = suspicionMult × max(1, log10(N)) × probeIntervalMs, but
   * never below the stall floor (stallToleranceMs + refuteBudgetMs − probeIntervalMs).
   * The log term gives larger clusters, where news takes longer to reach everyone, more
   * time to refute. lan 5: the floor (1950 ms) rules up to ~400 nodes, 2250 ms at 1000. */
  suspicionMult: number;
  /** Lifeguard: a suspicion starts at max = this × min and shrinks toward min with the log
   * of independent confirmations. lan 3. */
  suspicionMaxTimeoutMult: number;
  /** Independent confirmations that drive a suspicion to its minimum timeout (capped at
   * N − 2, the members that can confirm). lan 3. */
  suspicionConfirmationsExpected: number;
  /** A member that stops answering for at most this long (GC pause, stalled VM) is never
   * declared dead; it is at most suspected and refutes when it resumes. lan 2000 ms. */
  stallToleranceMs: number;
  /** Time a resumed member has to spread its refutation to every member; added to the
   * stall tolerance, so it delays every crash detection by as much. lan 100 ms (the urgent
   * refutation reaches 100 nodes at 5% loss in ~5 ms, the stragglers within ~60 ms). */
  refuteBudgetMs: number;

  // --- dissemination ---------------------------------------------------------------------
  /** Time between gossip rounds while broadcasts are queued (no broadcasts, no packets).
   * lan 100 ms: more often than probing, as in memberlist (200 ms gossip, 1 s probes). */
  gossipIntervalMs: number;
  /** New information (a join, suspicion, refutation, death or leave) is forwarded at once,
   * but never sooner than this after the previous round, so a burst is batched. lan 5 ms. */
  gossipIntervalMinMs: number;
  /** While urgent news is queued, gossip rounds come this often, so the members the first
   * wave missed hear it within tens of milliseconds. lan 20 ms. */
  gossipUrgentIntervalMs: number;
  /** Members sent a gossip packet per round. lan 3. */
  gossipFanout: number;
  /** Dead members still receive gossip for this long, so one that was wrongly declared dead
   * hears it and refutes. lan 30_000 ms. */
  gossipToDeadMs: number;
  /** Each broadcast is sent retransmitMult × ceil(log10(N + 1)) times. lan 4. */
  retransmitMult: number;

  // --- anti-entropy ----------------------------------------------------------------------
  /** Full state exchange with one random member over the stream transport. Above
   * `pushPullScaleMembers` members the interval grows linearly with N, so that the bytes
   * per node per second stay flat as the cluster grows. lan 30_000 ms. */
  pushPullIntervalMs: number;
  /** Cluster size up to which the push-pull interval is not scaled. lan 32. */
  pushPullScaleMembers: number;
  /** After a join, one more push-pull with the seed that answered, at a random time in
   * [½, 1] × this, to learn the members that joined at the same moment as we did (the seed
   * did not know them yet when it answered). lan 1000 ms. */
  joinResyncMs: number;
  /** A ping from a member we do not know (the rumour of its join missed us) triggers a
   * push-pull with it, at most once per this interval. lan 1000 ms. */
  unknownSenderSyncIntervalMs: number;
  /** Every interval one dead member is pinged; if it answers (a healed partition), we
   * push-pull with it so both sides learn they were wrong and refute. lan 10_000 ms. */
  reconnectIntervalMs: number;

  // --- tombstones and leave -------------------------------------------------------------
  /** A dead or left member is kept this long (so stale messages about it are recognised
   * and healed partitions can reconnect), then forgotten. lan 60_000 ms. */
  tombstoneMs: number;
  /** A dead or left member's id may be claimed by a new address after this long (a node
   * restarted elsewhere). Until then such a claim is a conflict and is ignored. lan 5000 ms. */
  deadReclaimMs: number;
  /** `leave()` reports completion when the leave broadcast has been sent its full
   * retransmit count, or after this long at most. lan 2000 ms. */
  leaveTimeoutMs: number;

  // --- bounds ----------------------------------------------------------------------------
  /** Largest application metadata per member; larger is rejected locally and malformed on
   * the wire. lan 512 bytes. */
  metaBytesMax: number;
  /** Largest UDP packet sent or accepted: a 1500-byte Ethernet MTU minus IP/UDP headers and
   * room for encryption. lan 1400 bytes. */
  packetBytesMax: number;
  /** Largest push-pull state message; a larger state is truncated (counted). lan 8 MiB. */
  streamBytesMax: number;
  /** Members (alive, suspect and tombstones) held; new ones beyond are refused (counted).
   * lan 10_000. */
  memberCountMax: number;
  /** Broadcasts waiting to be gossiped; when full the most-transmitted one is dropped
   * (counted). lan 4096. */
  broadcastsQueuedMax: number;
  /** Packets waiting in the outbox between two `takeOutbox()` calls; beyond it new packets
   * are dropped (counted), like a full socket buffer. lan 4096. */
  outboxPacketsMax: number;
  /** Events waiting between two `takeEvents()` calls; beyond it the oldest is dropped
   * (counted). lan 10_000. */
  eventsQueuedMax: number;
  /** Indirect probes relayed for others at once; more ping-reqs are ignored (counted).
   * lan 256. */
  relaysPendingMax: number;

  // --- per-member health -----------------------------------------------------------------
  /** Phi above which a member's detector reports it unavailable. lan 8. */
  phiThreshold: number;
  /** Ack intervals a member's phi detector remembers. lan 100. */
  phiWindowSize: number;
}

/** The base: a LAN with sub-millisecond RTT. */
export const SWIM_LAN: Readonly<SwimConfig> = Object.freeze({
  tickMs: 10,
  localStallThresholdMs: 100,
  probeIntervalMs: 150,
  probeTimeoutMs: 50,
  probeRetryTimeoutMs: 25,
  indirectChecks: 3,
  indirectProbeTimeoutMs: 60,
  probeDirectRetries: 2,
  awarenessMaxMultiplier: 8,
  suspicionMult: 5,
  suspicionMaxTimeoutMult: 3,
  suspicionConfirmationsExpected: 3,
  stallToleranceMs: 2000,
  refuteBudgetMs: 100,
  gossipIntervalMs: 100,
  gossipIntervalMinMs: 5,
  gossipUrgentIntervalMs: 20,
  gossipFanout: 3,
  gossipToDeadMs: 30_000,
  retransmitMult: 4,
  pushPullIntervalMs: 30_000,
  pushPullScaleMembers: 32,
  joinResyncMs: 1000,
  unknownSenderSyncIntervalMs: 1000,
  reconnectIntervalMs: 10_000,
  tombstoneMs: 60_000,
  deadReclaimMs: 5000,
  leaveTimeoutMs: 2000,
  metaBytesMax: 512,
  packetBytesMax: 1400,
  streamBytesMax: 8 * 1024 * 1024,
  memberCountMax: 10_000,
  broadcastsQueuedMax: 4096,
  outboxPacketsMax: 4096,
  eventsQueuedMax: 10_000,
  relaysPendingMax: 256,
  phiThreshold: 8,
  phiWindowSize: 100,
});

/**
 * Between regions: RTT up to ~300 ms and more loss. Probes give a slow answer room (direct
 * 700 ms, relayed 800 ms, the round 2 s); a 5 s stall is tolerated, so detection takes
 * 6–9 s. Gossip and anti-entropy slow down to save cross-region bandwidth.
 */
export const SWIM_WAN: Readonly<SwimConfig> = Object.freeze({
  ...SWIM_LAN,
  tickMs: 50,
  localStallThresholdMs: 500,
  probeIntervalMs: 2000,
  probeTimeoutMs: 600,
  probeRetryTimeoutMs: 400,
  indirectProbeTimeoutMs: 800,
  suspicionMult: 6,
  stallToleranceMs: 5000,
  refuteBudgetMs: 1500,
  gossipIntervalMs: 300,
  gossipIntervalMinMs: 20,
  gossipUrgentIntervalMs: 60,
  gossipToDeadMs: 60_000,
  pushPullIntervalMs: 60_000,
  reconnectIntervalMs: 30_000,
  tombstoneMs: 300_000,
  deadReclaimMs: 30_000,
  leaveTimeoutMs: 5000,
});

/**
 * One machine or loopback (tests, development): fast timers, 1 s stall tolerance, so a
 * crash is seen within about 1.5 s.
 */
export const SWIM_LOCAL: Readonly<SwimConfig> = Object.freeze({
  ...SWIM_LAN,
  tickMs: 5,
  localStallThresholdMs: 50,
  probeIntervalMs: 100,
  probeTimeoutMs: 30,
  probeRetryTimeoutMs: 15,
  indirectProbeTimeoutMs: 30,
  suspicionMult: 3,
  stallToleranceMs: 1000,
  refuteBudgetMs: 100,
  gossipIntervalMs: 50,
  gossipIntervalMinMs: 2,
  gossipUrgentIntervalMs: 10,
  gossipToDeadMs: 15_000,
  pushPullIntervalMs: 15_000,
  reconnectIntervalMs: 5000,
  tombstoneMs: 30_000,
  deadReclaimMs: 2000,
  leaveTimeoutMs: 1000,
});

export const SWIM_PRESETS = Object.freeze({ lan: SWIM_LAN, wan: SWIM_WAN, local: SWIM_LOCAL });
export type SwimPreset = keyof typeof SWIM_PRESETS;

/** Worst-case bytes of an alive message apart from its metadata (see codec.ts): message
 * header 3, incarnation 4, id and address up to 1 + 255 each, metadata length 2. */
const ALIVE_FIXED_BYTES_MAX = 3 + 4 + 256 + 256 + 2;
/** Datagram header (codec.ts). */
const DATAGRAM_HEADER_BYTES = 4;
/** Largest UDP payload over IPv4. */
const UDP_PAYLOAD_BYTES_MAX = 65_507;

/** A preset with overrides, validated. */
export function swimConfig(
  preset: SwimPreset = 'lan',
  overrides: Partial<SwimConfig> = {},
): SwimConfig {
  return validateSwimConfig({ ...SWIM_PRESETS[preset], ...overrides });
}

/**
 * Returns the config if every field is in range and the timers fit together; otherwise
 * throws RDB_CONFIG_INVALID listing every problem found.
 */
export function validateSwimConfig(config: SwimConfig): SwimConfig {
  const problems: string[] = [];
  const base: Record<string, unknown> = { ...SWIM_LAN };
  for (const name of Object.keys(base)) {
    const value = (config as unknown as Record<string, unknown>)[name];
    if (typeof base[name] === 'boolean') {
      if (typeof value !== 'boolean') problems.push(`${name} must be a boolean`);
    } else if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      problems.push(`${name} must be a finite number ≥ 0, got ${String(value)}`);
    }
  }
  for (const name of Object.keys(config)) {
    if (!(name in base)) problems.push(`unknown field ${name}`);
  }
  if (problems.length > 0) throw invalid(problems);

  const positive: (keyof SwimConfig)[] = [
    'tickMs',
    'localStallThresholdMs',
    'probeIntervalMs',
    'probeTimeoutMs',
    'probeRetryTimeoutMs',
    'indirectProbeTimeoutMs',
    'awarenessMaxMultiplier',
    'suspicionMult',
    'suspicionMaxTimeoutMult',
    'stallToleranceMs',
    'gossipIntervalMs',
    'gossipUrgentIntervalMs',
    'gossipFanout',
    'retransmitMult',
    'pushPullIntervalMs',
    'pushPullScaleMembers',
    'unknownSenderSyncIntervalMs',
    'joinResyncMs',
    'reconnectIntervalMs',
    'tombstoneMs',
    'leaveTimeoutMs',
    'packetBytesMax',
    'streamBytesMax',
    'memberCountMax',
    'broadcastsQueuedMax',
    'outboxPacketsMax',
    'eventsQueuedMax',
    'relaysPendingMax',
    'phiThreshold',
    'phiWindowSize',
  ];
  for (const name of positive) {
    if ((config[name] as number) <= 0) problems.push(`${name} must be > 0`);
  }
  const integers: (keyof SwimConfig)[] = [
    'indirectChecks',
    'probeDirectRetries',
    'awarenessMaxMultiplier',
    'suspicionConfirmationsExpected',
    'gossipFanout',
    'retransmitMult',
    'pushPullScaleMembers',
    'metaBytesMax',
    'packetBytesMax',
    'streamBytesMax',
    'memberCountMax',
    'broadcastsQueuedMax',
    'outboxPacketsMax',
    'eventsQueuedMax',
    'relaysPendingMax',
    'phiWindowSize',
  ];
  for (const name of integers) {
    if (!Number.isInteger(config[name])) problems.push(`${name} must be an integer`);
  }
  if (config.indirectChecks > 16) problems.push('indirectChecks must be ≤ 16');
  if (config.gossipFanout > 16) problems.push('gossipFanout must be ≤ 16');
  if (config.probeDirectRetries > 4) problems.push('probeDirectRetries must be ≤ 4');
  if (config.suspicionMaxTimeoutMult < 1) problems.push('suspicionMaxTimeoutMult must be ≥ 1');
  if (config.probeTimeoutMs >= config.probeIntervalMs) {
    problems.push('probeTimeoutMs must be < probeIntervalMs');
  }
  // The relay's nack must reach us before our probe round ends, or every failed probe
  // would look like our own fault and inflate the awareness score.
  const retryMs = config.probeDirectRetries > 0 ? config.probeRetryTimeoutMs : 0;
  if (config.probeTimeoutMs + retryMs + config.indirectProbeTimeoutMs >= config.probeIntervalMs) {
    problems.push(
      'probeTimeoutMs + probeRetryTimeoutMs + indirectProbeTimeoutMs must be < probeIntervalMs',
    );
  }
  if (config.tickMs > Math.min(config.probeTimeoutMs, config.probeRetryTimeoutMs)) {
    problems.push('tickMs must be ≤ probeTimeoutMs and ≤ probeRetryTimeoutMs');
  }
  if (config.localStallThresholdMs < config.tickMs) {
    problems.push('localStallThresholdMs must be ≥ tickMs');
  }
  if (config.gossipIntervalMinMs > config.gossipUrgentIntervalMs) {
    problems.push('gossipIntervalMinMs must be ≤ gossipUrgentIntervalMs');
  }
  if (config.gossipUrgentIntervalMs > config.gossipIntervalMs) {
    problems.push('gossipUrgentIntervalMs must be ≤ gossipIntervalMs');
  }
  if (config.refuteBudgetMs <= 0) problems.push('refuteBudgetMs must be > 0');
  if (config.packetBytesMax < 512 || config.packetBytesMax > UDP_PAYLOAD_BYTES_MAX) {
    problems.push(`packetBytesMax must be in 512..${UDP_PAYLOAD_BYTES_MAX}`);
  }
  // Any single broadcast must fit an otherwise empty packet, or it could never be sent.
  const metaRoom = config.packetBytesMax - DATAGRAM_HEADER_BYTES - ALIVE_FIXED_BYTES_MAX;
  if (config.metaBytesMax > metaRoom) {
    problems.push(
      `metaBytesMax must be ≤ ${metaRoom} with packetBytesMax ${config.packetBytesMax}`,
    );
  }
  if (config.metaBytesMax > 0xffff) problems.push('metaBytesMax must be ≤ 65535');
  if (config.streamBytesMax < config.packetBytesMax) {
    problems.push('streamBytesMax must be ≥ packetBytesMax');
  }
  if (config.streamBytesMax > 0xffff_ffff) problems.push('streamBytesMax must be < 4 GiB');
  if (problems.length > 0) throw invalid(problems);
  return config;
}

function invalid(problems: string[]): RdbnetError {
  return new RdbnetError(ErrorCode.ConfigInvalid, `invalid SWIM config: ${problems.join('; ')}`);
}

/** Each broadcast is sent this many times before it is dropped from the queue. */
export function retransmitLimit(config: SwimConfig, members: number): number {
  return config.retransmitMult * Math.max(1, Math.ceil(Math.log10(members + 1)));
}

/** Push-pull interval for a cluster of `members`: linear above the scale threshold so the
 * O(N) state exchange costs each node the same bytes per second at any size. */
export function pushPullIntervalMs(config: SwimConfig, members: number): number {
  return config.pushPullIntervalMs * Math.max(1, members / config.pushPullScaleMembers);
}
