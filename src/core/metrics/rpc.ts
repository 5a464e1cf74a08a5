/**
 * RPCs by method: a count per outcome and a latency histogram per method, the method being the
 * operation of authorization.ts (a fixed set, so the label's cardinality is bounded by the
 * code). Every series is created up front: answering a request costs a map lookup, two clock
 * reads, a few additions and no allocation.
 */
import type { Clock } from '../runtime/index.ts';
import {
  type CounterSeries,
  type HistogramSeries,
  LATENCY_BUCKETS_SECONDS,
  type MetricsRegistry,
} from './registry.ts';

interface MethodSeries {
  ok: CounterSeries;
  failed: CounterSeries;
  seconds: HistogramSeries;
}

export class RpcMetrics {
  private readonly clock: Clock;
  private readonly methods = new Map<string, MethodSeries>();

  constructor(registry: MetricsRegistry, methods: readonly string[], clock: Clock) {
    this.clock = clock;
    const requests = registry.counter({
      name: 'rdbnet_rpc_requests_total',
      help: 'Requests this node answered, by method (the operation of the authorization table) and outcome (ok or error).',
      labelNames: ['method', 'outcome'],
    });
    const seconds = registry.histogram({
      name: 'rdbnet_rpc_duration_seconds',
      help: 'Time from a request reaching the handler to its reply (or error) being ready, by method.',
      labelNames: ['method'],
      buckets: LATENCY_BUCKETS_SECONDS,
    });
    for (const method of methods) {
      this.methods.set(method, {
        ok: requests.labels(method, 'ok'),
        failed: requests.labels(method, 'error'),
        seconds: seconds.labels(method),
      });
    }
  }

  /** The moment a request reached the handler, for answered(). */
  startedMs(): number {
    return this.clock.nowMs();
  }

  /** A request of `method` answered (`ok`) or failed, `startedMs` from startedMs(). */
  answered(method: string, startedMs: number, ok: boolean): void {
    const series = this.methods.get(method);
    if (series === undefined) return;
    (ok ? series.ok : series.failed).inc();
    series.seconds.observe((this.clock.nowMs() - startedMs) / 1000);
  }
}
