/**
 * The real CLI run inside the namespaces of a star (netns.ts createStar): from the hub's own
 * loopback (the operator on the node's machine) or from a leaf, whose source address is the
 * leaf's. Shared by the ACL and firewall tests, which run one node in the hub.
 */
import assert from 'node:assert/strict';
import type { StarLeaf } from './netns.ts';
import { spawnIn } from './netns.ts';
import { BIN, type CliResult, describeResult } from './processes.ts';

export interface StarCli {
  env(): NodeJS.ProcessEnv;
  /** From the hub's loopback. */
  local(args: string[]): Promise<CliResult>;
  /** From the first leaf (169.254.1.2). */
  fromNear(args: string[]): Promise<CliResult>;
  /** From the second leaf (169.254.2.2). */
  fromFar(args: string[]): Promise<CliResult>;
}

/** `home` and `star` are read at each call: the test makes them in its before(). */
export function starCli(options: {
  home: () => string;
  star: () => { hub: string; near: StarLeaf; far: StarLeaf };
  port: number;
}): StarCli {
  const env = (): NodeJS.ProcessEnv => ({
    ...process.env,
    CI: 'true',
    RDBNET_HOME: options.home(),
    RDBNET_NODE: '',
    RDBNET_CERTS_DIR: '',
    DEBUG: '',
  });
  /** `rdbnet args --json` inside `ns` (bounded), against the node at `address`. */
  const cliIn = (
    ns: string,
    address: string,
    args: string[],
    timeoutMs = 60_000,
  ): Promise<CliResult> =>
    new Promise((resolve, reject) => {
      const child = spawnIn(
        ns,
        process.execPath,
        [BIN, ...args, '--node', address, '--timeout', '10000', '--json'],
        { env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (chunk) => {
        stdout += chunk;
      });
      child.stderr?.on('data', (chunk) => {
        stderr += chunk;
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new Error(
            `rdbnet ${args.join(' ')} in ${ns}: not done within ${timeoutMs} ms\n${stderr}`,
          ),
        );
      }, timeoutMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  const { port } = options;
  return {
    env,
    local: (args) => cliIn(options.star().hub, `127.0.0.1:${port}`, args),
    fromNear: (args) => {
      const { near } = options.star();
      return cliIn(near.ns, `${near.hubAddress}:${port}`, args);
    },
    fromFar: (args) => {
      const { far } = options.star();
      return cliIn(far.ns, `${far.hubAddress}:${port}`, args);
    },
  };
}

export function json<T>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    return assert.fail(`not one JSON document:\n${describeResult(result)}`);
  }
}

export async function ok<T>(result: Promise<CliResult>): Promise<T> {
  const done = await result;
  assert.equal(done.code, 0, describeResult(done));
  return json<T>(done);
}
