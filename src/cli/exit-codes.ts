import { ErrorCode } from '../core/errors.ts';

/** Exit codes of every rdbnet command (docs/CLI.md). `health` adds its own 0-3 scale. */
export const ExitCode = {
  Ok: 0,
  Failed: 1,
  Usage: 64,
  Unreachable: 69,
} as const;

/** Health exit codes follow the monitoring-plugin convention (Nagios, Icinga, Sensu). */
export const HealthExitCode = { healthy: 0, degraded: 1, critical: 2, unknown: 3 } as const;

export function exitCodeForError(code: string): number {
  switch (code) {
    case ErrorCode.Usage:
    case ErrorCode.DiscoverySyntax:
    case ErrorCode.TopicInvalid:
    case ErrorCode.MessageTooLarge:
    case ErrorCode.AclInvalid:
    case ErrorCode.AclLockout:
      return ExitCode.Usage;
    case ErrorCode.NodeUnreachable:
    case ErrorCode.HandshakeTimeout:
    case ErrorCode.DiscoveryUnreachable:
    case ErrorCode.TargetDead:
      return ExitCode.Unreachable;
    default:
      return ExitCode.Failed;
  }
}
