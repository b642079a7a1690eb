/**
 * Encryption of records at rest with a key the client supplies on every append and read
 * (`S2-Encryption-Key`, S2-API.md §3.1, §6.7): records are encrypted in the streamer before they
 * reach the cache or object storage, and the key is never stored or logged. The stream's cipher
 * (`aegis-256` or `aes-256-gcm`) is fixed at its creation.
 *
 * What is encrypted: a record's content, its headers and body. The seq num (implied by the
 * record's position) and the timestamp stay in clear, since reads by timestamp, retention and the
 * tail need them without a key. Command records (fence, trim: exactly one header, with an empty
 * name) are stored in plaintext (§6.7), since the server itself must read them.
 *
 * A stored encrypted record has no headers, its timestamp, and as body this envelope (version 1;
 * integers big-endian):
 *
 * ```
 * offset      size  field
 * 0           1     version       = 1
 * 1           1     algorithm     1 = aegis-256, 2 = aes-256-gcm
 * 2           4     meteredBytes  the plaintext record's metered size (S2-API.md §5.1)
 * 6           N     nonce         random; N = 32 (aegis-256) or 12 (aes-256-gcm)
 * 6+N         L     ciphertext    of the content encoding below, same length
 * 6+N+L       16    tag
 * ```
 *
 * Content encoding (the plaintext): `headerCount u32 · (nameLen u32 · name · valueLen u32 ·
 * value)* · body`, the body running to the end.
 *
 * Associated data (30 bytes, never stored, rebuilt on read from where the record is found):
 * `version u8 · algorithm u8 · meteredBytes u32 · streamId u64 · seqNum u64 · timestamp u64`.
 * It binds a ciphertext to its stream (stream ids are never reused, so not even a deleted and
 * recreated stream of the same name accepts it), to its seq num (records cannot be swapped or
 * reordered), to its timestamp, and to the clear fields of its envelope (no downgrade, and the
 * metered size that storage reads without the key cannot be altered).
 *
 * Why a clear `meteredBytes`: S2 meters reads by plaintext size, and the read path cuts batches
 * (≤ 1 MiB) and enforces `bytes` limits while scanning stored records, before any decryption; with
 * the size in the envelope, storage meters an encrypted record exactly as its plaintext
 * (`storedMeteredBytes`). S2 stores it the same way. It reveals little: the ciphertext length
 * already gives the content length.
 *
 * Nonces are 32 (AEGIS-256) or 12 (AES-GCM) random bytes from the system CSPRNG, never from the
 * seeded `Random` of the simulator. Random 96-bit nonces limit an AES-GCM key to 2^32 records,
 * hence the seq-num ceiling of `aes-256-gcm` streams (`checkEncryptedSeqNums`, §5.3).
 *
 * Errors: a wrong key or a tampered ciphertext, tag or clear field fails authentication →
 * `decryption_failed`; an envelope that cannot be parsed, or authenticated content that does not
 * decode, is corrupt storage → `storage` (§7.2).
 *
 * Batches (issue 12: the event loop is never blocked by one request for more than 10 ms): the
 * append and read paths encrypt and decrypt whole batches with `encryptBatch` and `decryptBatch`.
 * A batch is laid out in one buffer of envelopes and sealed or opened in place by one job
 * (`record-crypto-job.ts`); a batch worth more than a few hundred µs of work runs in a worker of
 * `record-crypto-pool.ts` (a 1 MiB AEGIS-256 batch costs 15–26 ms), a smaller one on the loop. Both
 * run the same job, so where a batch ran changes neither its bytes nor its errors.
 */
import { randomFillSync } from "node:crypto";
import * as wire from "@tributary/protocol";
import { assert } from "./assert.js";
import { writeU32 } from "./big-endian.js";
import { type EncryptionAlgorithm, isEncryptionAlgorithm } from "./config.js";
import { invalid, S2Error } from "./errors.js";
import {
  aes256GcmSeqNumMax,
  encryptionKeyHeaderLengthMax,
  recordCryptoInlineBytesMax,
  recordCryptoInlineRecordsMax,
} from "./limits.js";
import {
  type RecordCryptoJob,
  type RecordCryptoResult,
  recordAssociatedDataBytes,
  recordCryptoSpanFields,
  recordNonceBytes,
  recordTagBytes,
  runRecordCryptoJob,
} from "./record-crypto-job.js";
import { type RecordCryptoPool, RecordCryptoWorkerError } from "./record-crypto-pool.js";
import {
  commandValueOf,
  type Header,
  meteredBytes,
  type RecordContent,
  type SeqNum,
} from "./records.js";

/** Where a record lives: the inputs of its associated data besides its own fields. */
export interface RecordPosition {
  readonly streamId: number;
  readonly seqNum: SeqNum;
}

/** Keys are 32 bytes for both ciphers (a wire limit of the protocol package). */
export const encryptionKeyBytes = wire.encryptionKeyBytes;

/** The envelope format written by this module. */
export const recordEnvelopeVersion = 1;

const envelopeHeaderBytes = 6;
const tagBytes = recordTagBytes;
const associatedDataBytes = recordAssociatedDataBytes;
assert(associatedDataBytes === envelopeHeaderBytes + 24, "AD: the envelope header and three u64");
const twoPow32 = 0x1_0000_0000;

/** Per-cipher constants; the ids are persisted and never renumbered. */
const cipherInfo = {
  "aegis-256": { id: 1, nonceBytes: recordNonceBytes["aegis-256"] },
  "aes-256-gcm": { id: 2, nonceBytes: recordNonceBytes["aes-256-gcm"] },
} as const satisfies Record<EncryptionAlgorithm, { id: number; nonceBytes: number }>;

/** Envelope bytes added to the content encoding by each cipher. */
export function envelopeOverheadBytes(cipher: EncryptionAlgorithm): number {
  return envelopeHeaderBytes + cipherInfo[cipher].nonceBytes + tagBytes;
}

/**
 * Parses an `S2-Encryption-Key` header value (S2-API.md §3.1): standard base64 (RFC 4648, `=`
 * padding, canonical) of exactly 32 bytes, 1..=44 characters after trimming. Anything else is a
 * `bad_header`. The message never repeats the value.
 */
export function parseEncryptionKey(headerValue: string): Uint8Array {
  const text = headerValue.trim();
  if (text.length < 1 || text.length > encryptionKeyHeaderLengthMax) {
    throw new S2Error(
      "bad_header",
      `invalid \`s2-encryption-key\`: must be 1 to ${encryptionKeyHeaderLengthMax} characters. length=\`${text.length}\``,
    );
  }
  const key = decodeBase64Strict(text);
  if (key === undefined) {
    throw new S2Error("bad_header", "invalid `s2-encryption-key`: not valid base64");
  }
  if (key.length !== encryptionKeyBytes) {
    const length = key.length;
    key.fill(0);
    throw new S2Error(
      "bad_header",
      `invalid \`s2-encryption-key\`: must decode to ${encryptionKeyBytes} bytes. bytes=\`${length}\``,
    );
  }
  return key;
}

/** Standard base64 with padding, rejecting any non-canonical encoding. */
function decodeBase64Strict(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64");
  // Node ignores non-zero padding bits; re-encoding tells canonical input apart.
  if (bytes.toString("base64") !== text) {
    bytes.fill(0);
    return undefined;
  }
  // A copy: small Buffers share Node's pool, and the key should not outlive its owner there.
  const key = new Uint8Array(bytes);
  bytes.fill(0);
  return key;
}

/** The cipher of a stream record (`StreamRecord.cipher`, validated when the stream was created). */
export function streamCipherOf(cipher: string | null): EncryptionAlgorithm | null {
  if (cipher === null) return null;
  assert(isEncryptionAlgorithm(cipher), `unknown stream cipher in the catalog: ${cipher}`);
  return cipher;
}

/**
 * The key of an append or read of a stream with `cipher` (S2-API.md §6.7): required, and 32 bytes
 * (`parseEncryptionKey` makes sure of that for header values).
 */
export function requireEncryptionKey(
  cipher: EncryptionAlgorithm,
  key: Uint8Array | undefined,
): Uint8Array {
  if (key === undefined) {
    throw new S2Error("bad_header", `missing encryption key for stream cipher '${cipher}'`);
  }
  if (key.length !== encryptionKeyBytes) {
    throw new S2Error(
      "bad_header",
      `invalid encryption key: must be ${encryptionKeyBytes} bytes. bytes=\`${key.length}\``,
    );
  }
  return key;
}

/**
 * Rejects (422 `invalid`, S2-API.md §5.3) a batch that would give an encrypted record of an
 * `aes-256-gcm` stream a seq num above `aes256GcmSeqNumMax`. Command records are not encrypted and
 * are not limited. Call it before sequencing: a rejected batch has no effect.
 */
export function checkEncryptedSeqNums(
  cipher: EncryptionAlgorithm,
  firstSeqNum: SeqNum,
  records: readonly { readonly headers: readonly Header[] }[],
): void {
  if (cipher !== "aes-256-gcm") return;
  for (let i = records.length - 1; i >= 0; i--) {
    if (commandValueOf(records[i]!) !== undefined) continue;
    const seqNum = firstSeqNum + i;
    if (seqNum > aes256GcmSeqNumMax) {
      throw invalid(
        `aes-256-gcm stream cannot encrypt more records. seq_num=\`${seqNum}\` max=\`${aes256GcmSeqNumMax}\``,
      );
    }
    return;
  }
}

/** Where a batch lives, for `encryptBatch`: record `i` gets seq num `firstSeqNum + i`. */
export interface BatchPosition {
  readonly streamId: number;
  readonly firstSeqNum: SeqNum;
}

/** Where the work of a batch runs: the pool, if given and if the batch is worth the hop. */
export interface BatchCryptoOptions {
  readonly pool?: RecordCryptoPool | undefined;
  /**
   * Fills each nonce; the system CSPRNG unless given. Tests only (a deterministic source lets them
   * compare batches byte for byte): a repeated nonce under one key breaks both ciphers.
   * @internal
   */
  readonly fillNonce?: ((nonce: Uint8Array) => void) | undefined;
}

/**
 * Encrypts a batch of records for storage (see the module header): each a fresh random nonce,
 * the associated data of its position and its timestamp; command records are returned as they
 * are. The result has the input's order and length. A batch larger than
 * `recordCryptoInlineBytesMax` or `recordCryptoInlineRecordsMax` is encrypted in `options.pool`
 * (off the event loop), a smaller one (or any, without a pool) here: the bytes are the same
 * either way, given the same nonces.
 */
export async function encryptBatch(
  cipher: EncryptionAlgorithm,
  key: Uint8Array,
  records: readonly RecordContent[],
  position: BatchPosition,
  options: BatchCryptoOptions = {},
): Promise<RecordContent[]> {
  // Packed again after a failed worker, with new nonces.
  const pack = () => packSeal(cipher, key, records, position, options.fillNonce);
  const { packed, result } = await runPacked(pack, options.pool);
  return unpackSeal(records, packed, result);
}

/**
 * Decrypts a batch of stored records of a stream with `cipher` (each at its own seq num); command
 * records are returned as they are. Fails as `decryptRecord` would on the records in order: the
 * first record that fails decides the error (`decryption_failed` or `storage`), and no record
 * after it is decrypted. Off the event loop in `options.pool` as `encryptBatch` decides.
 */
export async function decryptBatch<T extends RecordContent & { readonly seqNum: SeqNum }>(
  cipher: EncryptionAlgorithm,
  key: Uint8Array,
  streamId: number,
  records: readonly T[],
  options: BatchCryptoOptions = {},
): Promise<(T | (RecordContent & { readonly seqNum: SeqNum }))[]> {
  const { packed, result } = await runPacked(
    () => packOpen(cipher, key, streamId, records),
    options.pool,
  );
  return unpackOpen(streamId, records, packed, result);
}

/**
 * Encrypts one record's content for storage, on the loop (`encryptBatch` of one record). A
 * command record is returned as is.
 */
export function encryptRecord(
  cipher: EncryptionAlgorithm,
  key: Uint8Array,
  record: RecordContent,
  position: RecordPosition,
): RecordContent {
  const batchPosition = { streamId: position.streamId, firstSeqNum: position.seqNum };
  const packed = packSeal(cipher, key, [record], batchPosition, undefined);
  return unpackSeal([record], packed, runHere(packed.job))[0]!;
}

/**
 * Decrypts a stored record of a stream with `cipher` found at `position`, on the loop. A command
 * record is returned as is. Throws `decryption_failed` when authentication fails (wrong key, or
 * any stored byte or the position changed) and `storage` when the stored record is not an
 * envelope of this cipher or its authenticated content does not decode.
 */
export function decryptRecord(
  cipher: EncryptionAlgorithm,
  key: Uint8Array,
  stored: RecordContent,
  position: RecordPosition,
): RecordContent {
  const records = [{ ...stored, seqNum: position.seqNum }];
  const packed = packOpen(cipher, key, position.streamId, records);
  const [record] = unpackOpen(position.streamId, records, packed, runHere(packed.job));
  return record === records[0] ? stored : stripSeqNum(record!);
}

/**
 * Runs a batch's job in `pool` when the batch is worth a worker, else here. A worker that failed
 * took the job's buffers with it: the batch is packed again and run here.
 */
async function runPacked<P extends PackedBatch>(
  pack: () => P,
  pool: RecordCryptoPool | undefined,
): Promise<{ readonly packed: P; readonly result: RecordCryptoResult }> {
  const packed = pack();
  const running = isWorthAWorker(packed) ? pool?.run(packed.job) : undefined;
  if (running === undefined) return { packed, result: runHere(packed.job) };
  try {
    return { packed, result: await running };
  } catch (error) {
    if (!(error instanceof RecordCryptoWorkerError)) throw error;
    const again = pack();
    return { packed: again, result: runHere(again.job) };
  }
}

/** Runs a job on the loop, then erases its copy of the key (a worker erases its own). */
function runHere(job: RecordCryptoJob): RecordCryptoResult {
  const result = runRecordCryptoJob(job);
  job.key.fill(0);
  return result;
}

function stripSeqNum(record: RecordContent): RecordContent {
  return { timestamp: record.timestamp, headers: record.headers, body: record.body };
}

/** A batch's job, and which records (by index) it holds: the others are commands, kept as is. */
interface PackedBatch {
  readonly job: RecordCryptoJob;
  readonly indexes: readonly number[];
}

/** Whether a batch costs the loop more than a hop to a worker (see `recordCryptoInlineBytesMax`). */
function isWorthAWorker(packed: PackedBatch): boolean {
  return (
    packed.job.envelopes.length > recordCryptoInlineBytesMax ||
    packed.indexes.length > recordCryptoInlineRecordsMax
  );
}

/**
 * Lays the envelopes of a batch's records out in one buffer, each with its header, a new nonce
 * and the content encoding where its ciphertext goes; the job then seals them in place.
 */
function packSeal(
  cipher: EncryptionAlgorithm,
  key: Uint8Array,
  records: readonly RecordContent[],
  position: BatchPosition,
  fillNonce: ((nonce: Uint8Array) => void) | undefined,
): PackedBatch {
  assert(key.length === encryptionKeyBytes, "keys are checked by requireEncryptionKey");
  const { id, nonceBytes } = cipherInfo[cipher];
  const indexes: number[] = [];
  let bytes = 0;
  for (let i = 0; i < records.length; i++) {
    if (commandValueOf(records[i]!) !== undefined) continue;
    indexes.push(i);
    bytes += envelopeHeaderBytes + nonceBytes + contentBytes(records[i]!) + tagBytes;
  }
  const envelopes = new Uint8Array(bytes);
  // One call for the batch's nonces: a call per record cost ~3 µs each, ~3 ms per 1,000 records.
  const nonces = new Uint8Array(fillNonce === undefined ? nonceBytes * indexes.length : 0);
  randomFillSync(nonces);
  const spans = new Uint32Array(recordCryptoSpanFields * indexes.length);
  const ads = new Uint8Array(associatedDataBytes * indexes.length);
  let offset = 0;
  for (let k = 0; k < indexes.length; k++) {
    const i = indexes[k]!;
    const record = records[i]!;
    envelopes[offset] = recordEnvelopeVersion;
    envelopes[offset + 1] = id;
    writeU32(envelopes, offset + 2, meteredBytes(record));
    const nonceOffset = offset + envelopeHeaderBytes;
    const textOffset = nonceOffset + nonceBytes;
    const nonce = envelopes.subarray(nonceOffset, textOffset);
    if (fillNonce === undefined) nonce.set(nonces.subarray(nonceBytes * k, nonceBytes * (k + 1)));
    else fillNonce(nonce);
    const textBytes = encodeContentInto(record, envelopes, textOffset);
    spans.set([nonceOffset, textOffset, textBytes], recordCryptoSpanFields * k);
    const seqNum = position.firstSeqNum + i;
    const header = envelopes.subarray(offset, offset + envelopeHeaderBytes);
    writeAssociatedData(
      ads,
      associatedDataBytes * k,
      header,
      position.streamId,
      seqNum,
      record.timestamp,
    );
    offset = textOffset + textBytes + tagBytes;
  }
  assert(offset === bytes, "the envelopes fill the buffer they were sized for");
  const job: RecordCryptoJob = {
    op: "seal",
    cipher,
    // A copy of its own (transferred to a worker; Buffer.slice would be a view of the caller's).
    key: new Uint8Array(key),
    envelopes,
    spans,
    associatedData: ads,
  };
  return { job, indexes };
}

/** The stored records of a sealed batch: each envelope a view into the job's buffer. */
function unpackSeal(
  records: readonly RecordContent[],
  packed: PackedBatch,
  result: RecordCryptoResult,
): RecordContent[] {
  assert(result.failedIndex === -1, "sealing does not fail");
  const { spans } = packed.job;
  const out: RecordContent[] = [...records];
  for (let k = 0; k < packed.indexes.length; k++) {
    const i = packed.indexes[k]!;
    const textOffset = spans[recordCryptoSpanFields * k + 1]!;
    const start = textOffset - cipherInfo[packed.job.cipher].nonceBytes - envelopeHeaderBytes;
    const end = textOffset + spans[recordCryptoSpanFields * k + 2]! + tagBytes;
    out[i] = {
      timestamp: records[i]!.timestamp,
      headers: [],
      body: result.envelopes.subarray(start, end),
    };
  }
  return out;
}

/**
 * Copies the envelopes of a batch's stored records into one buffer (the stored bytes stay as
 * they are: the job opens its copy in place), up to the first record that is no envelope of this
 * cipher (`corruptIndex`, or the batch's length): its error comes after those before it.
 */
function packOpen(
  cipher: EncryptionAlgorithm,
  key: Uint8Array,
  streamId: number,
  records: readonly (RecordContent & { readonly seqNum: SeqNum })[],
): PackedBatch & { readonly corruptIndex: number } {
  assert(key.length === encryptionKeyBytes, "keys are checked by requireEncryptionKey");
  const { id, nonceBytes } = cipherInfo[cipher];
  const indexes: number[] = [];
  let corruptIndex = records.length;
  let bytes = 0;
  for (let i = 0; i < records.length; i++) {
    const stored = records[i]!;
    if (commandValueOf(stored) !== undefined) continue;
    const { body } = stored;
    if (
      stored.headers.length !== 0 ||
      body.length < envelopeHeaderBytes + nonceBytes + tagBytes ||
      body[0] !== recordEnvelopeVersion ||
      body[1] !== id
    ) {
      corruptIndex = i;
      break;
    }
    indexes.push(i);
    bytes += body.length;
  }
  const envelopes = new Uint8Array(bytes);
  const spans = new Uint32Array(recordCryptoSpanFields * indexes.length);
  const ads = new Uint8Array(associatedDataBytes * indexes.length);
  let offset = 0;
  for (let k = 0; k < indexes.length; k++) {
    const stored = records[indexes[k]!]!;
    const { body } = stored;
    envelopes.set(body, offset);
    const nonceOffset = offset + envelopeHeaderBytes;
    const textOffset = nonceOffset + nonceBytes;
    spans.set(
      [nonceOffset, textOffset, body.length - envelopeHeaderBytes - nonceBytes - tagBytes],
      recordCryptoSpanFields * k,
    );
    const header = body.subarray(0, envelopeHeaderBytes);
    writeAssociatedData(
      ads,
      associatedDataBytes * k,
      header,
      streamId,
      stored.seqNum,
      stored.timestamp,
    );
    offset += body.length;
  }
  const job: RecordCryptoJob = {
    op: "open",
    cipher,
    // A copy of its own (transferred to a worker; Buffer.slice would be a view of the caller's).
    key: new Uint8Array(key),
    envelopes,
    spans,
    associatedData: ads,
  };
  return { job, indexes, corruptIndex };
}

/** The records of an opened batch, or the first record's error (see `decryptBatch`). */
function unpackOpen<T extends RecordContent & { readonly seqNum: SeqNum }>(
  streamId: number,
  records: readonly T[],
  packed: PackedBatch & { readonly corruptIndex: number },
  result: RecordCryptoResult,
): (T | (RecordContent & { readonly seqNum: SeqNum }))[] {
  const { spans } = packed.job;
  const out: (T | (RecordContent & { readonly seqNum: SeqNum }))[] = [];
  let k = 0;
  for (let i = 0; i < records.length; i++) {
    const stored = records[i]!;
    const position = { streamId, seqNum: stored.seqNum };
    if (i === packed.corruptIndex) {
      throw corruptRecord(position, "not an encrypted record of this stream's cipher");
    }
    if (packed.indexes[k] !== i) {
      out.push(stored); // a command record, stored in plaintext
      continue;
    }
    if (k === result.failedIndex) {
      throw new S2Error(
        "decryption_failed",
        `record decryption failed: wrong encryption key or altered record. seq_num=\`${position.seqNum}\``,
      );
    }
    const textOffset = spans[recordCryptoSpanFields * k + 1]!;
    const content = result.envelopes.subarray(
      textOffset,
      textOffset + spans[recordCryptoSpanFields * k + 2]!,
    );
    k += 1;
    const decoded = decodeContent(content);
    if (decoded === undefined) throw corruptRecord(position, "decrypted content does not decode");
    const record = {
      seqNum: stored.seqNum,
      timestamp: stored.timestamp,
      headers: decoded.headers,
      body: decoded.body,
    };
    const storedMetered = new DataView(stored.body.buffer, stored.body.byteOffset).getUint32(2);
    if (meteredBytes(record) !== storedMetered) {
      throw corruptRecord(position, "decrypted content does not have its recorded metered size");
    }
    out.push(record);
  }
  return out;
}

/**
 * The metered size of a stored record of an encrypted stream, without the key: the plaintext's
 * (read from the envelope), so that storage cuts batches and counts bytes as S2 meters them. A
 * command record, or a record that is no envelope (which `decryptRecord` then reports as
 * corrupt), is metered as stored.
 */
export function storedMeteredBytes(stored: {
  readonly headers: readonly Header[];
  readonly body: Uint8Array;
}): number {
  const { body } = stored;
  if (
    stored.headers.length !== 0 ||
    body.length < envelopeHeaderBytes ||
    body[0] !== recordEnvelopeVersion
  ) {
    return meteredBytes(stored);
  }
  return new DataView(body.buffer, body.byteOffset).getUint32(2);
}

function corruptRecord(position: RecordPosition, reason: string): S2Error {
  return new S2Error(
    "storage",
    `corrupt encrypted record: ${reason}. stream_id=\`${position.streamId}\` seq_num=\`${position.seqNum}\``,
  );
}

/** Writes a record's associated data (see the module header) at `offset` of `out`. */
function writeAssociatedData(
  out: Uint8Array,
  offset: number,
  envelopeHeader: Uint8Array,
  streamId: number,
  seqNum: SeqNum,
  timestamp: number,
): void {
  out.set(envelopeHeader, offset);
  writeU64(out, offset + envelopeHeaderBytes, streamId);
  writeU64(out, offset + envelopeHeaderBytes + 8, seqNum);
  writeU64(out, offset + envelopeHeaderBytes + 16, timestamp);
}

/** Big-endian, byte by byte: a DataView per record is an allocation per record. */
function writeU64(out: Uint8Array, offset: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, "u64 fields are non-negative safe integers");
  writeU32(out, offset, Math.floor(value / twoPow32));
  writeU32(out, offset + 4, value >>> 0);
}

/** The size of a record's content encoding. */
function contentBytes(record: RecordContent): number {
  let bytes = 4 + record.body.length;
  for (const header of record.headers) bytes += 8 + header.name.length + header.value.length;
  return bytes;
}

/**
 * Writes `headerCount u32 · (nameLen u32 · name · valueLen u32 · value)* · body` at `offset` of
 * `out`; returns its size (`contentBytes`).
 */
function encodeContentInto(record: RecordContent, out: Uint8Array, offset: number): number {
  const start = offset;
  writeU32(out, offset, record.headers.length);
  offset += 4;
  for (const header of record.headers) {
    writeU32(out, offset, header.name.length);
    out.set(header.name, offset + 4);
    offset += 4 + header.name.length;
    writeU32(out, offset, header.value.length);
    out.set(header.value, offset + 4);
    offset += 4 + header.value.length;
  }
  out.set(record.body, offset);
  return offset + record.body.length - start;
}

/** Inverse of `encodeContentInto`; views into `content`. Undefined on any length out of bounds. */
function decodeContent(content: Uint8Array): { headers: Header[]; body: Uint8Array } | undefined {
  const view = new DataView(content.buffer, content.byteOffset, content.byteLength);
  if (content.length < 4) return undefined;
  const headerCount = view.getUint32(0);
  // Each header takes at least 8 bytes: a count beyond that is corrupt, checked before looping.
  if (headerCount > (content.length - 4) / 8) return undefined;
  const headers: Header[] = [];
  let offset = 4;
  for (let i = 0; i < headerCount; i++) {
    if (offset + 4 > content.length) return undefined;
    const nameLength = view.getUint32(offset);
    if (offset + 4 + nameLength + 4 > content.length) return undefined;
    const name = content.subarray(offset + 4, offset + 4 + nameLength);
    offset += 4 + nameLength;
    const valueLength = view.getUint32(offset);
    if (offset + 4 + valueLength > content.length) return undefined;
    const value = content.subarray(offset + 4, offset + 4 + valueLength);
    offset += 4 + valueLength;
    headers.push({ name, value });
  }
  return { headers, body: content.subarray(offset) };
}
