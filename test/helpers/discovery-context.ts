/**
 * A ProviderContext for provider tests: the real clock, an environment the test gives (never
 * the process's own, so no AWS_* or KUBECONFIG of the machine leaks in), and a log the test
 * can read. By default the cloud metadata services are off or on a closed loopback port, so no
 * test can dial the link-local metadata addresses by accident; a test that wants one points it
 * at its loopback emulator.
 */
import type { ProviderContext } from '../../src/core/discovery/provider.ts';
import { systemClock } from '../../src/core/runtime/index.ts';

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
