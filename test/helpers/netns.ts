/**
 * Network namespaces for tests that need a real LAN segment (broadcast, multicast) without
 * touching the host's interfaces: two namespaces joined by a veth pair, link-local 169.254.x
 * addresses, commands run inside with `ip netns exec`. Needs root and iproute2.
 *
 * Names are `rdbnet-test-<tag>-<pid>-<n>`: unique per test process, and a namespace whose pid
 * is no longer alive is a leftover of a crashed run, removed by `removeStaleNamespaces()`.
 * Every namespace made is recorded and deleted by `destroyAllNamespaces()` (call it from
 * after(), whatever the test did); deleting a namespace also deletes its veth end.
 */
import { type ChildProcess, execFile, type SpawnOptions, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PREFIX = 'rdbnet-test-';
/** Every `ip` call is bounded: a hung one fails the test rather than the CI job. */
const IP_TIMEOUT_MS = 10_000;

export interface NetnsEnd {
  /** The namespace's name. */
  ns: string;
  /** The veth end's name inside it. */
  ifname: string;
  /** Its 169.254.x.y address (prefix /16, broadcast 169.254.255.255). */
  address: string;
}

export interface VethPair {
  a: NetnsEnd;
  b: NetnsEnd;
  broadcast: string;
}

let counter = 0;
const made = new Set<string>();

/** Why namespaces cannot be used here, or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (ip netns add); CI runs as root';
  try {
    await run('ip', ['netns', 'list'], { timeout: IP_TIMEOUT_MS });
  } catch (error) {
    return `ip netns does not work here: ${(error as Error).message}`;
  }
  return undefined;
}

export async function ip(args: string[]): Promise<string> {
  const { stdout } = await run('ip', args, { timeout: IP_TIMEOUT_MS });
  return stdout;
}

/** Deletes rdbnet-test-* namespaces whose creating process is gone (a crashed earlier run). */
export async function removeStaleNamespaces(): Promise<string[]> {
  const removed: string[] = [];
  for (const line of (await ip(['netns', 'list'])).split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const match = /^rdbnet-test-.*-(\d+)-\d+$/.exec(name);
    if (match === null) continue;
    const pid = Number(match[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (alive && pid !== process.pid) continue;
    if (pid === process.pid && made.has(name)) continue;
    await ip(['netns', 'del', name]).catch(() => {});
    removed.push(name);
  }
  return removed;
}

/** A fresh namespace; its loopback is brought up unless `loopbackUp: false` (no interface at all). */
export async function createNamespace(tag: string, options: { loopbackUp?: boolean } = {}) {
  const name = `${PREFIX}${tag}-${process.pid}-${counter++}`;
  await ip(['netns', 'add', name]);
  made.add(name);
  if (options.loopbackUp !== false) await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

/**
 * Two fresh namespaces joined by a veth pair, both ends up with multicast on, addressed
 * 169.254.<subnet>.1 and .2 in 169.254.0.0/16.
 */
export async function createVethPair(tag: string, hostByte = 1): Promise<VethPair> {
  const nsA = await createNamespace(`${tag}a`);
  const nsB = await createNamespace(`${tag}b`);
  // Created directly inside the namespaces, so the names never meet the host's interfaces.
  await ip([
    'link',
    'add',
    'rdbv0',
    'netns',
    nsA,
    'type',
    'veth',
    'peer',
    'name',
    'rdbv1',
    'netns',
    nsB,
  ]);
  const a: NetnsEnd = { ns: nsA, ifname: 'rdbv0', address: `169.254.${hostByte}.1` };
  const b: NetnsEnd = { ns: nsB, ifname: 'rdbv1', address: `169.254.${hostByte}.2` };
  for (const end of [a, b]) {
    await ip(['-n', end.ns, 'addr', 'add', `${end.address}/16`, 'brd', '+', 'dev', end.ifname]);
    await ip(['-n', end.ns, 'link', 'set', end.ifname, 'multicast', 'on']);
    await ip(['-n', end.ns, 'link', 'set', end.ifname, 'up']);
  }
  return { a, b, broadcast: '169.254.255.255' };
}

/** Runs `command args` inside `ns` to completion (bounded), returning its output. */
export async function execIn(
  ns: string,
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  return run('ip', ['netns', 'exec', ns, command, ...args], {
    env: { ...process.env, ...options.env },
    timeout: options.timeoutMs ?? 20_000,
  });
}

const children = new Set<ChildProcess>();

/** Starts `command args` inside `ns` (ip execs it, so the child's pid is the command's). */
export function spawnIn(
  ns: string,
  command: string,
  args: string[],
  options: SpawnOptions = {},
): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, command, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options,
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** SIGKILLs every process spawnIn started that is still running, and waits for them. */
export async function killAllInNamespaces(): Promise<void> {
  await Promise.all(
    [...children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/** Kills what runs inside, then deletes every namespace this process made. */
export async function destroyAllNamespaces(): Promise<void> {
  await killAllInNamespaces();
  for (const name of made) {
    // Processes started some other way (a daemon that forked) would keep a namespace's
    // interfaces alive; `ip netns pids` finds them.
    const pids = await ip(['netns', 'pids', name]).catch(() => '');
    for (const pid of pids.split('\n').filter((line) => /^\d+$/.test(line))) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await ip(['netns', 'del', name]).catch(() => {});
    made.delete(name);
  }
}

/** One leaf of a star: its namespace and address, and the hub's address on their link. */
export interface StarLeaf {
  ns: string;
  /** 169.254.<n>.2, the leaf's own address (a distinct source address per leaf). */
  address: string;
  /** 169.254.<n>.1, the hub's address on this leaf's link. */
  hubAddress: string;
}

/**
 * A hub namespace joined to `leaves` leaf namespaces, one veth pair each: link n (from 1) is
 * 169.254.<n>.0/24 with the hub at .1 and the leaf at .2 — so every leaf reaches the hub from
 * its own source address (tests of per-source access control, rate limits and bans).
 */
export async function createStar(
  tag: string,
  leaves: number,
): Promise<{ hub: string; leaves: StarLeaf[] }> {
  const hub = await createNamespace(`${tag}h`);
  const out: StarLeaf[] = [];
  for (let n = 1; n <= leaves; n++) {
    const ns = await createNamespace(`${tag}${n}`);
    await ip([
      'link',
      'add',
      `rdbh${n}`,
      'netns',
      hub,
      'type',
      'veth',
      'peer',
      'name',
      'rdbl0',
      'netns',
      ns,
    ]);
    const leaf: StarLeaf = { ns, address: `169.254.${n}.2`, hubAddress: `169.254.${n}.1` };
    await ip(['-n', hub, 'addr', 'add', `${leaf.hubAddress}/24`, 'dev', `rdbh${n}`]);
    await ip(['-n', hub, 'link', 'set', `rdbh${n}`, 'up']);
    await ip(['-n', ns, 'addr', 'add', `${leaf.address}/24`, 'dev', 'rdbl0']);
    await ip(['-n', ns, 'link', 'set', 'rdbl0', 'up']);
    out.push(leaf);
  }
  return { hub, leaves: out };
}
