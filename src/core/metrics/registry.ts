/**
 * A small metrics registry: counters, gauges and histograms with fixed buckets, each family
 * with a bounded number of label sets, written out in the Prometheus text exposition format
 * (exposition.ts).
 *
 * Written here rather than taken from prom-client: the hot paths (an RPC answered, a frame
 * read) must cost one increment and no allocation, so a caller resolves its series once
 * (`labels(...)` returns the same child every time) and then only adds to numbers; prom-client
 * hashes a label object on every `inc({...})`. Values that the node already keeps (its
 * Counters, gossip's and Raft's statistics) are not counted twice: a collector copies them into
 * the registry when it is scraped (`onCollect`), so they cost nothing between scrapes.
 */
import { assert, ErrorCode, RdbnetError } from '../errors.ts';

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** Label sets one family holds by default; more are folded into one `other` series. */
export const METRIC_SERIES_MAX_DEFAULT = 512;
/** A label value longer than this is cut (a peer id or an error code is far shorter). */
export const METRIC_LABEL_VALUE_CHARS_MAX = 128;
/** The value every label takes in the series that holds what no longer fits. */
export const OVERFLOW_LABEL_VALUE = 'other';

/** Latency buckets in seconds: 50 µs to 10 s, fine where the protocol's replies fall. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  10,
];

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export interface FamilyOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
  /** Label sets kept (default METRIC_SERIES_MAX_DEFAULT); the rest share one `other` series. */
  seriesMax?: number;
}

export interface HistogramOptions extends FamilyOptions {
  /** Upper bounds, strictly increasing, finite; +Inf is added. */
  buckets: readonly number[];
}

/** One series of a counter. */
export class CounterSeries {
  value = 0;

  inc(by = 1): void {
    this.value += by;
  }

  /** For a collector mirroring a total kept elsewhere (a node counter): never goes down. */
  setTotal(total: number): void {
    if (total > this.value) this.value = total;
  }
}

/** One series of a gauge. */
export class GaugeSeries {
  value = 0;

  set(value: number): void {
    this.value = value;
  }

  inc(by = 1): void {
    this.value += by;
  }

  dec(by = 1): void {
    this.value -= by;
  }
}

/** One series of a histogram: a count per bucket, the sum and the count of observations. */
export class HistogramSeries {
  readonly bucketCounts: Float64Array;
  sum = 0;
  count = 0;
  private readonly bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.bucketCounts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    // Buckets are counted non-cumulatively here and summed when written out.
    let index = 0;
    while (index < bounds.length && value > bounds[index]!) index++;
    if (index < bounds.length) this.bucketCounts[index]!++;
    this.sum += value;
    this.count++;
  }
}

type SeriesOf<T extends MetricType> = T extends 'counter'
  ? CounterSeries
  : T extends 'gauge'
    ? GaugeSeries
    : HistogramSeries;

/** A metric family: its series keyed by their label values. */
export class Family<T extends MetricType = MetricType> {
  readonly name: string;
  readonly help: string;
  readonly type: T;
  readonly labelNames: readonly string[];
  readonly buckets: readonly number[];
  readonly seriesMax: number;
  /** Label sets folded into the `other` series because seriesMax were held. */
  overflowed = 0;
  private readonly series = new Map<string, { labelValues: string[]; series: SeriesOf<T> }>();
  private readonly create: () => SeriesOf<T>;

  constructor(type: T, options: FamilyOptions, buckets: readonly number[] = []) {
    if (!METRIC_NAME.test(options.name)) {
      throw new RdbnetError(ErrorCode.Usage, `invalid metric name "${options.name}"`);
    }
    for (const label of options.labelNames ?? []) {
      if (!LABEL_NAME.test(label) || label.startsWith('__') || label === 'le') {
        throw new RdbnetError(ErrorCode.Usage, `invalid label name "${label}" on ${options.name}`);
      }
    }
    const seriesMax = options.seriesMax ?? METRIC_SERIES_MAX_DEFAULT;
    assert(Number.isInteger(seriesMax) && seriesMax >= 1, 'seriesMax is a positive integer');
    if (type === 'histogram') {
      const increasing = buckets.every(
        (bound, index) => Number.isFinite(bound) && (index === 0 || bound > buckets[index - 1]!),
      );
      if (buckets.length === 0 || !increasing) {
        throw new RdbnetError(
          ErrorCode.Usage,
          `histogram ${options.name} needs finite, strictly increasing buckets`,
        );
      }
    }
    this.name = options.name;
    this.help = options.help;
    this.type = type;
    this.labelNames = [...(options.labelNames ?? [])];
    this.buckets = [...buckets];
    this.seriesMax = seriesMax;
    const bounds = this.buckets;
    this.create = (() => {
      if (type === 'counter') return new CounterSeries();
      if (type === 'gauge') return new GaugeSeries();
      return new HistogramSeries(bounds);
    }) as () => SeriesOf<T>;
  }

  /**
   * The series of these label values (one per label name, in order), created on first use.
   * Resolve it once and keep it on a hot path. Past seriesMax label sets, new ones all share
   * the series whose every label is `other`, so totals stay right and memory stays bounded.
   */
  labels(...values: string[]): SeriesOf<T> {
    if (values.length !== this.labelNames.length) {
      throw new RdbnetError(
        ErrorCode.Usage,
        `${this.name} takes ${this.labelNames.length} label values, got ${values.length}`,
      );
    }
    const key = values.length === 1 ? values[0]! : values.join('\u0000');
    const found = this.series.get(key);
    if (found !== undefined) return found.series;
    if (this.series.size >= this.seriesMax) {
      this.overflowed++;
      return this.overflowSeries();
    }
    const entry = {
      labelValues: values.map((value) => value.slice(0, METRIC_LABEL_VALUE_CHARS_MAX)),
      series: this.create(),
    };
    this.series.set(key, entry);
    return entry.series;
  }

  /** The one series of a family without labels. */
  get only(): SeriesOf<T> {
    return this.labels();
  }

  /** Forgets every series (a collector rebuilding a gauge whose label sets come and go). */
  reset(): void {
    this.series.clear();
  }

  /** Series in creation order, with their label values. */
  entries(): Iterable<{ labelValues: readonly string[]; series: SeriesOf<T> }> {
    return this.series.values();
  }

  private overflowSeries(): SeriesOf<T> {
    const key = '\u0001overflow';
    let entry = this.series.get(key);
    if (entry === undefined) {
      entry = {
        labelValues: this.labelNames.map(() => OVERFLOW_LABEL_VALUE),
        series: this.create(),
      };
      // Held beyond seriesMax on purpose: the one series that catches the rest.
      this.series.set(key, entry);
    }
    return entry.series;
  }
}

export type Collector = () => void;

/** Families by name, and the collectors that refresh some of them when scraped. */
export class MetricsRegistry {
  private readonly families = new Map<string, Family>();
  private readonly collectors: Collector[] = [];

  counter(options: FamilyOptions): Family<'counter'> {
    return this.add(new Family('counter', options));
  }

  gauge(options: FamilyOptions): Family<'gauge'> {
    return this.add(new Family('gauge', options));
  }

  histogram(options: HistogramOptions): Family<'histogram'> {
    return this.add(new Family('histogram', options, options.buckets));
  }

  /** Runs before every scrape, to copy values kept elsewhere into this registry's series. */
  onCollect(collector: Collector): void {
    this.collectors.push(collector);
  }

  /** Runs the collectors, then lists the families by name. */
  collect(): Family[] {
    for (const collector of this.collectors) collector();
    return [...this.families.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  get(name: string): Family | undefined {
    return this.families.get(name);
  }

  private add<T extends MetricType>(family: Family<T>): Family<T> {
    if (this.families.has(family.name)) {
      throw new RdbnetError(ErrorCode.Usage, `metric ${family.name} is already registered`);
    }
    this.families.set(family.name, family as unknown as Family);
    return family;
  }
}
