/**
 * provider=mdns against a REAL avahi-daemon (Debian), both ways: avahi-browse sees what
 * rdbnet announces (and stops seeing it after rdbnet's goodbye), and rdbnet discovers and
 * watches what avahi-publish announces. avahi runs in one network namespace this test makes
 * (its own D-Bus, test/helpers/avahi.ts), rdbnet in the other, joined by a veth pair with
 * 169.254.x addresses — never the host's interfaces.
 *
 * Loopback multicast is enough for rdbnet ↔ rdbnet: the last suite runs the provider
 * in-process on 127.0.0.1, without namespaces or root.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { DiscoveredNode } from '../../src/core/discovery/provider.ts';
import { mdnsProvider } from '../../src/core/discovery/providers/mdns.ts';
import {
  decodeMessage,
  emptyMessage,
  encodeMessage,
  isResponse,
  RecordType,
} from '../../src/core/discovery/providers/mdns-codec.ts';
import { systemClock } from '../../src/core/runtime/index.ts';
import { type Avahi, avahiUnavailable, startAvahi } from '../helpers/avahi.ts';
import {
  createNamespace,
  createVethPair,
  destroyAllNamespaces,
  execIn,
  netnsUnavailable,
  removeStaleNamespaces,
  spawnIn,
  type VethPair,
} from '../helpers/netns.ts';

const DRIVER = fileURLToPath(new URL('../helpers/lan-discovery-driver.ts', import.meta.url));
const skipNetns = (await netnsUnavailable()) ?? (await avahiUnavailable());

interface Line {
  nodes?: DiscoveredNode[];
  registered?: boolean;
}

function collectLines(child: ChildProcess): { lines: Line[]; stderr: () => string } {
  const lines: Line[] = [];
  let buffered = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      lines.push(JSON.parse(buffered.slice(0, newline)) as Line);
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return { lines, stderr: () => stderr };
}

async function eventually<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 15_000,
) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill(signal);
  });
}

/** `avahi-browse -rpt`'s resolved lines (`=;iface;IPv4;name;type;domain;host;address;port;txt`). */
async function avahiBrowse(avahi: Avahi): Promise<string[][]> {
  const { stdout } = await execIn(avahi.ns, 'avahi-browse', ['-rpt', '_rdbnet._tcp'], {
    env: avahi.env,
    timeoutMs: 15_000,
  });
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('='))
    .map((line) => line.split(';'));
}

describe('provider=mdns against a real avahi-daemon in a network namespace', {
  skip: skipNetns,
}, () => {
  let pair: VethPair;
  let avahi: Avahi;
  let rdbnetSpec: string;

  before(async () => {
    await removeStaleNamespaces();
    pair = await createVethPair('md', 2);
    avahi = await startAvahi(pair.b.ns, pair.b.ifname, 'rdbnet-avahi');
    rdbnetSpec = `provider=mdns interface=${pair.a.ifname} timeout=1500ms`;
  });

  after(async () => {
    await avahi?.stop();
    await destroyAllNamespaces();
  });

  test('avahi-browse sees what rdbnet announces, and stops seeing it after the goodbye', async () => {
    const registrar = spawnIn(pair.a.ns, process.execPath, [
      DRIVER,
      'register',
      rdbnetSpec,
      'node-a',
      `${pair.a.address}:7400`,
      JSON.stringify({ cluster: 'c1' }),
    ]);
    const output = collectLines(registrar);
    try {
      await eventually('registered', () => output.lines.find((line) => line.registered));
      const seen = await eventually('avahi-browse resolves node-a', async () => {
        const lines = await avahiBrowse(avahi);
        return lines.find((fields) => fields[3] === 'node-a');
      });
      assert.equal(seen[4], '_rdbnet._tcp');
      assert.equal(seen[7], pair.a.address, `avahi resolved ${seen.join(';')}`);
      assert.equal(seen[8], '7400');
      for (const label of ['"id=node-a"', '"cluster=c1"', '"v=1"']) {
        assert.ok(seen[9]?.includes(label), `TXT ${seen[9]} lacks ${label}`);
      }
      assert.equal(await stop(registrar), 0, output.stderr());
      // avahi-daemon caches; only the goodbye (TTL 0) removes node-a before its TTL.
      await eventually('node-a gone from avahi after the goodbye', async () => {
        const lines = await avahiBrowse(avahi);
        return lines.some((fields) => fields[3] === 'node-a') ? undefined : true;
      });
    } finally {
      await stop(registrar, 'SIGKILL');
    }
  });

  test('rdbnet discovers what avahi-publish announces, with id, cluster and address', async () => {
    const publisher = spawnIn(
      pair.b.ns,
      'avahi-publish',
      ['-s', 'node-x', '_rdbnet._tcp', '7400', 'id=node-x', 'cluster=c1', 'v=1'],
      { env: { ...process.env, ...avahi.env } },
    );
    try {
      const found = await eventually('rdbnet discovers node-x', async () => {
        const { stdout } = await execIn(pair.a.ns, process.execPath, [
          DRIVER,
          'discover',
          rdbnetSpec,
        ]);
        const nodes = (JSON.parse(stdout) as Line).nodes ?? [];
        return nodes.length > 0 ? nodes : undefined;
      });
      assert.deepEqual(found, [
        {
          address: `${pair.b.address}:7400`,
          id: 'node-x',
          source: 'mdns:_rdbnet._tcp.local',
          meta: { instance: 'node-x', host: 'rdbnet-avahi.local', cluster: 'c1', v: '1' },
        },
      ]);
    } finally {
      await stop(publisher);
    }
  });

  test('rdbnet watch follows avahi-publish coming and going (its goodbye removes the node)', async () => {
    const watcher = spawnIn(pair.a.ns, process.execPath, [DRIVER, 'watch', rdbnetSpec]);
    const output = collectLines(watcher);
    const publisher = spawnIn(
      pair.b.ns,
      'avahi-publish',
      ['-s', 'node-w', '_rdbnet._tcp', '7411', 'id=node-w'],
      { env: { ...process.env, ...avahi.env } },
    );
    try {
      await eventually('watch lists node-w', () =>
        output.lines.findLast((line) => line.nodes?.some((node) => node.id === 'node-w')),
      );
      await stop(publisher);
      await eventually('watch drops node-w after the goodbye', () => {
        const latest = output.lines.findLast((line) => line.nodes !== undefined);
        return latest?.nodes?.some((node) => node.id === 'node-w') === false ? true : undefined;
      });
    } finally {
      await stop(publisher, 'SIGKILL');
      await stop(watcher, 'SIGKILL');
    }
  });
});

describe('provider=mdns with no multicast-capable interface', {
  skip: await netnsUnavailable(),
}, () => {
  after(async () => {
    await destroyAllNamespaces();
  });

  test('discover and register are unreachable (exit 69) naming the group and address', async () => {
    await removeStaleNamespaces();
    const ns = await createNamespace('mdnone', { loopbackUp: false });
    for (const args of [
      ['discover', 'provider=mdns timeout=300ms'],
      ['register', 'provider=mdns', 'n1', '127.0.0.1:7400'],
    ]) {
      const failure = await execIn(ns, process.execPath, [DRIVER, ...args]).then(
        () => assert.fail(`${args[0]} succeeded with no interface`),
        (error: { code: number; stdout: string }) => error,
      );
      assert.equal(failure.code, 69, failure.stdout);
      assert.match(
        failure.stdout,
        /RDB_DISCOVERY_UNREACHABLE.*provider=mdns: cannot use 224\.0\.0\.251:5353 on 127\.0\.0\.1/,
      );
    }
  });
});

describe('provider=mdns between two rdbnet providers over loopback multicast', () => {
  const ctx = { env: {}, clock: systemClock, log: () => {} };
  const spec = new Map([
    ['interface', '127.0.0.1'],
    ['timeout', '800ms'],
    // A service type of this test's own, so nothing else on the host's loopback answers.
    ['service', `_rdbt${process.pid % 100000}._tcp`],
  ]);

  test('a registered node is discovered and watched, and its goodbye on close() removes it', async () => {
    const announcer = mdnsProvider.create(spec, ctx);
    const browser = mdnsProvider.create(spec, ctx);
    const controller = new AbortController();
    const lists: DiscoveredNode[][] = [];
    const watching = browser.watch?.((nodes) => lists.push(nodes), controller.signal);
    const registration = await announcer.register?.(
      { id: 'loop-1', address: '127.0.0.1:7400', meta: { cluster: 'c9' } },
      new AbortController().signal,
    );
    try {
      const found = await browser.discover(new AbortController().signal);
      assert.deepEqual(
        found.map((node) => [node.id, node.address, node.meta.cluster]),
        [['loop-1', '127.0.0.1:7400', 'c9']],
      );
      await eventually('watch lists loop-1', () => (lists.at(-1)?.length === 1 ? true : undefined));
      await registration?.close();
      // Without the goodbye the SRV record would live on for its 120 s TTL.
      await eventually(
        'watch drops loop-1',
        () => (lists.at(-1)?.length === 0 ? true : undefined),
        5000,
      );
    } finally {
      await registration?.close();
      controller.abort();
      await watching;
      await announcer.close?.();
      await browser.close?.();
    }
  });

  test('a flood of queries gets at most one multicast answer per second', async () => {
    const announcer = mdnsProvider.create(spec, ctx);
    const registration = await announcer.register?.(
      { id: 'loop-2', address: '127.0.0.1:7401', meta: {} },
      new AbortController().signal,
    );
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    let answers = 0;
    socket.on('message', (packet) => {
      const message = decodeMessage(packet);
      // Query answers carry the PTR alone; announcements carry every record.
      if (isResponse(message) && message.answers.length === 1) answers++;
    });
    try {
      await new Promise<void>((resolve) => socket.bind(5353, '0.0.0.0', () => resolve()));
      socket.addMembership('224.0.0.251', '127.0.0.1');
      socket.setMulticastInterface('127.0.0.1');
      const query = emptyMessage();
      query.questions = [{ name: `${spec.get('service')}.local`, type: RecordType.PTR }];
      const packet = encodeMessage(query);
      for (let i = 0; i < 20; i++) {
        await new Promise<void>((resolve) =>
          socket.send(packet, 5353, '224.0.0.251', () => resolve()),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 600));
      // One; two only if the 20 sends themselves took over a second on a loaded machine.
      assert.ok(answers >= 1 && answers <= 2, `${answers} answers to 20 queries`);
    } finally {
      socket.close();
      await registration?.close();
      await announcer.close?.();
    }
  });
});
