/**
 * The durable state: what the bucket's WAL says, folded. Basins, streams and each stream's tail
 * (next seq num, last timestamp, fencing token, trim point). It is changed only by applying
 * segments that are in object storage, in WAL order, by the live flusher and by recovery through
 * the same `applyEntry`, so both paths produce the same state by construction.
 *
 * Invariant: a records entry starts exactly at its stream's tail (asserted; the pair of the
 * contiguity assertion in segment/format.ts). Applying an entry returns the cache writes that
 * mirror the change, so the cache commit of a segment is one atomic batch.
 */
import { assert } from "../core/assert.js";
import { producerAckWindow } from "../core/limits.js";
import { commandValueOf, meteredBytesOfBatch, type SeqNum } from "../core/records.js";
import {
  encodeAccessTokenKey,
  encodeBasinKey,
  encodeJsonValue,
  encodeProducerKey,
  encodeStreamKey,
  encodeStreamTailKey,
} from "./kv/keys.js";
import type { KvOp } from "./kv/kv-store.js";
import { MetricsLedger } from "./metrics-ledger.js";
import type { SegmentEntry } from "./segment/format.js";
import {
  type AccessTokenRecord,
  type BasinRecord,
  type ControlOp,
  decodeControlOp,
  type ProducerBatch,
  type StreamRecord,
} from "./wal/entries.js";

/** A stream's durable tail and the state its command records set. */
export interface StreamTail {
  /** The next seq num to be assigned. */
  readonly nextSeqNum: SeqNum;
  /** The timestamp of the last record (0 if never written). */
  readonly lastTimestamp: number;
  /** Set by the last fence command ("" initially). */
  readonly fencingToken: string;
  /** Records below this seq num are trimmed. */
  readonly trimPoint: SeqNum;
}

export const emptyStreamTail: StreamTail = {
  nextSeqNum: 0,
  lastTimestamp: 0,
  fencingToken: "",
  trimPoint: 0,
};

/**
 * A producer's state on one stream (docs/design/producers.md): its epoch, the next seq it may
 * send, and its last batches, oldest first, at most `producerAckWindow` of them (their acks).
 */
export interface ProducerState {
  readonly epoch: number;
  readonly nextSeq: number;
  readonly window: readonly ProducerBatch[];
}

/** What applying an entry changed, for callers that react (trims to clear, streams removed). */
export interface AppliedEffects {
  /** Streams whose trim point advanced: cached entries wholly below it can be deleted. */
  readonly trimmed: { streamId: number; trimPoint: SeqNum }[];
  /** Streams removed: all their cached entries can be deleted. */
  readonly removedStreamIds: number[];
}

const fenceCommand = "fence";
const trimCommand = "trim";
const utf8 = new TextDecoder("utf-8", { fatal: true });
const twoPow32 = 0x1_0000_0000;

/** The key of a stream within the state maps. */
export function streamMapKey(basin: string, name: string): string {
  return `${basin}\u0000${name}`;
}

/**
 * Reads a trim command body: a big-endian u64. Returns the trim point clamped to
 * `Number.MAX_SAFE_INTEGER` (callers clamp further to the record's seq num + 1).
 */
export function decodeTrimPoint(body: Uint8Array): number {
  assert(body.length === 8, "trim body must be 8 bytes (validated at append)");
  const view = new DataView(body.buffer, body.byteOffset, 8);
  const value = view.getUint32(0) * twoPow32 + view.getUint32(4);
  return Math.min(value, Number.MAX_SAFE_INTEGER);
}

/**
 * Folds a batch of records (or a command) into a tail. Shared by the streamer's pipelined state
 * and the durable state, so both agree on what fence and trim do (S2-API.md §5.2).
 */
export function advanceTail(
  tail: StreamTail,
  firstSeqNum: SeqNum,
  records: readonly {
    readonly timestamp: number;
    readonly headers: readonly { name: Uint8Array; value: Uint8Array }[];
    readonly body: Uint8Array;
  }[],
): StreamTail {
  let { fencingToken, trimPoint, lastTimestamp } = tail;
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    lastTimestamp = record.timestamp;
    const commandValue = commandValueOf(record);
    if (commandValue === undefined) continue;
    const command = utf8.decode(commandValue);
    if (command === fenceCommand) {
      fencingToken = utf8.decode(record.body);
    } else if (command === trimCommand) {
      const requested = Math.min(decodeTrimPoint(record.body), firstSeqNum + i + 1);
      trimPoint = Math.max(trimPoint, requested);
    } else {
      assert(false, `unknown command record (validated at append): ${command}`);
    }
  }
  return { nextSeqNum: firstSeqNum + records.length, lastTimestamp, fencingToken, trimPoint };
}

/**
 * A producer's state after one more accepted batch: the same epoch continues at the next seq; a
 * first batch or a new epoch starts at seq 0 (the streamer judged it so; asserted here, where
 * the live path and replay meet).
 */
export function nextProducerState(
  before: ProducerState | undefined,
  batch: ProducerBatch,
): ProducerState {
  if (before !== undefined && before.epoch === batch.epoch) {
    assert(batch.seq === before.nextSeq, `producer seq in order: ${batch.seq} ≠ ${before.nextSeq}`);
    const window = [...before.window, batch].slice(-producerAckWindow);
    return { epoch: batch.epoch, nextSeq: batch.seq + 1, window };
  }
  assert(
    (before === undefined || batch.epoch > before.epoch) && batch.seq === 0,
    `a producer's first batch of an epoch has seq 0: epoch ${batch.epoch} seq ${batch.seq}`,
  );
  return { epoch: batch.epoch, nextSeq: 1, window: [batch] };
}

export class DurableState {
  readonly basins = new Map<string, BasinRecord>();
  readonly streams = new Map<string, StreamRecord>();
  readonly streamsById = new Map<number, StreamRecord>();
  readonly tails = new Map<number, StreamTail>();
  /** Stream ids are never reused: one past the highest ever seen. */
  nextStreamId = 1;
  /** The metrics API's durable part: `metrics.add` entries and appended bytes, folded. */
  readonly metrics = new MetricsLedger();
  /** Producer states by stream id, then producer id. */
  readonly producers = new Map<number, Map<string, ProducerState>>();
  /** Live access tokens by id, and their ids by secret hash (authentication looks up by hash). */
  readonly tokens = new Map<string, AccessTokenRecord>();
  readonly tokenIdsByHash = new Map<string, string>();

  /** The tail of a stream (the empty tail for a stream that has no records yet). */
  tailOf(streamId: number): StreamTail {
    return this.tails.get(streamId) ?? emptyStreamTail;
  }

  /** Loads a basin read from the cache. */
  loadBasin(record: BasinRecord): void {
    this.basins.set(record.name, record);
  }

  /** Loads a stream read from the cache. */
  loadStream(record: StreamRecord): void {
    this.streams.set(streamMapKey(record.basin, record.name), record);
    this.streamsById.set(record.streamId, record);
    this.nextStreamId = Math.max(this.nextStreamId, record.streamId + 1);
  }

  /** Loads an access token read from the cache (also the apply path of `token.put`). */
  loadToken(record: AccessTokenRecord): void {
    const existing = this.tokens.get(record.id);
    if (existing !== undefined) this.tokenIdsByHash.delete(existing.secretHash);
    this.tokens.set(record.id, record);
    this.tokenIdsByHash.set(record.secretHash, record.id);
  }

  /** A producer's durable state on a stream, if it has one. */
  producerOf(streamId: number, producerId: string): ProducerState | undefined {
    return this.producers.get(streamId)?.get(producerId);
  }

  /** Loads a producer state read from the cache. */
  loadProducer(streamId: number, producerId: string, state: ProducerState): void {
    let byId = this.producers.get(streamId);
    if (byId === undefined) this.producers.set(streamId, (byId = new Map()));
    byId.set(producerId, state);
  }

  /** Loads a tail read from the cache. */
  loadTail(streamId: number, tail: StreamTail): void {
    this.tails.set(streamId, tail);
  }

  /**
   * Applies one durable entry; returns the cache ops mirroring its metadata (records themselves
   * are cached by `cache/segment-cache.ts`, from the segment's bytes).
   */
  applyEntry(entry: SegmentEntry, effects: AppliedEffects): KvOp[] {
    const ops: KvOp[] = [];
    if (entry.kind === "control") {
      this.applyControl(decodeControlOp(entry.payload), ops, effects);
      return ops;
    }
    if (!this.streamsById.has(entry.streamId)) {
      // Records of a stream removed later in the WAL (replay of an older segment after the
      // stream.remove was applied cannot happen: the WAL is applied in order). A removed stream's
      // id is never reused, so its records are garbage: skip them.
      return ops;
    }
    const before = this.tailOf(entry.streamId);
    assert(
      entry.firstSeqNum === before.nextSeqNum,
      `records entry not at the tail: stream ${entry.streamId} tail ${before.nextSeqNum} entry ${entry.firstSeqNum}`,
    );
    const after = advanceTail(before, entry.firstSeqNum, entry.records);
    this.tails.set(entry.streamId, after);
    this.metrics.addAppendedBytes(entry.streamId, meteredBytesOfBatch(entry.records), ops);
    ops.push({
      type: "put",
      key: encodeStreamTailKey(entry.streamId),
      value: encodeJsonValue(after),
    });
    if (after.trimPoint > before.trimPoint) {
      effects.trimmed.push({ streamId: entry.streamId, trimPoint: after.trimPoint });
    }
    return ops;
  }

  private applyControl(op: ControlOp, ops: KvOp[], effects: AppliedEffects): void {
    switch (op.op) {
      case "basin.put":
        this.basins.set(op.basin.name, op.basin);
        ops.push({
          type: "put",
          key: encodeBasinKey(op.basin.name),
          value: encodeJsonValue(op.basin),
        });
        return;
      case "basin.remove":
        this.basins.delete(op.name);
        ops.push({ type: "del", key: encodeBasinKey(op.name) });
        return;
      case "stream.put": {
        const key = streamMapKey(op.stream.basin, op.stream.name);
        const existing = this.streams.get(key);
        assert(
          existing === undefined || existing.streamId === op.stream.streamId,
          "a stream name maps to one id until it is removed",
        );
        this.loadStream(op.stream);
        ops.push({
          type: "put",
          key: encodeStreamKey(op.stream.basin, op.stream.name),
          value: encodeJsonValue(op.stream),
        });
        return;
      }
      case "stream.expire": {
        if (!this.streamsById.has(op.streamId)) return;
        const before = this.tailOf(op.streamId);
        const trimPoint = Math.min(Math.max(before.trimPoint, op.trimPoint), before.nextSeqNum);
        if (trimPoint === before.trimPoint) return;
        const after = { ...before, trimPoint };
        this.tails.set(op.streamId, after);
        ops.push({
          type: "put",
          key: encodeStreamTailKey(op.streamId),
          value: encodeJsonValue(after),
        });
        effects.trimmed.push({ streamId: op.streamId, trimPoint });
        return;
      }
      case "token.put":
        this.loadToken(op.token);
        ops.push({
          type: "put",
          key: encodeAccessTokenKey(op.token.id),
          value: encodeJsonValue(op.token),
        });
        return;
      case "token.remove": {
        const existing = this.tokens.get(op.id);
        if (existing !== undefined) this.tokenIdsByHash.delete(existing.secretHash);
        this.tokens.delete(op.id);
        ops.push({ type: "del", key: encodeAccessTokenKey(op.id) });
        return;
      }
      case "stream.remove":
        this.streams.delete(streamMapKey(op.basin, op.name));
        this.streamsById.delete(op.streamId);
        this.tails.delete(op.streamId);
        for (const producerId of this.producers.get(op.streamId)?.keys() ?? []) {
          ops.push({ type: "del", key: encodeProducerKey(op.streamId, producerId) });
        }
        this.producers.delete(op.streamId);
        effects.removedStreamIds.push(op.streamId);
        ops.push({ type: "del", key: encodeStreamKey(op.basin, op.name) });
        ops.push({ type: "del", key: encodeStreamTailKey(op.streamId) });
        this.metrics.removeStream(op.streamId, ops);
        return;
      case "metrics.add":
        this.metrics.fold(op, ops);
        return;
      case "producer.expire": {
        const state = this.producerOf(op.streamId, op.producerId);
        const newest = state?.window.at(-1);
        if (newest === undefined || newest.appendedAtMs > op.appendedAtMsAtMost) return;
        this.producers.get(op.streamId)!.delete(op.producerId);
        ops.push({ type: "del", key: encodeProducerKey(op.streamId, op.producerId) });
        return;
      }
      case "producer.put": {
        // Sealed in the same segment right after its records entry, which a removed stream skips.
        if (!this.streamsById.has(op.streamId)) return;
        const tail = this.tailOf(op.streamId);
        assert(
          op.firstSeqNum + op.recordCount === tail.nextSeqNum,
          `a producer entry follows its batch: stream ${op.streamId} batch end ${op.firstSeqNum + op.recordCount} tail ${tail.nextSeqNum}`,
        );
        const { op: _, ...batch } = op;
        const after = nextProducerState(this.producerOf(op.streamId, op.producerId), batch);
        this.loadProducer(op.streamId, op.producerId, after);
        ops.push({
          type: "put",
          key: encodeProducerKey(op.streamId, op.producerId),
          value: encodeJsonValue(after),
        });
        return;
      }
    }
  }
}
