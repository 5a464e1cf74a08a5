/**
 * Process metrics under the names Prometheus's client libraries use (process_*, nodejs_*), so
 * the usual dashboards work: CPU, resident memory, heap, open file descriptors, start time and
 * the event loop's delay (how late timers and I/O callbacks run: a busy loop delays gossip and
 * Raft heartbeats too).
 */
import { readdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { MetricsRegistry } from './registry.ts';

/** Resolution of the event-loop delay sampler (ms). */
const EVENT_LOOP_RESOLUTION_MS = 10;

/** Open descriptors; null where /proc is not there to count them. */
function openFds(): number | null {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return null;
  }
}

/** Registers process_* and nodejs_* families; stop() ends the event-loop sampler. */
export function registerProcessMetrics(registry: MetricsRegistry): { stop(): void } {
  const cpu = registry.counter({
    name: 'process_cpu_seconds_total',
    help: 'User and system CPU time spent, in seconds.',
  }).only;
  const rss = registry.gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
  }).only;
  const startTime = registry.gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since the Unix epoch, in seconds.',
  }).only;
  startTime.set(Math.round(Date.now() / 1000 - process.uptime()));
  const fds = registry.gauge({
    name: 'process_open_fds',
    help: 'Open file descriptors.',
  });
  const heapUsed = registry.gauge({
    name: 'nodejs_heap_size_used_bytes',
    help: 'V8 heap in use, in bytes.',
  }).only;
  const heapTotal = registry.gauge({
    name: 'nodejs_heap_size_total_bytes',
    help: 'V8 heap allocated, in bytes.',
  }).only;
  const external = registry.gauge({
    name: 'nodejs_external_memory_bytes',
    help: 'Memory of C++ objects bound to JavaScript objects (buffers among them), in bytes.',
  }).only;
  const lagMean = registry.gauge({
    name: 'nodejs_eventloop_lag_mean_seconds',
    help: 'Mean event-loop delay since the previous scrape, in seconds.',
  }).only;
  const lagP99 = registry.gauge({
    name: 'nodejs_eventloop_lag_p99_seconds',
    help: '99th percentile of the event-loop delay since the previous scrape, in seconds.',
  }).only;
  const lagMax = registry.gauge({
    name: 'nodejs_eventloop_lag_max_seconds',
    help: 'Largest event-loop delay since the previous scrape, in seconds.',
  }).only;
  const delay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  delay.enable();

  registry.onCollect(() => {
    const usage = process.cpuUsage();
    cpu.setTotal((usage.user + usage.system) / 1e6);
    const memory = process.memoryUsage();
    rss.set(memory.rss);
    heapUsed.set(memory.heapUsed);
    heapTotal.set(memory.heapTotal);
    external.set(memory.external);
    const open = openFds();
    fds.reset();
    if (open !== null) fds.only.set(open);
    // The sampler reports nanoseconds; NaN until it has a sample.
    const seconds = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0);
    lagMean.set(seconds(delay.mean));
    lagP99.set(seconds(delay.percentile(99)));
    lagMax.set(seconds(delay.max));
    delay.reset();
  });
  return { stop: () => delay.disable() };
}
