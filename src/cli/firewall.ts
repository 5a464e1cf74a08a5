/**
 * What the `rdbnet firewall …` commands share: the JSON shape of the node's answer (docs/CLI.md)
 * and its table.
 */
import type { FirewallReply } from '../core/protocol/messages.ts';
import { table } from './output.ts';

export interface FirewallResult {
  /** The node that answered: limits, bans and counters are its own. */
  node: string;
  /** The node's firewall* settings, by name without the prefix. */
  limits: Record<string, number>;
  bans: { source: string; remainingMs: number; reason: string }[];
  /** Refusals by reason since the node started. */
  refused: Record<string, number>;
  automaticBans: number;
  /** `firewall stats`: the sources tracked, most refused first (at most 100). */
  sources?: { source: string; open: number; refused: number; failures: number }[];
  /** `firewall stats`: how many sources the node tracks (at most 4096). */
  tracked?: number;
  /** `firewall unban`: whether there was a ban to lift. */
  changed?: boolean;
}

export function firewallResult(
  reply: FirewallReply,
  extra: 'stats' | 'change' | 'rules',
): FirewallResult {
  // Plain objects with every field: decoded messages keep defaults on their prototype and may
  // carry 64-bit counters as strings.
  const numbers = (record: Record<string, number>) =>
    Object.fromEntries(Object.entries(record ?? {}).map(([key, value]) => [key, Number(value)]));
  const result: FirewallResult = {
    node: reply.node,
    limits: numbers(reply.limits),
    bans: reply.bans.map((ban) => ({
      source: ban.source,
      remainingMs: Number(ban.remainingMs ?? 0),
      reason: ban.reason,
    })),
    refused: numbers(reply.refused),
    automaticBans: Number(reply.automaticBans ?? 0),
  };
  if (extra === 'stats') {
    result.sources = reply.sources.map((source) => ({
      source: source.source,
      open: Number(source.open ?? 0),
      refused: Number(source.refused ?? 0),
      failures: Number(source.failures ?? 0),
    }));
    result.tracked = Number(reply.tracked ?? 0);
  }
  if (extra === 'change') result.changed = reply.changed === true;
  return result;
}

export function bansTable(result: FirewallResult): string {
  if (result.bans.length === 0) return 'no bans';
  return table(
    ['source', 'remaining', 'reason'],
    result.bans.map((ban) => [ban.source, `${Math.ceil(ban.remainingMs / 1000)} s`, ban.reason]),
  );
}

/** Milliseconds from `--for`: a number of ms, or with a unit (500ms, 30s, 10m, 2h). */
export function parseBanLength(text: string): number | undefined {
  const match = /^(\d{1,10})(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? 'ms']!;
  return Number(match[1]) * unit;
}
