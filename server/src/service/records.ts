/**
 * Record operations: append, read, check tail, follow (S2-API.md §5.3–§5.5), with auto-create
 * on append and on read (§6.7). Start resolution and session logic (clamp, wait, heartbeats) are
 * the API layer's; this layer reads durable records by seq num and follows durable batches.
 */
import { basinNotFound, invalid, streamNotFound } from "../core/errors.js";
import { validateBasinName, validateStreamName } from "../core/names.js";
import type {
  AppendAck,
  AppendInput,
  SeqNum,
  SequencedRecord,
  StreamPosition,
} from "../core/records.js";
import type { StreamRecord } from "../storage/wal/entries.js";
import { validateAppendBatch } from "../streamer/append-validation.js";
import type { Follower } from "../streamer/streamer.js";
import { basinConfigOf, type ServiceContext } from "./context.js";
import {
  openReadSession,
  type ReadEvent,
  type ReadRequest,
  validateReadRequest,
} from "./read-session.js";
import type { StreamService } from "./streams.js";

type AutoCreate = "append" | "read";

export class RecordService {
  constructor(
    private readonly context: ServiceContext,
    private readonly streams: StreamService,
  ) {}

  /**
   * In-flight auto-creates by stream: requests for a stream being auto-created wait for the same
   * create, so that they reach the streamer in arrival order.
   */
  private readonly autoCreates = new Map<string, Promise<void>>();

  /**
   * Appends a batch; resolves with the ack once durable. When the stream exists, the batch
   * reaches its streamer without yielding, so appends issued in order are sequenced in order
   * (sessions rely on this).
   */
  append(basin: string, stream: string, input: AppendInput): Promise<AppendAck> {
    try {
      validateAppendBatch(input);
      const record = this.resolve(basin, stream, "append");
      if (!(record instanceof Promise)) return this.context.streamerOf(record).append(input);
      return record.then((created) => this.context.streamerOf(created).append(input));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The durable tail (`{0, 0}` for a never-written stream). */
  async checkTail(basin: string, stream: string): Promise<StreamPosition> {
    const record = await this.resolve(basin, stream, "read");
    return this.context.streamerOf(record).tail;
  }

  /** Durable records from `startSeqNum`, bounded by count and metered bytes. */
  async read(
    basin: string,
    stream: string,
    options: { readonly startSeqNum: SeqNum; readonly countMax: number; readonly bytesMax: number },
  ): Promise<SequencedRecord[]> {
    const record = await this.resolve(basin, stream, "read");
    return this.context.streamerOf(record).read(options);
  }

  /**
   * Opens a read session (S2-API.md §5.4): bounds are validated before the stream is looked up
   * or auto-created; a 416 is thrown before anything is emitted.
   */
  async openReadSession(
    basin: string,
    stream: string,
    request: ReadRequest,
    options: { readonly heartbeatDelayMs?: (() => number) | undefined } = {},
  ): Promise<AsyncGenerator<ReadEvent, void, undefined>> {
    validateReadRequest(request);
    const record = await this.resolve(basin, stream, "read");
    return openReadSession(this.context.streamerOf(record), request, {
      clock: this.context.clock,
      random: this.context.random,
      heartbeatDelayMs: options.heartbeatDelayMs,
    });
  }

  /** A live subscription to the stream's durable batches from its current tail. */
  async follow(
    basin: string,
    stream: string,
  ): Promise<{ tail: StreamPosition; follower: Follower }> {
    const record = await this.resolve(basin, stream, "read");
    const streamer = this.context.streamerOf(record);
    return { tail: streamer.tail, follower: streamer.follow() };
  }

  /**
   * The live stream, synchronously when it exists; else a promise of it once auto-created, when
   * the basin allows that (a concurrent creator may win the race: then theirs is used).
   */
  private resolve(
    basin: string,
    stream: string,
    autoCreate: AutoCreate,
  ): StreamRecord | Promise<StreamRecord> {
    const reason = validateBasinName(basin) ?? validateStreamName(stream);
    if (reason !== undefined) throw invalid(reason);
    const key = `${basin}\u0000${stream}`;
    const pending = this.autoCreates.get(key);
    if (pending !== undefined) return pending.then(() => this.context.activeStream(basin, stream));
    const existing = this.context.catalog.stream(basin, stream);
    if (existing !== undefined) return this.context.activeStream(basin, stream);
    if (this.context.catalog.basin(basin) === undefined) throw basinNotFound(basin);
    const config = basinConfigOf(this.context.activeBasin(basin));
    const allowed =
      autoCreate === "append" ? config.createStreamOnAppend : config.createStreamOnRead;
    if (!allowed) throw streamNotFound({ basin, stream });
    const created = this.streams.create({ basin, name: stream }).then(
      () => {},
      (error: unknown) => {
        if (this.context.catalog.stream(basin, stream) === undefined) throw error;
      },
    );
    const settled = created.finally(() => this.autoCreates.delete(key));
    this.autoCreates.set(key, settled);
    return settled.then(() => this.context.activeStream(basin, stream));
  }
}
