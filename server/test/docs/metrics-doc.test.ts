// Goal: docs/prometheus.md, the operator's list of the Prometheus endpoint's series, names every
// series `/metrics` renders, with its type and labels. Method: render it afresh from the code and
// compare with the file; and check the parser on a known rendering.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { it } from "node:test";
import { metricsDocPath, renderMetricsDoc, seriesOf } from "../../../scripts/metrics-doc.js";

it("docs/prometheus.md is what scripts/metrics-doc.ts makes of the code", async () => {
  const rendered = await renderMetricsDoc();
  for (const expected of [
    /\| `tributary_frame_buffer_bytes` \| gauge \| {2}\|/,
    /\| `tributary_requests_total` \| counter \| `route`, `status` \|/,
    /\| `tributary_compaction_streams_waiting` \| gauge \|/,
  ]) {
    assert.match(rendered, expected);
  }
  assert.equal(
    await readFile(metricsDocPath, "utf8"),
    rendered,
    "docs/prometheus.md is stale: run `node --import tsx scripts/metrics-doc.ts` and commit it",
  );
});

it("reads types, help and labels, a histogram's under its own name", () => {
  const series = seriesOf(
    [
      "# HELP a_seconds A histogram.",
      "# TYPE a_seconds histogram",
      'a_seconds_bucket{route="x",le="0.1"} 1',
      'a_seconds_sum{route="x"} 0.05',
      "# HELP b_total A counter.",
      "# TYPE b_total counter",
      "b_total 3",
    ].join("\n"),
  );
  assert.deepEqual(
    series.map((s) => [s.name, s.type, s.help, [...s.labels]]),
    [
      ["a_seconds", "histogram", "A histogram.", ["route"]],
      ["b_total", "counter", "A counter.", []],
    ],
  );
});
