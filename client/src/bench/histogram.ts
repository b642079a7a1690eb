/**
 * A latency histogram in bounded memory, for runs of any length: integer microseconds below
 * 256 µs are counted exactly; above, each power of two is split into 128 buckets, so a reported
 * quantile is within 1/128 (< 0.8 %) of the true one (the log-linear layout of HdrHistogram).
 * Quantiles are nearest-rank, as the S2 CLI's `StreamingLatencyStats` computes them; min and max
 * are exact.
 */

/** Values below this many µs get one bucket each. */
const exactBucketsCount = 256;
/** Buckets per power of two above the exact range (2^7: relative error < 1/128). */
const subBucketsPerPowerBits = 7;
const subBucketsPerPower = 1 << subBucketsPerPowerBits;
/** The largest recorded value: 2^40 µs (12.7 days); larger samples are clamped to it. */
const valueUsMax = 2 ** 40;
const exactPowerBits = Math.log2(exactBucketsCount);
const bucketsCount = exactBucketsCount + (40 - exactPowerBits + 1) * subBucketsPerPower;

/** Summary of a latency distribution, in the unit the caller chose. */
export interface LatencyStats {
  readonly count: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

function powerOf(value: number): number {
  let power = Math.floor(Math.log2(value));
  // log2 of a float can land one off at exact powers of two.
  if (2 ** power > value) power -= 1;
  if (2 ** (power + 1) <= value) power += 1;
  return power;
}

function bucketOf(value: number): number {
  if (value < exactBucketsCount) return value;
  const power = powerOf(value);
  const width = 2 ** (power - subBucketsPerPowerBits);
  const sub = Math.floor(value / width) - subBucketsPerPower;
  return exactBucketsCount + (power - exactPowerBits) * subBucketsPerPower + sub;
}

/** The middle of a bucket: the value a quantile falling in it reports. */
function representativeOf(bucket: number): number {
  if (bucket < exactBucketsCount) return bucket;
  const offset = bucket - exactBucketsCount;
  const power = Math.floor(offset / subBucketsPerPower) + exactPowerBits;
  const sub = offset % subBucketsPerPower;
  const width = 2 ** (power - subBucketsPerPowerBits);
  return (subBucketsPerPower + sub) * width + (width - 1) / 2;
}

/** Counts latency samples in microseconds. */
export class LatencyHistogram {
  private readonly counts = new Float64Array(bucketsCount);
  private total = 0;
  private minUs = Number.POSITIVE_INFINITY;
  private maxUs = 0;

  get count(): number {
    return this.total;
  }

  /** Records `times` samples of `valueUs` (negative values count as 0). */
  record(valueUs: number, times = 1): void {
    if (times <= 0) return;
    const value = Math.min(valueUsMax, Math.max(0, Math.round(valueUs)));
    this.counts[bucketOf(value)]! += times;
    this.total += times;
    if (value < this.minUs) this.minUs = value;
    if (value > this.maxUs) this.maxUs = value;
  }

  /** The value at quantile `q` in [0, 1] (nearest rank); NaN when empty. */
  quantile(q: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(this.total * q));
    let seen = 0;
    for (let bucket = 0; bucket < bucketsCount; bucket++) {
      seen += this.counts[bucket]!;
      if (seen >= rank) {
        return Math.min(this.maxUs, Math.max(this.minUs, representativeOf(bucket)));
      }
    }
    return this.maxUs;
  }

  /** min, p50, p90, p99 and max, divided by `divisor` (1000 for milliseconds). */
  stats(divisor = 1): LatencyStats {
    const scale = (valueUs: number): number => valueUs / divisor;
    if (this.total === 0) {
      const none = Number.NaN;
      return { count: 0, min: none, p50: none, p90: none, p99: none, max: none };
    }
    return {
      count: this.total,
      min: scale(this.minUs),
      p50: scale(this.quantile(0.5)),
      p90: scale(this.quantile(0.9)),
      p99: scale(this.quantile(0.99)),
      max: scale(this.maxUs),
    };
  }
}
