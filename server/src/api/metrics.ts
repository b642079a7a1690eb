/**
 * Prometheus text exposition for `GET /metrics` (S2-API.md §8.2): requests and their latency by
 * route and status, appended and read bytes, sessions, and the storage engine's figures (segment
 * PUTs and their latency, inflight bytes, active streams), and the process's own (CPU, memory,
 * file descriptors, event-loop delay: `process-metrics.ts`). Counters live here; gauges are read
 * from the engine when scraped.
 */
import type { ObservedAck } from "../service/append-session.js";
import type { Service } from "../service/service.js";
import type { StorageStats } from "../storage/storage.js";
import { createProcessMetrics } from "./process-metrics.js";
import type { FrameBudget } from "./frame-budget.js";

/** Latency buckets in seconds (1 ms … 10 s). */
const latencyBucketsSecs = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

class Histogram {
  readonly counts = new Array<number>(latencyBucketsSecs.length).fill(0);
  count = 0;
  sumSecs = 0;

  observe(secs: number): void {
    this.count += 1;
    this.sumSecs += secs;
    for (let i = 0; i < latencyBucketsSecs.length; i++) {
      if (secs <= latencyBucketsSecs[i]!) this.counts[i]! += 1;
    }
  }
}

/** Kinds of streaming sessions: SSE, S2S, and the RPC sessions of `api/connect/`. */
export type SessionKind = "sse" | "s2s_append" | "s2s_read" | "rpc_append" | "rpc_read";

export interface ApiMetrics {
  observeRequest(route: string, status: number, durationMs: number): void;
  /** An ack released by an append pipeline (every append, unary or in a session). */
  observeAppend(ack: ObservedAck): void;
  observeRead(records: number, meteredBytes: number): void;
  /** +1 when a session (SSE, S2S or RPC) opens, -1 when it ends. */
  addSessions(kind: SessionKind, delta: number): void;
  render(): string;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

type Emit = (name: string, help: string, value: number) => void;

/** The background job's figures (docs/design/bottomless.md "Visibility"). */
function renderMaintenance(
  stats: StorageStats["maintenance"],
  lines: string[],
  counter: Emit,
  gauge: Emit,
): void {
  if (stats === undefined) return;
  counter("tributary_maintenance_jobs_total", "Compaction + checkpoint jobs started.", stats.jobs);
  counter(
    "tributary_maintenance_job_errors_total",
    "Jobs (or GC passes) that failed.",
    stats.jobErrors,
  );
  counter(
    "tributary_checkpoints_total",
    "Checkpoints committed (a manifest names them).",
    stats.checkpointsCommitted,
  );
  gauge(
    "tributary_checkpoint_age_seconds",
    "Time since the last committed checkpoint (-1 before the first).",
    stats.checkpointAgeMs === undefined ? -1 : stats.checkpointAgeMs / 1000,
  );
  gauge(
    "tributary_checkpoint_bytes",
    "Bytes the last checkpoint uploaded (its new base or delta part, and itself).",
    stats.lastCheckpointBytes,
  );
  counter(
    "tributary_checkpoint_rebases_total",
    "Checkpoints that wrote a full base part (the others wrote a delta of what changed).",
    stats.checkpointRebases,
  );
  counter(
    "tributary_checkpoint_uploaded_bytes_total",
    "Bytes of checkpoint parts and checkpoints uploaded for committed checkpoints.",
    stats.checkpointBytesUploaded,
  );
  gauge(
    "tributary_wal_bytes_since_checkpoint",
    "WAL bytes written since the last checkpoint (what a restart replays at most).",
    stats.walBytesSinceCheckpoint,
  );
  counter(
    "tributary_compaction_chunks_total",
    "Chunks uploaded by compaction.",
    stats.chunksWritten,
  );
  counter(
    "tributary_compaction_chunk_bytes_total",
    "Bytes of chunks uploaded by compaction.",
    stats.chunkBytesWritten,
  );
  counter(
    "tributary_compaction_bytes_total",
    "Record entry bytes read and rewritten by compaction.",
    stats.bytesCompacted,
  );
  gauge(
    "tributary_compaction_wal_backlog_bytes",
    "WAL bytes waiting for compaction (past half the cache bound, compaction stops yielding to appends).",
    stats.compactionWalBacklogBytes,
  );
  gauge(
    "tributary_compaction_streams_waiting",
    "Streams whose WAL rows the last job left for a later one (below the minimum, which is 1 MiB or less when many streams wait, and younger than the lag).",
    stats.compactionStreamsWaiting,
  );
  counter(
    "tributary_compaction_stream_errors_total",
    "Streams whose compaction failed in a job (skipped; the job still checkpoints).",
    stats.compactionStreamErrors,
  );
  counter(
    "tributary_compaction_window_file_reads_total",
    "WAL cache files read by compaction's read windows (each object once per window, for all its streams).",
    stats.compactionWindowFileReads,
  );
  counter(
    "tributary_compaction_window_gets_total",
    "Ranged GETs of evicted WAL objects made by compaction's read windows (one per span of entries).",
    stats.compactionWindowGets,
  );
  counter("tributary_gc_passes_total", "GC passes completed.", stats.gcPasses);
  counter(
    "tributary_gc_listing_passes_total",
    "GC passes that listed the WAL and chunk prefixes (the others took the difference of two checkpoints).",
    stats.gcListingPasses,
  );
  counter("tributary_gc_deleted_objects_total", "Objects GC deleted.", stats.gcObjectsDeleted);
  counter(
    "tributary_gc_deleted_bytes_total",
    "Bytes of the objects GC deleted.",
    stats.gcBytesDeleted,
  );
  counter("tributary_gc_errors_total", "GC passes that failed.", stats.gcErrors);
  lines.push(
    "# HELP tributary_bucket_objects Objects in the bucket by kind: the last GC listing, plus what this server created and deleted since.",
    "# TYPE tributary_bucket_objects gauge",
  );
  for (const [kind, usage] of Object.entries(stats.bucket)) {
    lines.push(`tributary_bucket_objects{kind="${kind}"} ${usage.objects}`);
  }
  lines.push(
    "# HELP tributary_bucket_bytes Bytes in the bucket by kind: the last GC listing, plus what this server created and deleted since.",
    "# TYPE tributary_bucket_bytes gauge",
  );
  for (const [kind, usage] of Object.entries(stats.bucket)) {
    lines.push(`tributary_bucket_bytes{kind="${kind}"} ${usage.bytes}`);
  }
}

export function createApiMetrics(
  service: Service,
  frameBudget: Pick<FrameBudget, "reservedBytes" | "waitingCount">,
): ApiMetrics {
  const requests = new Map<string, number>();
  const requestLatency = new Map<string, Histogram>();
  const ackLatency = new Histogram();
  const sessions: Record<SessionKind, number> = {
    sse: 0,
    s2s_append: 0,
    s2s_read: 0,
    rpc_append: 0,
    rpc_read: 0,
  };
  let appendedRecords = 0;
  let appendedBytes = 0;
  let readRecords = 0;
  let readBytes = 0;
  const processMetrics = createProcessMetrics();

  return {
    observeRequest(route, status, durationMs) {
      const key = `route="${escapeLabel(route)}",status="${status}"`;
      requests.set(key, (requests.get(key) ?? 0) + 1);
      const histogramKey = `route="${escapeLabel(route)}"`;
      let histogram = requestLatency.get(histogramKey);
      if (histogram === undefined) requestLatency.set(histogramKey, (histogram = new Histogram()));
      histogram.observe(durationMs / 1000);
    },
    observeAppend({ recordCount, meteredBytes, latencyMs }) {
      appendedRecords += recordCount;
      appendedBytes += meteredBytes;
      ackLatency.observe(latencyMs / 1000);
    },
    observeRead(records, meteredBytes) {
      readRecords += records;
      readBytes += meteredBytes;
    },
    addSessions(kind, delta) {
      sessions[kind] += delta;
    },
    render() {
      const lines: string[] = [];
      const counter = (name: string, help: string, value: number): void => {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`);
      };
      const gauge = (name: string, help: string, value: number): void => {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
      };
      const histogram = (name: string, labels: string, h: Histogram): void => {
        const prefix = labels === "" ? "" : `${labels},`;
        latencyBucketsSecs.forEach((le, i) => {
          lines.push(`${name}_bucket{${prefix}le="${le}"} ${h.counts[i]}`);
        });
        lines.push(`${name}_bucket{${prefix}le="+Inf"} ${h.count}`);
        lines.push(`${name}_sum${labels === "" ? "" : `{${labels}}`} ${h.sumSecs}`);
        lines.push(`${name}_count${labels === "" ? "" : `{${labels}}`} ${h.count}`);
      };
      lines.push(
        "# HELP tributary_requests_total API requests by route and status.",
        "# TYPE tributary_requests_total counter",
      );
      for (const [labels, value] of requests)
        lines.push(`tributary_requests_total{${labels}} ${value}`);
      lines.push(
        "# HELP tributary_request_duration_seconds API request latency by route.",
        "# TYPE tributary_request_duration_seconds histogram",
      );
      for (const [labels, h] of requestLatency)
        histogram("tributary_request_duration_seconds", labels, h);
      lines.push(
        "# HELP tributary_append_ack_latency_seconds Append latency until durable.",
        "# TYPE tributary_append_ack_latency_seconds histogram",
      );
      histogram("tributary_append_ack_latency_seconds", "", ackLatency);
      counter(
        "tributary_appended_records_total",
        "Records appended (acknowledged).",
        appendedRecords,
      );
      counter(
        "tributary_appended_bytes_total",
        "Metered bytes appended (acknowledged).",
        appendedBytes,
      );
      counter("tributary_read_records_total", "Records sent to readers.", readRecords);
      counter("tributary_read_bytes_total", "Metered bytes sent to readers.", readBytes);
      const stats = service.storage.stats;
      counter("tributary_segment_puts_total", "WAL segments uploaded.", stats.segmentsUploaded);
      counter(
        "tributary_segment_put_attempts_total",
        "Segment PUT attempts, retries included.",
        stats.putAttempts,
      );
      counter(
        "tributary_segment_bytes_total",
        "Bytes of WAL segments uploaded.",
        stats.bytesUploaded,
      );
      gauge(
        "tributary_segment_put_latency_seconds",
        "Latency of the last segment PUT.",
        stats.lastPutLatencyMs / 1000,
      );
      counter(
        "tributary_cache_entry_misses_total",
        "Records entries read from the bucket because their cache file was missing or damaged.",
        stats.entryMisses,
      );
      counter(
        "tributary_cache_segment_files_written_total",
        "Durable segments and chunks written to the local cache as files.",
        stats.filesWritten,
      );
      counter(
        "tributary_cache_entry_hits_total",
        "Records entries read from their cache file.",
        stats.entryHits,
      );
      gauge(
        "tributary_cache_bytes",
        "Bytes of the cache's segment and chunk files.",
        stats.fileBytes,
      );
      gauge(
        "tributary_cache_bytes_max",
        "The bound on the cache's files (--cache-size).",
        stats.fileBytesMax,
      );
      gauge(
        "tributary_cache_degraded",
        "1 while the cache's disk is unusable (index in memory, reads from the bucket), else 0.",
        stats.cacheGuard.mode === "degraded" ? 1 : 0,
      );
      counter(
        "tributary_cache_degraded_total",
        "Times the cache degraded on a disk fault (ENOSPC, EIO, ...), a start on a bad disk included.",
        stats.cacheGuard.degradedTotal,
      );
      counter(
        "tributary_cache_rejoined_total",
        "Times a degraded cache found its disk usable again and moved back to it.",
        stats.cacheGuard.rejoinedTotal,
      );
      counter(
        "tributary_cache_evictions_total",
        "Cache files unlinked to stay within --cache-size.",
        stats.filesEvicted,
      );
      counter(
        "tributary_cache_chunk_downloads_total",
        "Chunks downloaded whole into the cache, on a miss or ahead of a reader.",
        stats.chunkDownloads,
      );
      counter(
        "tributary_cache_chunk_read_aheads_total",
        "Chunk downloads started ahead of a reader, for the rows its read listed past its end.",
        stats.chunkReadAheads,
      );
      counter(
        "tributary_cache_wal_read_ahead_entries_total",
        "Evicted WAL entries fetched from the bucket ahead of a reader, for its next read.",
        stats.walReadAheadEntries,
      );
      gauge(
        "tributary_cache_wal_read_ahead_bytes",
        "Bytes of WAL entries fetched ahead of readers, in flight or held for their next reads (at most 64 MiB).",
        stats.walReadAheadBytes,
      );
      renderMaintenance(stats.maintenance, lines, counter, gauge);
      gauge(
        "tributary_append_inflight_bytes",
        "Metered bytes accepted and not yet durable and cached.",
        stats.inflightBytes,
      );
      gauge(
        "tributary_append_admission_waiting",
        "Appends waiting for admission.",
        stats.admissionWaiting,
      );
      gauge("tributary_active_streams", "Streams with a live streamer.", service.activeStreams);
      counter(
        "tributary_metrics_dropped_deltas_total",
        "Metrics API deltas dropped because the recorder was full (metricsPendingCellsMax), e.g. during an object-store outage.",
        service.metrics.droppedDeltaCount,
      );
      lines.push(
        "# HELP tributary_sessions Open streaming sessions by kind.",
        "# TYPE tributary_sessions gauge",
      );
      for (const [kind, value] of Object.entries(sessions))
        lines.push(`tributary_sessions{kind="${kind}"} ${value}`);
      gauge(
        "tributary_frame_buffer_bytes",
        "Bytes reserved by S2S frames and RPC messages still arriving (bounded by s2sFrameBufferBytesMax).",
        frameBudget.reservedBytes,
      );
      gauge(
        "tributary_frame_buffer_waiting",
        "S2S append sessions and RPC calls not reading until the frame buffer has room for their frame.",
        frameBudget.waitingCount,
      );
      processMetrics.render(lines, counter, gauge);
      return `${lines.join("\n")}\n`;
    },
  };
}
