/**
 * A small process that runs one LAN discovery provider inside a network namespace for the
 * integration tests (the namespace is entered with `ip netns exec`, which only a separate
 * process can do). Modes, all printing JSON lines on stdout:
 *
 *   discover SPEC                    {"nodes": [...]} once, then exits
 *   watch SPEC                       {"nodes": [...], "stats": {...}} on every change
 *   register SPEC ID ADDRESS [META]  {"registered": true}; on SIGTERM deregisters, exits 0
 *   capture PORT                     {"packet": HEX} for the first UDP packet on PORT, exits
 *   send HEX ADDRESS PORT            sends one raw packet (broadcast allowed), exits
 *
 * The gossip key comes from RDBNET_TEST_GOSSIP_KEY (hex). A provider error prints
 * {"error": CODE, "message": ...} and exits 69 (unreachable), 64 (syntax) or 1.
 */
import { createSocket } from 'node:dgram';
import type { ProviderContext } from '../../src/core/discovery/provider.ts';
import { openProvider } from '../../src/core/discovery/registry.ts';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { systemClock } from '../../src/core/runtime/index.ts';

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function context(): ProviderContext {
  const ctx: ProviderContext = {
    env: process.env,
    clock: systemClock,
    log: (level, message, fields) =>
      process.stderr.write(`${JSON.stringify({ level, message, ...fields })}\n`),
  };
  const hex = process.env.RDBNET_TEST_GOSSIP_KEY;
  if (hex !== undefined && hex !== '') ctx.gossipKey = Buffer.from(hex, 'hex');
  return ctx;
}

async function main(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  const stop = new AbortController();
  process.on('SIGTERM', () => stop.abort());
  process.on('SIGINT', () => stop.abort());
  switch (mode) {
    case 'discover': {
      const { provider } = openProvider(rest[0] as string, context());
      print({ nodes: await provider.discover(stop.signal) });
      await provider.close?.();
      return;
    }
    case 'watch': {
      const { provider } = openProvider(rest[0] as string, context());
      const stats = (): unknown => (provider as unknown as { stats?: unknown }).stats;
      let last = '';
      // Counters move without the list changing (a stranger ignored): report those too.
      const ticker = setInterval(() => {
        const now = JSON.stringify(stats());
        if (now !== last) {
          last = now;
          print({ stats: stats() });
        }
      }, 100);
      await provider.watch?.((nodes) => print({ nodes, stats: stats() }), stop.signal);
      clearInterval(ticker);
      await provider.close?.();
      return;
    }
    case 'register': {
      const { provider } = openProvider(rest[0] as string, context());
      const meta = rest[3] === undefined ? {} : (JSON.parse(rest[3]) as Record<string, string>);
      const registration = await provider.register?.(
        { id: rest[1] as string, address: rest[2] as string, meta },
        new AbortController().signal,
      );
      print({ registered: registration !== undefined });
      await new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve()));
      await registration?.close();
      await provider.close?.();
      return;
    }
    case 'capture': {
      const socket = createSocket({ type: 'udp4', reuseAddr: true });
      await new Promise<void>((resolve) => socket.bind(Number(rest[0]), '0.0.0.0', resolve));
      print({ listening: true });
      const packet = await new Promise<Buffer>((resolve) => socket.once('message', resolve));
      print({ packet: packet.toString('hex') });
      socket.close();
      return;
    }
    case 'send': {
      const socket = createSocket('udp4');
      await new Promise<void>((resolve) => socket.bind(0, resolve));
      socket.setBroadcast(true);
      await new Promise<void>((resolve, reject) =>
        socket.send(Buffer.from(rest[0] as string, 'hex'), Number(rest[2]), rest[1], (error) =>
          error ? reject(error) : resolve(),
        ),
      );
      socket.close();
      print({ sent: true });
      return;
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error: unknown) => {
    if (isRdbnetError(error)) {
      print({ error: error.code, message: error.message });
      process.exit(
        error.code === ErrorCode.DiscoverySyntax
          ? 64
          : error.code === ErrorCode.DiscoveryUnreachable
            ? 69
            : 1,
      );
    }
    process.stderr.write(`${String((error as Error)?.stack ?? error)}\n`);
    process.exit(1);
  },
);
