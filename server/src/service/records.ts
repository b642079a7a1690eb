/**
 * Record operations: append, read, check tail, follow (S2-API.md §5.3–§5.5), with auto-create
 * on append and on read (§6.7). Start resolution and session logic (clamp, wait, heartbeats) are
 * the API layer's; this layer reads durable records by seq num and follows durable batches.
 */
import { basinNotFound, invalid, streamNotFound } from "../core/errors.js";
import { validateBasinName, validateStreamName } from "../core/names.js";
import {
  decryptBatch,
  requireEncryptionKey,
  storedMeteredBytes,
  streamCipherOf,
} from "../core/record-encryption.js";
import type {
  AppendAck,
  AppendInput,
  SeqNum,
  SequencedRecord,
  StreamPosition,
} from "../core/records.js";
import type { StreamRecord } from "../storage/wal/entries.js";
import { validateAppendBatch } from "../streamer/append-validation.js";
import {
  type AppendProducer,
  type AppendSessionHandle,
  appendSessionPoisoned,
  type Follower,
  isResendAck,
} from "../streamer/streamer.js";
import { basinConfigOf, type ServiceContext } from "./context.js";
import {
  openReadSession,
  type ReadEvent,
  type ReadRequest,
  type RecordDecryptor,
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
   * (sessions rely on this). `encryptionKey` (the parsed `S2-Encryption-Key`) is required by a
   * stream with a cipher and ignored otherwise (S2-API.md §6.7). With `producer`, a resend of a
   * batch the stream already holds is answered with its first ack (docs/design/producers.md).
   * Front ends append through an `AppendSession` (./append-session.ts), which calls this.
   */
  append(
    basin: string,
    stream: string,
    input: AppendInput,
    options: {
      /** This append's view of its session's poisoning. */
      readonly session?: AppendSessionHandle | undefined;
      /**
       * The session the append belongs to, the same for all its appends: a session counts one
       * append op per stream per minute (docs/design/metrics.md). Defaults to `session`.
       */
      readonly meteredSession?: object | undefined;
      readonly encryptionKey?: Uint8Array | undefined;
      readonly producer?: AppendProducer | undefined;
    } = {},
  ): Promise<AppendAck> {
    const { session } = options;
    const meteredSession = options.meteredSession ?? session;
    const keyed = { encryptionKey: options.encryptionKey, producer: options.producer };
    try {
      if (session?.isPoisoned) throw appendSessionPoisoned();
      const bytes = validateAppendBatch(input);
      const record = this.resolve(basin, stream, "append");
      const appendTo = (target: StreamRecord): Promise<AppendAck> =>
        this.context
          .streamerOf(target)
          .append(input, session, keyed)
          .then((ack) => {
            // A producer's resend wrote nothing: not an append to meter again.
            if (!isResendAck(ack)) {
              this.context.metrics.recordAppend({ stream: target, bytes, session: meteredSession });
            }
            return ack;
          });
      if (!(record instanceof Promise)) return appendTo(record);
      return record.then(appendTo);
    } catch (error) {
      if (session !== undefined) session.isPoisoned = true;
      return Promise.reject(error);
    }
  }

  /**
   * Resolves the stream an append session will write, auto-creating it when the basin allows
   * that, and fails as an append would (404, 409, ...). Sessions call it before answering 200,
   * so these errors are ordinary HTTP responses (S2-API.md §5.8). Given the session's key (or its
   * absence), it also fails with 400 `bad_header` when the stream has a cipher and no key.
   */
  async resolveForAppend(
    basin: string,
    stream: string,
    options: { readonly encryptionKey?: Uint8Array | undefined } = {},
  ): Promise<void> {
    const record = await this.resolve(basin, stream, "append");
    const cipher = streamCipherOf(record.cipher);
    if (cipher !== null) requireEncryptionKey(cipher, options.encryptionKey);
  }

  /** The durable tail (`{0, 0}` for a never-written stream). */
  async checkTail(basin: string, stream: string): Promise<StreamPosition> {
    this.context.metrics.recordOp("check-tail", basin);
    const record = await this.resolve(basin, stream, "read");
    return this.context.streamerOf(record).tail;
  }

  /**
   * Durable records from `startSeqNum`, bounded by count and metered (plaintext) bytes. Records of
   * an encrypted stream are decrypted with `encryptionKey`, which it then requires.
   */
  async read(
    basin: string,
    stream: string,
    options: {
      readonly startSeqNum: SeqNum;
      readonly countMax: number;
      readonly bytesMax: number;
      readonly encryptionKey?: Uint8Array | undefined;
    },
  ): Promise<SequencedRecord[]> {
    const record = await this.resolve(basin, stream, "read");
    const decryptor = this.decryptorOf(record, options.encryptionKey);
    const { startSeqNum, countMax, bytesMax } = options;
    const records = await this.context.streamerOf(record).read({ startSeqNum, countMax, bytesMax });
    return decryptor === undefined ? records : decryptor.decryptBatch(records);
  }

  /**
   * Opens a read session (S2-API.md §5.4): bounds are validated before the stream is looked up
   * or auto-created; a 400 `bad_header` (encrypted stream, no `encryptionKey`) and a 416 are thrown
   * before anything is emitted. The session decrypts records with the key before it meters them;
   * a wrong key ends it with `decryption_failed`.
   */
  async openReadSession(
    basin: string,
    stream: string,
    request: ReadRequest,
    options: {
      readonly heartbeatDelayMs?: (() => number) | undefined;
      readonly encryptionKey?: Uint8Array | undefined;
    } = {},
  ): Promise<AsyncGenerator<ReadEvent, void, undefined>> {
    validateReadRequest(request);
    const record = await this.resolve(basin, stream, "read");
    const decrypt = this.decryptorOf(record, options.encryptionKey);
    const session = await openReadSession(this.context.streamerOf(record), request, {
      clock: this.context.clock,
      random: this.context.random,
      heartbeatDelayMs: options.heartbeatDelayMs,
      decrypt,
    });
    return this.context.metrics.meterReadSession(basin, session);
  }

  /**
   * A live subscription to the stream's durable batches from its current tail; records of an
   * encrypted stream come as stored (ciphertext).
   */
  async follow(
    basin: string,
    stream: string,
  ): Promise<{ tail: StreamPosition; follower: Follower }> {
    const record = await this.resolve(basin, stream, "read");
    const streamer = this.context.streamerOf(record);
    return { tail: streamer.tail, follower: streamer.follow() };
  }

  /**
   * How reads of `record`'s stream decrypt what they read: undefined for a plaintext stream (a key
   * is ignored); else batches with the stream's cipher and `key`, which is then required, in the
   * record crypto pool when a batch is worth it (so a 1 MiB batch does not stall the loop).
   */
  private decryptorOf(
    record: StreamRecord,
    key: Uint8Array | undefined,
  ): RecordDecryptor | undefined {
    const cipher = streamCipherOf(record.cipher);
    if (cipher === null) return undefined;
    const checkedKey = requireEncryptionKey(cipher, key);
    const { streamId } = record;
    const pool = this.context.recordCrypto;
    return {
      meteredBytesOf: storedMeteredBytes,
      decryptBatch: (stored) => decryptBatch(cipher, checkedKey, streamId, stored, { pool }),
    };
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
