/**
 * The Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/): `# HELP` and `# TYPE` per
 * family, one line per sample, histograms as cumulative `_bucket{le=…}` lines ending with
 * `le="+Inf"`, then `_sum` and `_count`.
 */
import type { Family, HistogramSeries, MetricsRegistry } from './registry.ts';

export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** HELP text: backslash and newline escaped. */
function escapeHelp(text: string): string {
  return text.replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
}

/** A label value: backslash, double quote and newline escaped. */
function escapeLabelValue(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

export function formatSampleValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

function labelText(
  names: readonly string[],
  values: readonly string[],
  extra?: [string, string],
): string {
  const parts: string[] = [];
  for (let i = 0; i < names.length; i++) {
    parts.push(`${names[i]}="${escapeLabelValue(values[i]!)}"`);
  }
  if (extra !== undefined) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function writeFamily(family: Family, lines: string[]): void {
  lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
  lines.push(`# TYPE ${family.name} ${family.type}`);
  for (const { labelValues, series } of family.entries()) {
    if (family.type !== 'histogram') {
      const value = (series as { value: number }).value;
      lines.push(
        `${family.name}${labelText(family.labelNames, labelValues)} ${formatSampleValue(value)}`,
      );
      continue;
    }
    const histogram = series as HistogramSeries;
    let cumulative = 0;
    for (let i = 0; i < family.buckets.length; i++) {
      cumulative += histogram.bucketCounts[i]!;
      const le = formatSampleValue(family.buckets[i]!);
      lines.push(
        `${family.name}_bucket${labelText(family.labelNames, labelValues, ['le', le])} ${cumulative}`,
      );
    }
    const labels = labelText(family.labelNames, labelValues);
    lines.push(
      `${family.name}_bucket${labelText(family.labelNames, labelValues, ['le', '+Inf'])} ${histogram.count}`,
    );
    lines.push(`${family.name}_sum${labels} ${formatSampleValue(histogram.sum)}`);
    lines.push(`${family.name}_count${labels} ${histogram.count}`);
  }
}

/** Every family of the registry (its collectors run first), in the text format. */
export function exposition(registry: MetricsRegistry): string {
  const lines: string[] = [];
  for (const family of registry.collect()) writeFamily(family, lines);
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
