/**
 * A real avahi-daemon (Debian avahi-daemon) for the mDNS tests, run inside a network
 * namespace the test made, on one interface only, with a private D-Bus system bus of its own
 * (dbus-daemon with a config file naming a socket in a temporary directory) — so it neither
 * needs nor touches the host's bus, its interfaces, or an avahi the host may run. The daemon's
 * fixed paths (/run/avahi-daemon: pid file, socket) are covered by a tmpfs in a mount
 * namespace of its own, so it does not find (or leave) a pid file of another avahi.
 * avahi-browse and avahi-publish reach it through DBUS_SYSTEM_BUS_ADDRESS.
 */
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spawnIn } from './netns.ts';

const run = promisify(execFile);
/** How long the bus and the daemon get to come up before the test fails. */
const START_TIMEOUT_MS = 15_000;

/** Why avahi cannot be run here, or undefined when it can. */
export async function avahiUnavailable(): Promise<string | undefined> {
  for (const binary of [
    'avahi-daemon',
    'avahi-browse',
    'avahi-publish',
    'dbus-daemon',
    'unshare',
  ]) {
    try {
      await run('sh', ['-c', `command -v ${binary}`]);
    } catch {
      return `${binary} is not installed (apt-get install avahi-daemon avahi-utils dbus; .ci/run does)`;
    }
  }
  return undefined;
}

export interface Avahi {
  /** For avahi-browse/avahi-publish: `{DBUS_SYSTEM_BUS_ADDRESS: ...}`. */
  env: NodeJS.ProcessEnv;
  ns: string;
  /** Everything the daemon printed (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

function waitFor(what: string, check: () => Promise<boolean> | boolean, log: () => string) {
  return new Promise<void>((resolve, reject) => {
    const deadline = performance.now() + START_TIMEOUT_MS;
    const poll = async (): Promise<void> => {
      if (await check()) return resolve();
      if (performance.now() > deadline) {
        return reject(new Error(`${what} not within ${START_TIMEOUT_MS} ms\n${log()}`));
      }
      setTimeout(poll, 50);
    };
    void poll();
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Starts dbus-daemon and avahi-daemon inside `ns`, on interface `ifname` only. */
export async function startAvahi(ns: string, ifname: string, hostName: string): Promise<Avahi> {
  const dir = await mkdtemp(join(tmpdir(), 'rdbnet-test-avahi-'));
  const socket = join(dir, 'system_bus_socket');
  await writeFile(
    join(dir, 'bus.conf'),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`,
  );
  await writeFile(
    join(dir, 'avahi.conf'),
    `[server]
host-name=${hostName}
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=${ifname}
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
enable-reflector=no
`,
  );
  const env = { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${socket}` };
  let output = '';
  const collect = (child: ChildProcess): void => {
    child.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr?.on('data', (chunk) => {
      output += chunk;
    });
  };
  const bus = spawnIn(ns, 'dbus-daemon', [`--config-file=${join(dir, 'bus.conf')}`, '--nofork']);
  collect(bus);
  const children: ChildProcess[] = [bus];
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(stopChild));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      'the test D-Bus socket',
      () =>
        access(socket).then(
          () => true,
          () => false,
        ),
      () => output,
    );
    const daemon = spawnIn(
      ns,
      'unshare',
      [
        '--mount',
        'sh',
        '-c',
        'mkdir -p /run/avahi-daemon && mount -t tmpfs rdbnet-test-avahi /run/avahi-daemon && exec avahi-daemon -f "$0" --no-drop-root --no-chroot --no-rlimits',
        join(dir, 'avahi.conf'),
      ],
      { env: { ...process.env, ...env } },
    );
    collect(daemon);
    children.push(daemon);
    await waitFor(
      'avahi-daemon startup',
      () => output.includes('Server startup complete'),
      () => output,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { env, ns, log: () => output, stop };
}
