// Goal: the latency histogram reports nearest-rank quantiles exactly for small values and within
// its stated relative error for large ones, with exact min and max. Method: known samples.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LatencyHistogram } from "./histogram.js";

describe("latency histogram", () => {
  it("is exact below 256 µs (nearest rank, like the S2 CLI)", () => {
    const histogram = new LatencyHistogram();
    for (let v = 1; v <= 100; v++) histogram.record(v);
    assert.deepEqual(histogram.stats(), {
      count: 100,
      min: 1,
      p50: 50,
      p90: 90,
      p99: 99,
      max: 100,
    });
  });

  it("counts repeated samples", () => {
    const histogram = new LatencyHistogram();
    histogram.record(1);
    histogram.record(5, 2);
    histogram.record(10);
    const stats = histogram.stats();
    assert.equal(stats.count, 4);
    assert.equal(stats.p50, 5);
    assert.equal(stats.p90, 10);
    assert.equal(stats.p99, 10);
  });

  it("stays within 1/128 of the true quantile for large values", () => {
    const histogram = new LatencyHistogram();
    const values: number[] = [];
    for (let i = 1; i <= 10_000; i++) values.push(Math.round(1000 * 1.0007 ** i)); // 1 ms .. ~1.1 s
    for (const v of values) histogram.record(v);
    for (const q of [0.5, 0.9, 0.99]) {
      const exact = values[Math.ceil(values.length * q) - 1]!;
      const reported = histogram.quantile(q);
      assert.ok(Math.abs(reported - exact) / exact <= 1 / 128, `q=${q}: ${reported} vs ${exact}`);
    }
    const stats = histogram.stats(1000);
    assert.equal(stats.min, values[0]! / 1000);
    assert.equal(stats.max, values.at(-1)! / 1000);
  });

  it("reports NaN when empty and clamps negative samples to 0", () => {
    const histogram = new LatencyHistogram();
    assert.ok(Number.isNaN(histogram.stats().p50));
    histogram.record(-5);
    assert.equal(histogram.stats().max, 0);
  });
});
