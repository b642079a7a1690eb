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
 */
import { createCipheriv, createDecipheriv, randomFillSync } from "node:crypto";
import * as wire from "@tributary/protocol";
import { aegis256Decrypt, aegis256Encrypt } from "./aegis256.js";
import { assert, assertNever } from "./assert.js";
import { type EncryptionAlgorithm, isEncryptionAlgorithm } from "./config.js";
import { invalid, S2Error } from "./errors.js";
import { aes256GcmSeqNumMax, encryptionKeyHeaderLengthMax } from "./limits.js";
import { commandValueOf, type Header, meteredBytes, type SeqNum } from "./records.js";

/** The record content that is encrypted, with its timestamp (which stays in clear). */
export interface RecordContent {
  readonly timestamp: number;
  readonly headers: readonly Header[];
  readonly body: Uint8Array;
}

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
const tagBytes = 16;
const associatedDataBytes = envelopeHeaderBytes + 24;
const twoPow32 = 0x1_0000_0000;

/** Per-cipher constants; the ids are persisted and never renumbered. */
const cipherInfo = {
  "aegis-256": { id: 1, nonceBytes: 32 },
  "aes-256-gcm": { id: 2, nonceBytes: 12 },
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

/**
 * Encrypts a record's content for storage (see the module header): a fresh random nonce, the
 * associated data of `position` and the record's timestamp. A command record is returned as is.
 */
export function encryptRecord(
  cipher: EncryptionAlgorithm,
  key: Uint8Array,
  record: RecordContent,
  position: RecordPosition,
): RecordContent {
  if (commandValueOf(record) !== undefined) return record;
  assert(key.length === encryptionKeyBytes, "keys are checked by requireEncryptionKey");
  const { id, nonceBytes } = cipherInfo[cipher];
  const metered = meteredBytes(record);
  const content = encodeContent(record);
  const body = new Uint8Array(envelopeHeaderBytes + nonceBytes + content.length + tagBytes);
  body[0] = recordEnvelopeVersion;
  body[1] = id;
  new DataView(body.buffer).setUint32(2, metered);
  const nonce = body.subarray(envelopeHeaderBytes, envelopeHeaderBytes + nonceBytes);
  randomFillSync(nonce);
  const ad = associatedData(body.subarray(0, envelopeHeaderBytes), position, record.timestamp);
  const ciphertextOffset = envelopeHeaderBytes + nonceBytes;
  switch (cipher) {
    case "aegis-256": {
      const sealed = aegis256Encrypt(key, nonce, content, ad);
      body.set(sealed.ciphertext, ciphertextOffset);
      body.set(sealed.tag, ciphertextOffset + content.length);
      break;
    }
    case "aes-256-gcm": {
      const gcm = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: tagBytes });
      gcm.setAAD(ad);
      const head = gcm.update(content);
      const rest = gcm.final();
      body.set(head, ciphertextOffset);
      body.set(rest, ciphertextOffset + head.length);
      assert(head.length + rest.length === content.length, "gcm ciphertext has the input length");
      body.set(gcm.getAuthTag(), ciphertextOffset + content.length);
      break;
    }
    default:
      assertNever(cipher);
  }
  content.fill(0);
  return { timestamp: record.timestamp, headers: [], body };
}

/**
 * Decrypts a stored record of a stream with `cipher` found at `position`. A command record is
 * returned as is. Throws `decryption_failed` when authentication fails (wrong key, or any stored
 * byte or the position changed) and `storage` when the stored record is not an envelope of this
 * cipher or its authenticated content does not decode.
 */
export function decryptRecord(
  cipher: EncryptionAlgorithm,
  key: Uint8Array,
  stored: RecordContent,
  position: RecordPosition,
): RecordContent {
  if (commandValueOf(stored) !== undefined) return stored;
  assert(key.length === encryptionKeyBytes, "keys are checked by requireEncryptionKey");
  const { id, nonceBytes } = cipherInfo[cipher];
  const { body } = stored;
  const ciphertextOffset = envelopeHeaderBytes + nonceBytes;
  if (
    stored.headers.length !== 0 ||
    body.length < ciphertextOffset + tagBytes ||
    body[0] !== recordEnvelopeVersion ||
    body[1] !== id
  ) {
    throw corruptRecord(position, "not an encrypted record of this stream's cipher");
  }
  const nonce = body.subarray(envelopeHeaderBytes, ciphertextOffset);
  const ciphertext = body.subarray(ciphertextOffset, body.length - tagBytes);
  const tag = body.subarray(body.length - tagBytes);
  const ad = associatedData(body.subarray(0, envelopeHeaderBytes), position, stored.timestamp);
  let content: Uint8Array | undefined;
  switch (cipher) {
    case "aegis-256":
      content = aegis256Decrypt(key, nonce, ciphertext, tag, ad);
      break;
    case "aes-256-gcm":
      content = aes256GcmDecrypt(key, nonce, ciphertext, tag, ad);
      break;
    default:
      assertNever(cipher);
  }
  if (content === undefined) {
    throw new S2Error(
      "decryption_failed",
      `record decryption failed: wrong encryption key or altered record. seq_num=\`${position.seqNum}\``,
    );
  }
  const decoded = decodeContent(content);
  if (decoded === undefined) throw corruptRecord(position, "decrypted content does not decode");
  const record = { timestamp: stored.timestamp, headers: decoded.headers, body: decoded.body };
  const storedMetered = new DataView(body.buffer, body.byteOffset).getUint32(2);
  if (meteredBytes(record) !== storedMetered) {
    throw corruptRecord(position, "decrypted content does not have its recorded metered size");
  }
  return record;
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

function aes256GcmDecrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  ad: Uint8Array,
): Uint8Array | undefined {
  const gcm = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: tagBytes });
  gcm.setAuthTag(tag);
  gcm.setAAD(ad);
  const head = gcm.update(ciphertext);
  try {
    const rest = gcm.final();
    const plaintext = rest.length === 0 ? head : Buffer.concat([head, rest]);
    return new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.length);
  } catch {
    // Unauthenticated output must not be used: erase it.
    head.fill(0);
    return undefined;
  }
}

function corruptRecord(position: RecordPosition, reason: string): S2Error {
  return new S2Error(
    "storage",
    `corrupt encrypted record: ${reason}. stream_id=\`${position.streamId}\` seq_num=\`${position.seqNum}\``,
  );
}

function associatedData(
  envelopeHeader: Uint8Array,
  position: RecordPosition,
  timestamp: number,
): Uint8Array {
  const ad = new Uint8Array(associatedDataBytes);
  ad.set(envelopeHeader);
  const view = new DataView(ad.buffer);
  writeU64(view, envelopeHeaderBytes, position.streamId);
  writeU64(view, envelopeHeaderBytes + 8, position.seqNum);
  writeU64(view, envelopeHeaderBytes + 16, timestamp);
  return ad;
}

function writeU64(view: DataView, offset: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, "u64 fields are non-negative safe integers");
  view.setUint32(offset, Math.floor(value / twoPow32));
  view.setUint32(offset + 4, value >>> 0);
}

/** `headerCount u32 · (nameLen u32 · name · valueLen u32 · value)* · body`. */
function encodeContent(record: RecordContent): Uint8Array {
  let bytes = 4 + record.body.length;
  for (const header of record.headers) bytes += 8 + header.name.length + header.value.length;
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  view.setUint32(0, record.headers.length);
  let offset = 4;
  for (const header of record.headers) {
    view.setUint32(offset, header.name.length);
    out.set(header.name, offset + 4);
    offset += 4 + header.name.length;
    view.setUint32(offset, header.value.length);
    out.set(header.value, offset + 4);
    offset += 4 + header.value.length;
  }
  out.set(record.body, offset);
  return out;
}

/** Inverse of `encodeContent`; views into `content`. Undefined on any length out of bounds. */
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
