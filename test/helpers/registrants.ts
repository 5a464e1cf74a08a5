/**
 * Registrant processes (test/helpers/discovery-registrant.ts) for the discovery tests: each is
 * one node's registration in its own process, so kill -9 leaves nothing behind to deregister.
 * Every one started is killed by killAllRegistrants() in teardown.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { poller, REPO_ROOT } from './processes.ts';

export interface Registrant {
  child: ChildProcess;
  id: string;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  exited(): Promise<void>;
}

const live: Registrant[] = [];
const until = poller(50);

/** Starts a registrant (`SPEC ID ADDRESS`) and waits until it says it registered. */
export async function startRegistrant(
  spec: string,
  id: string,
  address: string,
): Promise<Registrant> {
  const child = spawn(
    process.execPath,
    [join(REPO_ROOT, 'test', 'helpers', 'discovery-registrant.ts'), spec, id, address],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const registrant: Registrant = {
    child,
    id,
    stdout: () => stdout,
    stderr: () => stderr,
    exited: () => gone,
  };
  live.push(registrant);
  await until(
    `registrant ${id} registered`,
    async () => {
      if (child.exitCode !== null) throw new Error(`registrant ${id} exited: ${stderr}`);
      return stdout.includes('registered') ? true : undefined;
    },
    20_000,
  );
  return registrant;
}

export async function killAllRegistrants(): Promise<void> {
  for (const { child } of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  await Promise.all(live.map((registrant) => registrant.exited()));
  live.length = 0;
}
