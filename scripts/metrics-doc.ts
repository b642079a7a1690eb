// Writes docs/prometheus.md: every series that `GET /metrics` (the Prometheus endpoint, not the S2
// metrics API) exposes, with its type, its labels and its help text, as the endpoint renders them
// for a server with bottomless storage on. `server/test/docs/metrics-doc.test.ts` fails when the
// file is stale, so an operator's list cannot drift from the code.
// Run: `node --import tsx scripts/metrics-doc.ts`.
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { FrameBudget } from "../server/src/api/frame-budget.js";
import { createApiMetrics } from "../server/src/api/metrics.js";
import { systemClock } from "../server/src/core/clock.js";
import {
  s2sFrameBufferBytesMax,
  s2sFrameBufferBytesPerConnectionMax,
} from "../server/src/core/limits.js";
import { systemRandom } from "../server/src/core/random.js";
import { Service } from "../server/src/service/service.js";
import { createMemoryKvStore } from "../server/src/storage/kv/memory.js";
import { createMemoryObjectStore } from "../server/src/storage/object-store/memory.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const metricsDocPath = path.join(root, "docs/prometheus.md");

interface Series {
  readonly name: string;
  type: string;
  help: string;
  readonly labels: Set<string>;
}

/** The series of one rendering of `/metrics`, in the order it lists them. */
export function seriesOf(text: string): Series[] {
  const byName = new Map<string, Series>();
  const seriesNamed = (name: string): Series => {
    let series = byName.get(name);
    if (series === undefined) {
      series = { name, type: "", help: "", labels: new Set() };
      byName.set(name, series);
    }
    return series;
  };
  for (const line of text.split("\n")) {
    const help = /^# HELP (\S+) (.*)$/.exec(line);
    if (help !== null) {
      seriesNamed(help[1]!).help = help[2]!;
      continue;
    }
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) {
      seriesNamed(type[1]!).type = type[2]!;
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? /.exec(line);
    if (sample === null) continue;
    // A histogram's samples carry its name with a suffix; their labels belong to it.
    const name = sample[1]!.replace(/_(bucket|sum|count)$/, "");
    const series = byName.get(name) ?? byName.get(sample[1]!);
    if (series === undefined) continue;
    for (const pair of (sample[2] ?? "").split(",")) {
      const label = pair.split("=", 1)[0]!.trim();
      if (label !== "" && label !== "le") series.labels.add(label);
    }
  }
  return [...byName.values()];
}

export async function renderMetricsDoc(): Promise<string> {
  const service = await Service.open({
    store: createMemoryObjectStore(),
    kv: createMemoryKvStore(),
    clock: systemClock,
    random: systemRandom,
  });
  let text: string;
  try {
    const metrics = createApiMetrics(
      service,
      new FrameBudget(s2sFrameBufferBytesMax, s2sFrameBufferBytesPerConnectionMax),
    );
    // One observation of each kind, so that series with labels show them.
    metrics.observeRequest("GET /v1/basins", 200, 1);
    metrics.observeAppend({ recordCount: 1, meteredBytes: 8, latencyMs: 1 });
    metrics.observeRead(1, 8);
    text = metrics.render();
  } finally {
    await service.close();
  }
  const rows = seriesOf(text).map((series) => {
    const labels = [...series.labels].map((label) => `\`${label}\``).join(", ");
    return `| \`${series.name}\` | ${series.type} | ${labels} | ${series.help.replaceAll("|", "\\|")} |`;
  });
  return [
    "# Prometheus metrics",
    "",
    "Every series of `GET /metrics` (Prometheus text format), generated from the code by",
    "`node --import tsx scripts/metrics-doc.ts` (a test fails when this file is stale). The S2",
    "metrics API (`/v1/metrics`, account, basin and stream sets) is another thing: see",
    "[design/metrics.md](design/metrics.md). Series of bottomless storage appear when it is on (the",
    "default).",
    "",
    "| series | type | labels | meaning |",
    "| --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}

if (
  process.argv[1] !== undefined &&
  fileURLToPath(import.meta.url) === path.resolve(process.argv[1])
) {
  const rendered = await renderMetricsDoc();
  const before = await readFile(metricsDocPath, "utf8").catch(() => "");
  if (before !== rendered) await writeFile(metricsDocPath, rendered);
  console.log(`wrote ${path.relative(root, metricsDocPath)}`);
}
