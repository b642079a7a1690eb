/**
 * The AEAD work of encrypting or decrypting a batch of records, as one job over packed buffers:
 * the part that costs CPU (AEGIS-256 is pure TypeScript, 11–13 ms per MiB on this project's VM),
 * apart from the envelope's layout, which `record-encryption.ts` owns. A job is plain data (a key,
 * one buffer of envelopes, a table of spans, one buffer of associated data), so the same function
 * runs it on the event loop or in a worker thread (`record-crypto-pool.ts`), and its envelopes
 * move to the worker and back by transfer, not by copy.
 *
 * Invariants: a job writes only inside the texts and tags of its envelopes. Sealing writes each
 * ciphertext over its plaintext and the tag right after it. Opening writes each plaintext over its
 * ciphertext, in order, and stops at the first envelope whose tag fails: that one's output is
 * erased (the ciphers never hand out unauthenticated plaintext), later ones are left as they are.
 * Given the same buffers, a job's result is the same byte for byte wherever it runs.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { aegis256Decrypt, aegis256Encrypt } from "./aegis256.js";
import { assert, assertNever } from "./assert.js";
import type { EncryptionAlgorithm } from "./config.js";

/** Tag size of both ciphers in the record format. */
export const recordTagBytes = 16;
/** Associated data per record: `version · algorithm · meteredBytes · streamId · seqNum · timestamp`. */
export const recordAssociatedDataBytes = 30;
/** Nonce size by cipher. */
export const recordNonceBytes = {
  "aegis-256": 32,
  "aes-256-gcm": 12,
} as const satisfies Record<EncryptionAlgorithm, number>;

/** Values of `spans` per envelope: nonce offset, text offset, text length (the tag follows). */
export const recordCryptoSpanFields = 3;

/**
 * One batch's AEAD work. Each envelope `i` of `envelopes` holds its nonce at `spans[3i]`, its text
 * (plaintext to seal, ciphertext to open) at `spans[3i + 1]` for `spans[3i + 2]` bytes, and its tag
 * right after the text; its associated data is bytes `30i` to `30i + 30` of `associatedData`.
 */
export interface RecordCryptoJob {
  readonly op: "seal" | "open";
  readonly cipher: EncryptionAlgorithm;
  readonly key: Uint8Array;
  readonly envelopes: Uint8Array;
  readonly spans: Uint32Array;
  readonly associatedData: Uint8Array;
}

/** A job done: its envelopes, and for `open` the first envelope whose tag failed (or -1). */
export interface RecordCryptoResult {
  readonly envelopes: Uint8Array;
  readonly failedIndex: number;
}

/** The number of envelopes in a job. */
export function recordCryptoJobCount(job: RecordCryptoJob): number {
  return job.spans.length / recordCryptoSpanFields;
}

/**
 * The buffers to transfer with a job (its key and its envelopes), rather than copy: a transfer
 * moves a whole ArrayBuffer, so each must be the view's own. Its spans and associated data (42
 * bytes per record) are copied instead, so that the sender keeps them to read the result with.
 */
export function recordCryptoJobTransfers(job: {
  readonly key?: Uint8Array;
  readonly envelopes: Uint8Array;
}): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  for (const view of [job.key, job.envelopes]) {
    if (view === undefined) continue;
    assert(view.buffer instanceof ArrayBuffer, "job buffers are plain ArrayBuffers");
    assert(
      view.byteOffset === 0 && view.byteLength === view.buffer.byteLength,
      "a transferred buffer holds only the job's bytes",
    );
    buffers.push(view.buffer);
  }
  return buffers;
}

/** Runs a job where it is called, in place (see the module header). */
export function runRecordCryptoJob(job: RecordCryptoJob): RecordCryptoResult {
  const { op, cipher, key, envelopes, spans, associatedData } = job;
  const count = recordCryptoJobCount(job);
  assert(Number.isInteger(count), "spans come in threes");
  assert(associatedData.length === count * recordAssociatedDataBytes, "one AD per envelope");
  const nonceBytes = recordNonceBytes[cipher];
  for (let i = 0; i < count; i++) {
    const nonceOffset = spans[recordCryptoSpanFields * i]!;
    const textOffset = spans[recordCryptoSpanFields * i + 1]!;
    const textBytes = spans[recordCryptoSpanFields * i + 2]!;
    const tagOffset = textOffset + textBytes;
    assert(textOffset - nonceOffset === nonceBytes, "the text follows a nonce of the cipher");
    assert(tagOffset + recordTagBytes <= envelopes.length, "an envelope lies inside the job");
    const nonce = envelopes.subarray(nonceOffset, textOffset);
    const text = envelopes.subarray(textOffset, tagOffset);
    const tag = envelopes.subarray(tagOffset, tagOffset + recordTagBytes);
    const ad = associatedData.subarray(
      recordAssociatedDataBytes * i,
      recordAssociatedDataBytes * (i + 1),
    );
    switch (op) {
      case "seal":
        seal(cipher, key, nonce, text, tag, ad);
        break;
      case "open":
        if (!open(cipher, key, nonce, text, tag, ad)) return { envelopes, failedIndex: i };
        break;
      default:
        assertNever(op);
    }
  }
  return { envelopes, failedIndex: -1 };
}

/** Encrypts `text` in place and writes its tag into `tag`. */
function seal(
  cipher: EncryptionAlgorithm,
  key: Uint8Array,
  nonce: Uint8Array,
  text: Uint8Array,
  tag: Uint8Array,
  ad: Uint8Array,
): void {
  switch (cipher) {
    case "aegis-256": {
      const sealed = aegis256Encrypt(key, nonce, text, ad);
      text.set(sealed.ciphertext);
      tag.set(sealed.tag);
      break;
    }
    case "aes-256-gcm": {
      const gcm = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: recordTagBytes });
      gcm.setAAD(ad);
      const head = gcm.update(text);
      const rest = gcm.final();
      assert(head.length + rest.length === text.length, "gcm ciphertext has the input length");
      text.set(head);
      text.set(rest, head.length);
      tag.set(gcm.getAuthTag());
      break;
    }
    default:
      assertNever(cipher);
  }
}

/** Decrypts `text` in place; false (and `text` erased) when authentication fails. */
function open(
  cipher: EncryptionAlgorithm,
  key: Uint8Array,
  nonce: Uint8Array,
  text: Uint8Array,
  tag: Uint8Array,
  ad: Uint8Array,
): boolean {
  switch (cipher) {
    case "aegis-256": {
      const plaintext = aegis256Decrypt(key, nonce, text, tag, ad);
      if (plaintext === undefined) return false;
      text.set(plaintext);
      plaintext.fill(0);
      return true;
    }
    case "aes-256-gcm": {
      const gcm = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: recordTagBytes });
      gcm.setAuthTag(tag);
      gcm.setAAD(ad);
      const head = gcm.update(text);
      let rest: Buffer;
      try {
        rest = gcm.final();
      } catch {
        // Unauthenticated output must not be used: erase it (it never reached `text`).
        head.fill(0);
        return false;
      }
      text.set(head);
      text.set(rest, head.length);
      head.fill(0);
      return true;
    }
    default:
      return assertNever(cipher);
  }
}
