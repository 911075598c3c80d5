/**
 * Summaries of timing samples: percentiles (linear interpolation between closest ranks, the
 * numpy/R type 7 default), min, max and mean. Units are the samples' (ms in every scenario here).
 */

/** Summary of a set of samples, in the samples' unit. */
export interface SampleStats {
  /** Number of samples. */
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p95: number;
  readonly max: number;
  readonly mean: number;
}

/**
 * The `p`-th percentile (0–100) of `values`, interpolating linearly between the two closest ranks
 * (so p50 of [1, 2] is 1.5).
 * @throws RangeError when `values` is empty or `p` is outside 0–100.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new RangeError('percentile of no samples');
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} is outside 0–100`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (rank - low);
}

/** n, min, p50, p95, max and mean of `values`. @throws RangeError when `values` is empty. */
export function summarize(values: readonly number[]): SampleStats {
  if (values.length === 0) throw new RangeError('summary of no samples');
  return {
    n: values.length,
    min: Math.min(...values),
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    max: Math.max(...values),
    mean: values.reduce((sum, v) => sum + v, 0) / values.length,
  };
}

/** `value` rounded to `digits` decimals (for tables and JSON: sub-microsecond digits are noise). */
export function roundTo(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** {@link SampleStats} with every field rounded by {@link roundTo}. */
export function roundStats(stats: SampleStats, digits = 1): SampleStats {
  return {
    n: stats.n,
    min: roundTo(stats.min, digits),
    p50: roundTo(stats.p50, digits),
    p95: roundTo(stats.p95, digits),
    max: roundTo(stats.max, digits),
    mean: roundTo(stats.mean, digits),
  };
}
