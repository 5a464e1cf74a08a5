/**
 * provider=broadcast on a real LAN segment: two network namespaces this test makes, joined by
 * a veth pair (169.254.1.1 and .2 in 169.254.0.0/16, broadcast 169.254.255.255) — never the
 * host's interfaces. Node A announces in one namespace, node B listens in the other; a
 * stranger with another key is ignored and counted; a captured announcement sent again after
 * A said goodbye does not bring A back.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  createVethPair,
  destroyAllNamespaces,
  execIn,
  netnsUnavailable,
  removeStaleNamespaces,
  spawnIn,
  type VethPair,
} from '../helpers/netns.ts';

const DRIVER = fileURLToPath(new URL('../helpers/lan-discovery-driver.ts', import.meta.url));
const PORT = 7947;
const KEY = randomBytes(32).toString('hex');
const OTHER_KEY = randomBytes(32).toString('hex');
const skip = await netnsUnavailable();

interface Line {
  nodes?: Array<{ address: string; id?: string; source: string; meta: Record<string, string> }>;
  stats?: Record<string, number>;
  registered?: boolean;
  packet?: string;
  listening?: boolean;
  error?: string;
}

/** A driver process inside a namespace, its JSON lines collected as they come. */
class Driver {
  readonly lines: Line[] = [];
  readonly child: ChildProcess;
  private stderr = '';
  private waiters: Array<() => void> = [];

  constructor(ns: string, args: string[], key: string) {
    this.child = spawnIn(ns, process.execPath, [DRIVER, ...args], {
      env: { ...process.env, RDBNET_TEST_GOSSIP_KEY: key },
    });
    let buffered = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        this.lines.push(JSON.parse(buffered.slice(0, newline)) as Line);
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
  }

  /** The latest line matching `match`, waiting up to `timeoutMs` for one. */
  async until(what: string, match: (line: Line) => boolean, timeoutMs = 15_000): Promise<Line> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.lines.findLast(match);
      if (found !== undefined) return found;
      const left = deadline - performance.now();
      if (left <= 0) {
        assert.fail(
          `${what}: not within ${timeoutMs} ms\nlines: ${JSON.stringify(this.lines)}\nstderr: ${this.stderr}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  latestNodes(): Line['nodes'] {
    return this.lines.findLast((line) => line.nodes !== undefined)?.nodes;
  }

  latestStats(): Record<string, number> | undefined {
    return this.lines.findLast((line) => line.stats !== undefined)?.stats;
  }

  /** SIGTERM (the registration says goodbye) and wait for the exit code. */
  stop(): Promise<number | null> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        return resolve(this.child.exitCode);
      }
      this.child.once('exit', (code) => resolve(code));
      this.child.kill('SIGTERM');
    });
  }
}

describe('provider=broadcast between two network namespaces', { skip }, () => {
  let pair: VethPair;
  let spec: string;

  before(async () => {
    await removeStaleNamespaces();
    pair = await createVethPair('bc', 1);
    spec = `provider=broadcast address=${pair.broadcast} port=${PORT} interval=200ms timeout=1500ms`;
  });

  after(async () => {
    await destroyAllNamespaces();
  });

  test('a node announcing in one namespace is discovered in the other, with its id and meta', async () => {
    const a = new Driver(
      pair.a.ns,
      ['register', spec, 'node-a', `${pair.a.address}:7400`, JSON.stringify({ cluster: 'c1' })],
      KEY,
    );
    try {
      await a.until('node A registered', (line) => line.registered === true);
      const { stdout } = await execIn(pair.b.ns, process.execPath, [DRIVER, 'discover', spec], {
        env: { RDBNET_TEST_GOSSIP_KEY: KEY },
      });
      const found = (JSON.parse(stdout) as Line).nodes ?? [];
      assert.deepEqual(found, [
        {
          address: `${pair.a.address}:7400`,
          id: 'node-a',
          source: `broadcast:${pair.broadcast}:${PORT}`,
          meta: { cluster: 'c1' },
        },
      ]);
    } finally {
      assert.equal(await a.stop(), 0);
    }
  });

  test('an unspecified announced host becomes the sender address; interface= derives the broadcast address', async () => {
    const byInterface = `provider=broadcast interface=${pair.a.ifname} port=${PORT} interval=200ms`;
    const a = new Driver(pair.a.ns, ['register', byInterface, 'node-any', '0.0.0.0:7401'], KEY);
    try {
      await a.until('node registered', (line) => line.registered === true);
      const listen = `provider=broadcast interface=${pair.b.address} port=${PORT} timeout=1500ms`;
      const { stdout } = await execIn(pair.b.ns, process.execPath, [DRIVER, 'discover', listen], {
        env: { RDBNET_TEST_GOSSIP_KEY: KEY },
      });
      const found = (JSON.parse(stdout) as Line).nodes ?? [];
      assert.deepEqual(
        found.map((node) => [node.id, node.address]),
        [['node-any', `${pair.a.address}:7401`]],
      );
    } finally {
      await a.stop();
    }
  });

  test('a stranger with another gossip key is ignored and counted', async () => {
    const listener = new Driver(pair.b.ns, ['watch', spec], KEY);
    const stranger = new Driver(
      pair.a.ns,
      ['register', spec, 'stranger', `${pair.a.address}:7402`],
      OTHER_KEY,
    );
    try {
      await stranger.until('stranger registered', (line) => line.registered === true);
      await listener.until(
        'listener counted strangers',
        (line) => (line.stats?.strangers ?? 0) >= 3,
      );
      assert.equal(listener.latestStats()?.accepted, 0);
      assert.equal(
        listener.lines.some((line) => (line.nodes ?? []).length > 0),
        false,
        `the stranger was listed: ${JSON.stringify(listener.lines)}`,
      );
    } finally {
      await stranger.stop();
      await listener.stop();
    }
  });

  test('a goodbye removes the node, and a replayed announcement does not bring it back', async () => {
    const listener = new Driver(pair.b.ns, ['watch', spec], KEY);
    const sniffer = new Driver(pair.b.ns, ['capture', String(PORT)], KEY);
    await listener.until('listener up', (line) => line.stats !== undefined);
    await sniffer.until('sniffer up', (line) => line.listening === true);
    const a = new Driver(pair.a.ns, ['register', spec, 'node-a', `${pair.a.address}:7400`], KEY);
    try {
      const captured = (
        await sniffer.until('a packet captured', (line) => line.packet !== undefined)
      ).packet as string;
      await listener.until('node A listed', (line) =>
        (line.nodes ?? []).some((node) => node.id === 'node-a'),
      );
      assert.equal(await a.stop(), 0);
      await listener.until('node A gone after its goodbye', (line) => line.nodes?.length === 0);
      const before = listener.latestStats()?.replays ?? 0;
      await execIn(pair.a.ns, process.execPath, [
        DRIVER,
        'send',
        captured,
        pair.broadcast,
        String(PORT),
      ]);
      await listener.until('the replay counted', (line) => (line.stats?.replays ?? 0) > before);
      assert.deepEqual(listener.latestNodes(), [], 'the replayed announcement brought node A back');
    } finally {
      await a.stop();
      await sniffer.stop();
      await listener.stop();
    }
  });

  test('a node killed without a goodbye is forgotten after three of its intervals', async () => {
    const listener = new Driver(pair.b.ns, ['watch', spec], KEY);
    const a = new Driver(pair.a.ns, ['register', spec, 'node-k', `${pair.a.address}:7403`], KEY);
    try {
      await listener.until('node-k listed', (line) =>
        (line.nodes ?? []).some((node) => node.id === 'node-k'),
      );
      a.child.kill('SIGKILL');
      // ttl = 3 × 200 ms; the bound only keeps a broken expiry from hanging the test.
      await listener.until('node-k forgotten', (line) => line.nodes?.length === 0, 10_000);
    } finally {
      await a.stop();
      await listener.stop();
    }
  });

  test('an announcement to an address with no route is unreachable (exit 69), a bad key a syntax error (64)', async () => {
    const noRoute = `provider=broadcast address=203.0.113.255 port=${PORT}`;
    const unreachable = await execIn(
      pair.a.ns,
      process.execPath,
      [DRIVER, 'register', noRoute, 'n', '0.0.0.0:1'],
      {
        env: { RDBNET_TEST_GOSSIP_KEY: KEY },
      },
    ).then(
      () => assert.fail('register to an unroutable address succeeded'),
      (error: { code: number; stdout: string }) => error,
    );
    assert.equal(unreachable.code, 69, unreachable.stdout);
    assert.match(
      unreachable.stdout,
      /RDB_DISCOVERY_UNREACHABLE.*provider=broadcast.*203\.0\.113\.255:7947/,
    );
    const syntax = await execIn(
      pair.a.ns,
      process.execPath,
      [DRIVER, 'discover', 'provider=broadcast interval=fast'],
      {
        env: { RDBNET_TEST_GOSSIP_KEY: KEY },
      },
    ).then(
      () => assert.fail('a bad interval was accepted'),
      (error: { code: number; stdout: string }) => error,
    );
    assert.equal(syntax.code, 64, syntax.stdout);
    assert.match(syntax.stdout, /provider=broadcast: interval/);
  });
});
