/**
 * What the basin, stream and record services share: the catalog, the storage engine, the clock,
 * the streamers of active streams, and the background deletion of streams and basins.
 *
 * Streamers are created on first use of a stream and live until the stream is removed or they
 * are dormant for `streamerIdleMs` (nothing in progress, pipelined beyond the durable tail or
 * subscribed: `Streamer.isDormant`); a dormant one is dropped at the next background pass and
 * rebuilt from the durable state on next use, so streams touched once give their memory back.
 */
import { createHash } from "node:crypto";
import { AssertionError } from "../core/assert.js";
import type { Clock } from "../core/clock.js";
import type { Random } from "../core/random.js";
import type { RecordCryptoPool } from "../core/record-crypto-pool.js";
import { streamCipherOf } from "../core/record-encryption.js";
import {
  decodeBasinConfig,
  decodeStreamConfig,
  type BasinConfig,
  type StreamConfig,
} from "../core/config.js";
import {
  basinDeletionPending,
  basinNotFound,
  S2Error,
  streamDeletionPending,
  streamNotFound,
} from "../core/errors.js";
import { streamerIdleMs as streamerIdleMsDefault } from "../core/limits.js";
import type { Storage } from "../storage/storage.js";
import { streamMapKey } from "../storage/durable-state.js";
import type { BasinRecord, StreamRecord } from "../storage/wal/entries.js";
import { type FollowEnd, Streamer, toS2Error } from "../streamer/streamer.js";
import type { Catalog } from "./catalog.js";
import { MetricsService } from "./metrics.js";

/** Basin info as listed (S2-API.md §4.3). */
export interface BasinInfo {
  readonly name: string;
  readonly createdAtMs: number;
  readonly deletedAtMs: number | null;
}

/** Stream info as listed (S2-API.md §4.3). */
export interface StreamInfo {
  readonly name: string;
  readonly createdAtMs: number;
  readonly deletedAtMs: number | null;
  readonly cipher: string | null;
}

/** S2-Provision-Result of a create or ensure (S2-API.md §3.2). */
export type ProvisionResult = "created" | "updated" | "noop";

export function basinInfoOf(record: BasinRecord): BasinInfo {
  return { name: record.name, createdAtMs: record.createdAtMs, deletedAtMs: record.deletedAtMs };
}

export function streamInfoOf(record: StreamRecord): StreamInfo {
  return {
    name: record.name,
    createdAtMs: record.createdAtMs,
    deletedAtMs: record.deletedAtMs,
    cipher: record.cipher,
  };
}

export function basinConfigOf(record: BasinRecord): BasinConfig {
  return decodeBasinConfig(record.config);
}

export function streamConfigOf(record: StreamRecord): StreamConfig {
  return decodeStreamConfig(record.config);
}

/**
 * The idempotency key of a create (S2 lite: a hash of the request token and the requested config),
 * so that a retry with the same token and body is recognized (S2-API.md §6.3).
 */
export function createKeyOf(
  requestToken: string | undefined,
  requestedConfig: unknown,
): string | null {
  if (requestToken === undefined) return null;
  return createHash("sha256")
    .update(requestToken)
    .update("\n")
    .update(JSON.stringify(requestedConfig))
    .digest("hex");
}

export class ServiceContext {
  private readonly streamers = new Map<number, Streamer>();
  /** Stream deletions whose terminal trim and mark are not yet durable, by stream id. */
  private readonly deletions = new Map<number, Promise<void>>();
  /** The metrics recorder every service counts its operations with. */
  readonly metrics: MetricsService;

  constructor(
    readonly storage: Storage,
    readonly catalog: Catalog,
    readonly clock: Clock,
    readonly random: Random,
    /** How long a streamer stays dormant before it is dropped (tests shorten it). */
    private readonly streamerIdleMs: number = streamerIdleMsDefault,
    /**
     * Where batches of encrypted streams are encrypted and decrypted when they are worth a worker
     * thread; none = always on the event loop (deterministic, for the simulator).
     */
    readonly recordCrypto?: RecordCryptoPool | undefined,
  ) {
    this.metrics = new MetricsService(storage, clock);
    storage.onDurable((segment) => {
      for (const entry of segment.entries) {
        if (entry.kind === "records")
          this.streamers.get(entry.streamId)?.onDurable(entry.firstSeqNum, entry.records);
      }
    });
  }

  /**
   * The basin as a change must see it: the pipelined record, except that while its removal is in
   * flight (submitted, not yet durable) it is still the durable record marked deleted, so that the
   * name stays "deletion pending" (409, repeat delete 202) until it is free for good, as in lite
   * (S2-API.md §6.5); reads of the durable view (get, list) agree.
   */
  basinForChange(name: string): BasinRecord | undefined {
    const basin = this.catalog.basin(name);
    if (basin !== undefined) return basin;
    const durable = this.catalog.durable.basins.get(name);
    return durable !== undefined && durable.deletedAtMs !== null ? durable : undefined;
  }

  /** `basinForChange` for a stream: a stream being removed stays "deletion pending". */
  streamForChange(basin: string, name: string): StreamRecord | undefined {
    const stream = this.catalog.stream(basin, name);
    if (stream !== undefined) return stream;
    const durable = this.catalog.durable.streams.get(streamMapKey(basin, name));
    return durable !== undefined && durable.deletedAtMs !== null ? durable : undefined;
  }

  /** The live basin or a 404 / 409 error. */
  activeBasin(name: string): BasinRecord {
    const basin = this.basinForChange(name);
    if (basin === undefined) throw basinNotFound(name);
    if (basin.deletedAtMs !== null) throw basinDeletionPending(name);
    return basin;
  }

  /** The live stream or a 404 / 409 error (pipelined view, see `streamForChange`). */
  activeStream(basin: string, name: string): StreamRecord {
    const stream = this.streamForChange(basin, name);
    if (stream === undefined) {
      if (this.catalog.basin(basin) === undefined) throw basinNotFound(basin);
      throw streamNotFound({ basin, stream: name });
    }
    if (stream.deletedAtMs !== null) throw streamDeletionPending();
    return stream;
  }

  /** The streamer of a stream, created on first use. */
  streamerOf(record: StreamRecord): Streamer {
    let streamer = this.streamers.get(record.streamId);
    if (streamer === undefined) {
      streamer = new Streamer({
        storage: this.storage,
        clock: this.clock,
        streamId: record.streamId,
        config: streamConfigOf(record),
        cipher: streamCipherOf(record.cipher),
        recordCrypto: this.recordCrypto,
      });
      this.streamers.set(record.streamId, streamer);
    }
    return streamer;
  }

  /** The streamer if one is active (reconfiguration updates it). */
  activeStreamer(streamId: number): Streamer | undefined {
    return this.streamers.get(streamId);
  }

  /** Ends every follower of every stream (fenced or closing). */
  endAllFollowers(reason: FollowEnd): void {
    for (const streamer of this.streamers.values()) streamer.endFollowers(reason);
  }

  /** Drops the streamers dormant for `streamerIdleMs` (the background pass calls it). */
  retireDormantStreamers(): number {
    let retired = 0;
    for (const [streamId, streamer] of this.streamers) {
      if (!streamer.isDormant(this.streamerIdleMs)) continue;
      this.streamers.delete(streamId);
      retired += 1;
    }
    return retired;
  }

  /** Number of active streamers (metrics). */
  get activeStreams(): number {
    return this.streamers.size;
  }

  /**
   * Deletes a stream (S2-API.md §6.5): the terminal trim, the deletion mark, then (in the
   * background) its removal. Idempotent while pending.
   */
  async deleteStream(record: StreamRecord): Promise<void> {
    // Marked already: wait for the deletion in flight, if any. Basin removal relies on this, so
    // that it never removes a stream before its terminal trim is durable (the trim's records would
    // land on a removed stream and its ack would find no tail).
    if (record.deletedAtMs !== null) return this.deletions.get(record.streamId);
    const marked: StreamRecord = { ...record, deletedAtMs: this.clock.nowMs() };
    const streamer = this.streamerOf(record);
    const trimmed = streamer.beginDeletion();
    const committed = this.catalog.commit({ op: "stream.put", stream: marked });
    const deletion = Promise.all([trimmed, committed]).then(
      () => {},
      (error: unknown) => {
        throw toS2Error(error);
      },
    );
    this.deletions.set(record.streamId, deletion);
    try {
      await deletion;
    } finally {
      this.deletions.delete(record.streamId);
    }
    this.removeStreamInBackground(marked);
  }

  /** Removes a stream marked for deletion: its records and its name are freed. */
  async removeStream(record: StreamRecord): Promise<void> {
    const current = this.catalog.stream(record.basin, record.name);
    if (current === undefined || current.streamId !== record.streamId) return;
    await this.catalog.commit({
      op: "stream.remove",
      basin: record.basin,
      name: record.name,
      streamId: record.streamId,
    });
    const streamer = this.streamers.get(record.streamId);
    this.streamers.delete(record.streamId);
    streamer?.endFollowers(new S2Error("unavailable", "stream deleted"));
  }

  /** Deletes every stream of a basin marked for deletion, then the basin itself. */
  async removeBasin(record: BasinRecord): Promise<void> {
    for (const stream of this.catalog.streamsOf(record.name)) {
      await this.deleteStream(stream);
      await this.removeStream({ ...stream, deletedAtMs: stream.deletedAtMs ?? this.clock.nowMs() });
    }
    const current = this.catalog.basin(record.name);
    if (current === undefined || current.createdAtMs !== record.createdAtMs) return;
    await this.catalog.commit({ op: "basin.remove", name: record.name });
  }

  removeStreamInBackground(record: StreamRecord): void {
    this.inBackground(() => this.removeStream(record));
  }

  removeBasinInBackground(record: BasinRecord): void {
    this.inBackground(() => this.removeBasin(record));
  }

  /** Resumes deletions that were pending when the server last stopped. */
  resumeDeletions(): void {
    for (const basin of this.catalog.durable.basins.values()) {
      if (basin.deletedAtMs !== null) this.removeBasinInBackground(basin);
    }
    for (const stream of this.catalog.durable.streams.values()) {
      if (stream.deletedAtMs !== null) this.removeStreamInBackground(stream);
    }
  }

  private inBackground(task: () => Promise<void>): void {
    // An expected failure (fenced, shutting down: an S2Error after mapping) leaves the deletion
    // marked, and the next start resumes it. Anything else is a bug: an assertion crashes the
    // process, as everywhere; other errors are logged so a stuck deletion is visible.
    setImmediate(() => {
      task().catch((error: unknown) => {
        if (error instanceof AssertionError) {
          queueMicrotask(() => {
            throw error;
          });
          return;
        }
        const mapped = toS2Error(error);
        if (mapped instanceof S2Error) return;
        process.stderr.write(
          `tributary: background deletion failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
        );
      });
    });
  }
}
