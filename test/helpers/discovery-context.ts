/**
 * A ProviderContext for provider tests: the real clock, an environment the test gives (never
 * the process's own, so no AWS_* or KUBECONFIG of the machine leaks in), and a log the test
 * can read. By default the cloud metadata services are off or on a closed loopback port, so no
 * test can dial the link-local metadata addresses by accident; a test that wants one points it
 * at its loopback emulator.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DiscoveredNode, ProviderContext } from '../../src/core/discovery/provider.ts';
import { openProvider } from '../../src/core/discovery/registry.ts';
import { ErrorCode } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/runtime/index.ts';

/** The bound on one lookup in a test: far above what a loopback emulator needs. */
export const DISCOVER_TEST_TIMEOUT_MS = 20_000;

export function testContext(env: Record<string, string | undefined> = {}): ProviderContext & {
  lines: string[];
} {
  const lines: string[] = [];
  return {
    env: {
      HOME: '/nonexistent-home',
      AWS_EC2_METADATA_DISABLED: 'true',
      GCE_METADATA_HOST: '127.0.0.1:9',
      ...env,
    },
    clock: systemClock,
    log: (level, message) => {
      lines.push(`${level} ${message}`);
    },
    lines,
  };
}

/** Runs `fn` and returns the error it threw (the test fails if it does not throw). */
export async function rejection(
  fn: () => Promise<unknown> | unknown,
): Promise<Error & { code?: string }> {
  try {
    await fn();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a rejection, got success');
}

/** One lookup through the provider `spec` opens, closed afterwards whatever happens. */
export async function discoverOnce(spec: string, ctx: ProviderContext): Promise<DiscoveredNode[]> {
  const { provider } = openProvider(spec, ctx);
  try {
    return await provider.discover(AbortSignal.timeout(DISCOVER_TEST_TIMEOUT_MS));
  } finally {
    await provider.close?.();
  }
}

/**
 * One test per [spec, key]: opening `spec` is RDB_DISCOVERY_SYNTAX whose message starts with
 * `provider=NAME: KEY `, thrown by create() (before any I/O: no emulator is running for it).
 */
export function specChecks(
  name: string,
  cases: readonly (readonly [spec: string, key: string])[],
  title: (spec: string) => string = (spec) => spec,
): void {
  describe(`provider=${name} spec checks (before any I/O)`, () => {
    for (const [spec, key] of cases) {
      test(`${title(spec)} → RDB_DISCOVERY_SYNTAX naming ${key}`, async () => {
        const error = await rejection(() => openProvider(spec, testContext()));
        assert.equal(error.code, ErrorCode.DiscoverySyntax);
        assert.match(error.message, new RegExp(`^provider=${name}: ${key} `));
      });
    }
  });
}
