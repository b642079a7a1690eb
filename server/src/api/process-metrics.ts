/**
 * The Node process's own figures for `GET /metrics`, under the names Prometheus client libraries
 * use (prom-client's defaults), so that stock dashboards work: CPU, resident memory, open file
 * descriptors, heap, and the event loop's delay (issue 12: a request that blocks the loop shows
 * here). Event-loop delay is sampled by Node (`monitorEventLoopDelay`, every
 * `eventLoopSampleMs`) and the histogram restarts at each scrape, so min/max/percentiles cover
 * the interval since the previous scrape.
 */
import { readdirSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

/** The sampling period of the event-loop delay monitor (prom-client's default). */
const eventLoopSampleMs = 10;

type Emit = (name: string, help: string, value: number) => void;

export interface ProcessMetrics {
  /** Appends the process's figures and restarts the event-loop histogram. */
  render(lines: string[], counter: Emit, gauge: Emit): void;
}

export function createProcessMetrics(): ProcessMetrics {
  const eventLoopDelay = monitorEventLoopDelay({ resolution: eventLoopSampleMs });
  eventLoopDelay.enable();
  const startTimeSecs = Math.round(Date.now() / 1000 - process.uptime());
  return {
    render(lines, counter, gauge) {
      const cpu = process.cpuUsage();
      counter("process_cpu_user_seconds_total", "User CPU time spent, in seconds.", cpu.user / 1e6);
      counter(
        "process_cpu_system_seconds_total",
        "System CPU time spent, in seconds.",
        cpu.system / 1e6,
      );
      counter(
        "process_cpu_seconds_total",
        "User and system CPU time spent, in seconds.",
        (cpu.user + cpu.system) / 1e6,
      );
      const memory = process.memoryUsage();
      gauge("process_resident_memory_bytes", "Resident memory size in bytes.", memory.rss);
      gauge(
        "process_start_time_seconds",
        "Start time of the process, in epoch seconds.",
        startTimeSecs,
      );
      const openFds = openFileDescriptors();
      if (openFds !== undefined) gauge("process_open_fds", "Open file descriptors.", openFds);
      gauge("nodejs_heap_size_total_bytes", "V8 heap size in bytes.", memory.heapTotal);
      gauge("nodejs_heap_size_used_bytes", "V8 heap used in bytes.", memory.heapUsed);
      gauge(
        "nodejs_external_memory_bytes",
        "Memory of C++ objects bound to JS objects.",
        memory.external,
      );
      // Nanoseconds from the monitor; NaN (no sample yet) is reported as 0.
      const secs = (ns: number): number => (Number.isFinite(ns) ? ns / 1e9 : 0);
      const delay = eventLoopDelay;
      gauge(
        "nodejs_eventloop_lag_min_seconds",
        "Event-loop delay, minimum since the last scrape.",
        secs(delay.min),
      );
      gauge(
        "nodejs_eventloop_lag_max_seconds",
        "Event-loop delay, maximum since the last scrape.",
        secs(delay.max),
      );
      gauge(
        "nodejs_eventloop_lag_mean_seconds",
        "Event-loop delay, mean since the last scrape.",
        secs(delay.mean),
      );
      gauge(
        "nodejs_eventloop_lag_p50_seconds",
        "Event-loop delay, median since the last scrape.",
        secs(delay.percentile(50)),
      );
      gauge(
        "nodejs_eventloop_lag_p99_seconds",
        "Event-loop delay, 99th percentile since the last scrape.",
        secs(delay.percentile(99)),
      );
      delay.reset();
      lines.push(
        "# HELP nodejs_version_info Node.js version.",
        "# TYPE nodejs_version_info gauge",
        `nodejs_version_info{version="${process.version}"} 1`,
      );
    },
  };
}

/** Entries of /proc/self/fd (Linux); undefined where there is no such directory. */
function openFileDescriptors(): number | undefined {
  try {
    // One of the entries is the directory handle this call opens.
    return readdirSync("/proc/self/fd").length - 1;
  } catch {
    return undefined;
  }
}
