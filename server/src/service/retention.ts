/**
 * Background retention and delete-on-empty (S2-API.md §6.2, §6.6), run every
 * `backgroundTaskIntervalMs` ± 10% (s2-lite's cadence), after retiring dormant streamers; the
 * same pass forgets producers idle for `producerIdleMs` (docs/design/producers.md).
 *
 * Retention by age expires records whose *timestamp* is older than the age (s2-lite measures from
 * write time; with the default capped timestamps the two agree, and an old client timestamp
 * expires sooner). Expiry is a `stream.expire` control entry: it moves the trim point without
 * taking a seq num, so positions never change, and the tail never regresses.
 *
 * Delete-on-empty deletes a stream that has no unexpired records and has seen no append (by its
 * last record's timestamp, or its creation) for `min_age_secs`, with nothing in flight. Lite pads
 * its deadlines by 10 minutes; we check directly, so deletion comes within one interval.
 */
import { assert } from "../core/assert.js";
import {
  backgroundTaskIntervalMs,
  producerIdleMs,
  readBatchBytesMax,
  readBatchCountMax,
} from "../core/limits.js";
import type { SeqNum } from "../core/records.js";
import type { StreamRecord } from "../storage/wal/entries.js";
import { type ServiceContext, streamConfigOf } from "./context.js";

export class RetentionTask {
  private cancelTimer: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly context: ServiceContext,
    private readonly intervalMs = backgroundTaskIntervalMs,
  ) {
    assert(intervalMs > 0, "background interval must be positive");
  }

  start(): void {
    this.schedule();
  }

  /** Stops scheduling and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer?.();
    await this.running;
  }

  /** One pass over every stream (also called by tests); first, dormant streamers retire. */
  async runOnce(): Promise<void> {
    const { catalog } = this.context;
    this.context.retireDormantStreamers();
    for (const record of [...catalog.durable.streams.values()]) {
      if (this.stopped) return;
      if (record.deletedAtMs !== null) continue;
      try {
        await this.expire(record);
        await this.expireIdleProducers(record);
        await this.deleteIfEmpty(record);
      } catch {
        // Fenced or closing: the next pass (or the next server) retries.
        return;
      }
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    const jitter = 0.9 + 0.2 * this.context.random.float();
    this.cancelTimer = this.context.clock.setTimer(this.intervalMs * jitter, () => {
      this.running = this.runOnce().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    });
  }

  private async expire(record: StreamRecord): Promise<void> {
    const policy = streamConfigOf(record).retentionPolicy;
    if (policy.kind !== "age") return;
    const cutoffMs = this.context.clock.nowMs() - policy.ageSecs * 1000;
    const { storage } = this.context;
    const tail = storage.state.tailOf(record.streamId);
    let cursor: SeqNum = tail.trimPoint;
    let expireTo: SeqNum = tail.trimPoint;
    while (cursor < tail.nextSeqNum) {
      const records = await storage.readRecords({
        streamId: record.streamId,
        startSeqNum: cursor,
        endSeqNum: tail.nextSeqNum,
        countMax: readBatchCountMax,
        bytesMax: readBatchBytesMax,
      });
      if (records.length === 0) break;
      const firstKept = records.find((r) => r.timestamp >= cutoffMs);
      if (firstKept !== undefined) {
        expireTo = firstKept.seqNum;
        break;
      }
      cursor = records.at(-1)!.seqNum + 1;
      expireTo = cursor;
    }
    if (expireTo > tail.trimPoint) {
      await storage.submitControl({
        op: "stream.expire",
        streamId: record.streamId,
        trimPoint: expireTo,
      });
    }
  }

  /** Forgets the stream's producers idle for `producerIdleMs` (through its streamer). */
  private async expireIdleProducers(record: StreamRecord): Promise<void> {
    if ((this.context.storage.state.producers.get(record.streamId)?.size ?? 0) === 0) return;
    const cutoffMs = this.context.clock.nowMs() - producerIdleMs;
    await this.context.streamerOf(record).expireIdleProducers(cutoffMs);
  }

  private async deleteIfEmpty(record: StreamRecord): Promise<void> {
    const { minAgeSecs } = streamConfigOf(record).deleteOnEmpty;
    if (minAgeSecs <= 0) return;
    const tail = this.context.storage.state.tailOf(record.streamId);
    if (tail.trimPoint < tail.nextSeqNum) return;
    const streamer = this.context.activeStreamer(record.streamId);
    if (streamer !== undefined && streamer.pipelinedNextSeqNum !== tail.nextSeqNum) return;
    const idleSinceMs = Math.max(record.createdAtMs, tail.lastTimestamp);
    if (this.context.clock.nowMs() - idleSinceMs < minAgeSecs * 1000) return;
    const current = this.context.catalog.stream(record.basin, record.name);
    if (
      current === undefined ||
      current.streamId !== record.streamId ||
      current.deletedAtMs !== null
    )
      return;
    await this.context.deleteStream(current);
  }
}
