/**
 * RPCs by method: a count per outcome and a latency histogram per method, the method being the
 * operation of authorization.ts (a fixed set, so the label's cardinality is bounded by the
 * code). Every series is created up front, so answering a request allocates nothing. Every
 * request is counted; one in RPC_LATENCY_SAMPLE_EVERY of each method (the 1st, the 17th, …) is
 * timed, because reading the clock twice cost more than everything else here together (about
 * 0.5 µs per echo request in a microbenchmark on a loaded machine, against ~1.3 µs of server
 * CPU per request in bench:protocol).
 */
import type { Clock } from '../runtime/index.ts';
import {
  type CounterSeries,
  type HistogramSeries,
  LATENCY_BUCKETS_SECONDS,
  type MetricsRegistry,
} from './registry.ts';

/** Of each method's requests, this one in N is timed (a power of two). */
export const RPC_LATENCY_SAMPLE_EVERY = 16;
const SAMPLE_MASK = RPC_LATENCY_SAMPLE_EVERY - 1;

/** One method's series; resolved once per request (one map lookup), then only added to. */
export class RpcMethod {
  private readonly ok: CounterSeries;
  private readonly failed: CounterSeries;
  private readonly seconds: HistogramSeries;
  private readonly clock: Clock;
  /** Requests started, to pick the ones timed. */
  private startedCount = 0;

  constructor(ok: CounterSeries, failed: CounterSeries, seconds: HistogramSeries, clock: Clock) {
    this.ok = ok;
    this.failed = failed;
    this.seconds = seconds;
    this.clock = clock;
  }

  /** A request reached the handler: the moment, for answered(), when this one is timed; NaN
   * when it is not. */
  started(): number {
    return (this.startedCount++ & SAMPLE_MASK) === 0 ? this.clock.nowMs() : Number.NaN;
  }

  /** The request was answered (`ok`) or failed; `startedMs` from started(). */
  answered(startedMs: number, ok: boolean): void {
    (ok ? this.ok : this.failed).inc();
    if (!Number.isNaN(startedMs)) this.seconds.observe((this.clock.nowMs() - startedMs) / 1000);
  }
}

export class RpcMetrics {
  private readonly methods = new Map<string, RpcMethod>();

  constructor(registry: MetricsRegistry, methods: readonly string[], clock: Clock) {
    const requests = registry.counter({
      name: 'rdbnet_rpc_requests_total',
      help: 'Requests this node answered, by method (the operation of the authorization table) and outcome (ok or error).',
      labelNames: ['method', 'outcome'],
    });
    const seconds = registry.histogram({
      name: 'rdbnet_rpc_duration_seconds',
      help: `Time from a request reaching the handler to its reply (or error) being ready, by method; one request in ${RPC_LATENCY_SAMPLE_EVERY} of each method is timed.`,
      labelNames: ['method'],
      buckets: LATENCY_BUCKETS_SECONDS,
    });
    for (const method of methods) {
      this.methods.set(
        method,
        new RpcMethod(
          requests.labels(method, 'ok'),
          requests.labels(method, 'error'),
          seconds.labels(method),
          clock,
        ),
      );
    }
  }

  /** The series of `method`; undefined for a method this node does not answer. */
  method(method: string): RpcMethod | undefined {
    return this.methods.get(method);
  }
}
