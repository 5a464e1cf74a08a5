/**
 * A node's registration as its own process, for the discovery tests (etcd, consul): registers
 * `ID ADDRESS` through the provider the spec names, prints `registered` on stdout, keeps the
 * registration alive until SIGTERM (then deregisters and prints `deregistered`) or SIGKILL
 * (then nothing is deregistered: the registration must expire by itself).
 *
 *   node test/helpers/discovery-registrant.ts "provider=etcd endpoints=..." n1 127.0.0.1:7401
 */
import { openProvider } from '../../src/core/discovery/index.ts';
import { systemClock } from '../../src/core/runtime/index.ts';

const [spec, id, address] = process.argv.slice(2);
if (spec === undefined || id === undefined || address === undefined) {
  process.stderr.write('usage: discovery-registrant.ts SPEC ID ADDRESS\n');
  process.exit(64);
}
const { provider } = openProvider(spec, {
  env: process.env,
  clock: systemClock,
  log: (level, message) => process.stderr.write(`${level}: ${message}\n`),
});
try {
  const registration = await provider.register!(
    { id, address, meta: { role: 'test' } },
    new AbortController().signal,
  );
  process.stdout.write('registered\n');
  // Keep the event loop alive on purpose: a registrant lives until it is told to stop.
  const alive = setInterval(() => {}, 1 << 30);
  process.once('SIGTERM', async () => {
    await registration.close();
    await provider.close?.();
    clearInterval(alive);
    process.stdout.write('deregistered\n');
  });
} catch (error) {
  process.stderr.write(
    `${(error as { code?: string }).code ?? 'ERROR'}: ${(error as Error).message}\n`,
  );
  process.exit(1);
}
