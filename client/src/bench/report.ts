/**
 * Text for `tributary bench`: the live progress line and the final report, as a table or as JSON.
 * Nothing here measures or decides; it only formats `run.ts`'s objects.
 */
import type { LatencyStats } from "./histogram.js";
import type { BenchProgress, BenchReport, Throughput } from "./run.js";

const mib = 1024 * 1024;

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "-";
}

function seconds(ms: number): string {
  return `${fixed(ms / 1000, ms < 10_000 ? 2 : 1)}s`;
}

/** Lays out rows of cells in columns: the first left-aligned, the others right-aligned. */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
}

function throughputRow(label: string, t: Throughput | undefined): string[] {
  if (t === undefined) return [label, "-", "-", "-", "-", "-"];
  return [
    label,
    fixed(t.mibps, 2),
    fixed(t.recordsPerSec, 0),
    String(t.records),
    String(t.bytes),
    fixed(t.elapsedMs / 1000, 2),
  ];
}

function latencyRow(label: string, s: LatencyStats): string[] {
  return [
    label,
    String(s.count),
    fixed(s.min, 2),
    fixed(s.p50, 2),
    fixed(s.p90, 2),
    fixed(s.p99, 2),
    fixed(s.max, 2),
  ];
}

/** One line of live progress (without a line ending). */
export function formatProgress(progress: BenchProgress): string {
  const writeMibps =
    progress.elapsedMs > 0 ? progress.ackedBytes / mib / (progress.elapsedMs / 1000) : 0;
  const isWriting = progress.phase === "write";
  const parts = [
    `${progress.phase}`,
    `elapsed ${seconds(progress.elapsedMs)}`,
    // The average over the whole run so far: meaningful only while the writer runs.
    ...(isWriting ? [`write ${fixed(writeMibps, 2)} MiB/s`] : []),
    `acked ${progress.ackedRecords}`,
    `read ${progress.readRecords}`,
  ];
  if (progress.phase === "catchup") parts.push(`catch-up ${progress.catchupRecords}`);
  return parts.join("  ");
}

/** The final report as a table (lines end with `\n`). */
export function formatReport(report: BenchReport): string {
  const s = report.settings;
  const lines = [
    `stream     s2://${report.basin}/${report.stream} (${report.streamDeleted ? "deleted" : "NOT deleted"})`,
    `settings   record size ${s.recordBytes} B, target ${s.targetMibps} MiB/s, ` +
      `duration ${seconds(s.durationMs)}, catch-up delay ${seconds(s.catchupDelayMs)}, ` +
      `storage class ${s.storageClass ?? "basin default"}`,
    `chain      ${report.chainHash}${report.interrupted ? " (interrupted: not verified to the end)" : " (writer = live read = catch-up read)"}`,
    "",
    ...table([
      ["", "MiB/s", "records/s", "records", "bytes", "seconds"],
      throughputRow("write", report.write),
      throughputRow("read", report.read),
      throughputRow("catch-up", report.catchup),
    ]),
    `client CPU ${seconds(report.clientCpuMs.live)} during write + live read, ` +
      `${report.clientCpuMs.catchup === undefined ? "-" : seconds(report.clientCpuMs.catchup)} during catch-up`,
    "",
    ...table([
      ["latency (ms)", "n", "min", "p50", "p90", "p99", "max"],
      latencyRow("ack", report.ackLatencyMs),
      latencyRow("end-to-end", report.endToEndLatencyMs),
    ]),
  ];
  return `${lines.join("\n")}\n`;
}

/** The final report as JSON (NaN, from an empty latency set, becomes null; so does no catch-up). */
export function formatReportJson(report: BenchReport): string {
  return `${JSON.stringify(
    {
      ...report,
      catchup: report.catchup ?? null,
      clientCpuMs: { ...report.clientCpuMs, catchup: report.clientCpuMs.catchup ?? null },
    },
    null,
    2,
  )}\n`;
}
