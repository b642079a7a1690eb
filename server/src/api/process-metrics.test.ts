// Goal: `/metrics` shows a blocked event loop: the delay monitor's maximum since the last scrape
// covers a 200 ms block, and the next scrape starts afresh. Method: block the loop in-process with
// a busy wait inside a timer, then render twice.
import assert from "node:assert/strict";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createProcessMetrics } from "./process-metrics.js";

function scrape(metrics: ReturnType<typeof createProcessMetrics>): Map<string, number> {
  const lines: string[] = [];
  const emit = (name: string, _help: string, value: number): void => {
    lines.push(`${name} ${value}`);
  };
  metrics.render(lines, emit, emit);
  return new Map(
    lines
      .filter((line) => !line.startsWith("#"))
      .map((line) => {
        const at = line.lastIndexOf(" ");
        return [line.slice(0, at), Number(line.slice(at + 1))] as const;
      }),
  );
}

it("reports the event loop's delay since the last scrape, and the process's figures", async () => {
  const metrics = createProcessMetrics();
  scrape(metrics); // starts a fresh interval
  await sleep(30);
  await new Promise<void>((resolve) =>
    setTimeout(() => {
      const until = performance.now() + 200;
      while (performance.now() < until) {
        // Busy: the loop is blocked for 200 ms.
      }
      resolve();
    }, 0),
  );
  await sleep(30); // the monitor samples once more after the block
  const blocked = scrape(metrics);
  assert.ok(blocked.get("nodejs_eventloop_lag_max_seconds")! >= 0.19, JSON.stringify([...blocked]));
  assert.ok(blocked.get("process_resident_memory_bytes")! > 0);
  assert.ok(blocked.get("process_cpu_seconds_total")! > 0);
  await sleep(50);
  const after = scrape(metrics);
  // A new interval: the block is not in it (a loaded machine may still stall for tens of ms).
  assert.ok(after.get("nodejs_eventloop_lag_max_seconds")! < 0.15, "a new interval after a scrape");
});
