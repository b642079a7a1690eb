// Goal: records encrypted at rest round-trip exactly, are bound to their stream, seq num and
// timestamp, fail with the right S2 error when the key or any stored byte is wrong, and are laid
// out as the module header documents. Method: fast-check round trips and tamper properties for
// both ciphers, a decoder written here from the documented layout, and the key-header rules.
import assert from "node:assert/strict";
import { createDecipheriv } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { aegis256Decrypt } from "./aegis256.js";
import type { EncryptionAlgorithm } from "./config.js";
import { type ErrorCode, S2Error } from "./errors.js";
import { aes256GcmSeqNumMax } from "./limits.js";
import {
  checkEncryptedSeqNums,
  decryptRecord,
  encryptRecord,
  envelopeOverheadBytes,
  parseEncryptionKey,
  requireEncryptionKey,
  storedMeteredBytes,
  streamCipherOf,
} from "./record-encryption.js";
import { commandHeader, encodeTrimBody, meteredBytes, type RecordContent } from "./records.js";

const ciphers: readonly EncryptionAlgorithm[] = ["aegis-256", "aes-256-gcm"];
const encoder = new TextEncoder();

function rejectsWith(code: ErrorCode, fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof S2Error, `expected S2Error, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  });
}

const keyArb = fc.uint8Array({ minLength: 32, maxLength: 32 });
const headerArb = fc.record({
  name: fc.uint8Array({ minLength: 1, maxLength: 12 }),
  value: fc.uint8Array({ maxLength: 12 }),
});
/** Data records (never commands: header names are non-empty). */
const recordArb: fc.Arbitrary<RecordContent> = fc.record({
  timestamp: fc.nat({ max: Number.MAX_SAFE_INTEGER - 1 }),
  headers: fc.array(headerArb, { maxLength: 4 }),
  body: fc.uint8Array({ maxLength: 300 }),
});
// One below the maximum, so that a test can move a record by one.
const positionArb = fc.record({
  streamId: fc.nat({ max: Number.MAX_SAFE_INTEGER - 1 }),
  seqNum: fc.nat({ max: Number.MAX_SAFE_INTEGER - 1 }),
});
const cipherArb = fc.constantFrom(...ciphers);

function sameContent(actual: RecordContent, expected: RecordContent): void {
  assert.equal(actual.timestamp, expected.timestamp);
  assert.equal(actual.headers.length, expected.headers.length);
  actual.headers.forEach((header, i) => {
    assert.deepEqual([...header.name], [...expected.headers[i]!.name]);
    assert.deepEqual([...header.value], [...expected.headers[i]!.value]);
  });
  assert.deepEqual([...actual.body], [...expected.body]);
}

describe("parseEncryptionKey (S2-API.md §3.1)", () => {
  const keyBytes = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
  const keyText = Buffer.from(keyBytes).toString("base64");

  it("decodes standard base64 of 32 bytes, trimmed", () => {
    assert.equal(keyText, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=");
    assert.deepEqual([...parseEncryptionKey(keyText)], [...keyBytes]);
    assert.deepEqual([...parseEncryptionKey(` \t${keyText} `)], [...keyBytes]);
  });

  const bad: readonly [string, string][] = [
    ["empty", ""],
    ["only whitespace", "   "],
    ["45 characters", `${keyText}A`],
    ["unpadded", keyText.slice(0, -1)],
    ["url-safe alphabet", "-_" + keyText.slice(2)],
    ["an invalid character", `!${keyText.slice(1)}`],
    ["non-zero padding bits", `${keyText.slice(0, -2)}B=`],
    ["31 bytes", Buffer.alloc(31, 1).toString("base64")],
    ["33 bytes (44 characters)", Buffer.alloc(33, 1).toString("base64")],
    ["16 bytes", Buffer.alloc(16, 1).toString("base64")],
    ["padding in the middle", `AAAA=AAA${keyText.slice(8)}`],
  ];
  for (const [name, value] of bad) {
    it(`rejects ${name} with bad_header, without echoing the value`, () => {
      assert.throws(
        () => parseEncryptionKey(value),
        (error: unknown) => {
          assert.ok(error instanceof S2Error);
          assert.equal(error.code, "bad_header");
          if (value.trim().length > 4) assert.ok(!error.message.includes(value.trim()));
          return true;
        },
      );
    });
  }

  it("accepts exactly the canonical encodings of 32-byte keys", () => {
    fc.assert(
      fc.property(keyArb, (key) => {
        assert.deepEqual([...parseEncryptionKey(Buffer.from(key).toString("base64"))], [...key]);
      }),
    );
  });
});

describe("requireEncryptionKey and streamCipherOf (S2-API.md §6.7)", () => {
  it("requires a key for an encrypted stream, with lite's message", () => {
    rejectsWith(
      "bad_header",
      () => requireEncryptionKey("aegis-256", undefined),
      /^missing encryption key for stream cipher 'aegis-256'$/,
    );
    rejectsWith(
      "bad_header",
      () => requireEncryptionKey("aes-256-gcm", undefined),
      /^missing encryption key for stream cipher 'aes-256-gcm'$/,
    );
    rejectsWith("bad_header", () => requireEncryptionKey("aegis-256", new Uint8Array(16)));
    const key = new Uint8Array(32);
    assert.equal(requireEncryptionKey("aegis-256", key), key);
  });

  it("reads the catalog's cipher", () => {
    assert.equal(streamCipherOf(null), null);
    assert.equal(streamCipherOf("aegis-256"), "aegis-256");
    assert.equal(streamCipherOf("aes-256-gcm"), "aes-256-gcm");
    assert.throws(() => streamCipherOf("rot13"), /unknown stream cipher/);
  });
});

describe("encryptRecord / decryptRecord", () => {
  it("round-trips headers, body and timestamp for both ciphers", () => {
    fc.assert(
      fc.property(cipherArb, keyArb, recordArb, positionArb, (cipher, key, record, position) => {
        const stored = encryptRecord(cipher, key, record, position);
        assert.equal(stored.timestamp, record.timestamp, "the timestamp stays in clear");
        assert.equal(stored.headers.length, 0, "headers are encrypted");
        let contentBytes = 4 + record.body.length;
        for (const h of record.headers) contentBytes += 8 + h.name.length + h.value.length;
        assert.equal(stored.body.length, envelopeOverheadBytes(cipher) + contentBytes);
        assert.equal(storedMeteredBytes(stored), meteredBytes(record));
        sameContent(decryptRecord(cipher, key, stored, position), record);
      }),
    );
  });

  it("uses a fresh nonce for every record", () => {
    for (const cipher of ciphers) {
      const key = new Uint8Array(32).fill(3);
      const record = { timestamp: 1, headers: [], body: encoder.encode("same") };
      const a = encryptRecord(cipher, key, record, { streamId: 1, seqNum: 0 });
      const b = encryptRecord(cipher, key, record, { streamId: 1, seqNum: 0 });
      assert.notDeepEqual([...a.body], [...b.body]);
    }
  });

  it("never stores a distinctive plaintext", () => {
    const marker = "PLAINTEXT-MARKER-1234567890";
    for (const cipher of ciphers) {
      const record = {
        timestamp: 1,
        headers: [{ name: encoder.encode(marker), value: encoder.encode(marker) }],
        body: encoder.encode(marker),
      };
      const stored = encryptRecord(cipher, new Uint8Array(32), record, { streamId: 1, seqNum: 0 });
      assert.ok(!Buffer.from(stored.body).includes(marker));
    }
  });

  it("leaves command records in plaintext, both ways", () => {
    const fence = { timestamp: 5, headers: [commandHeader("fence")], body: encoder.encode("t") };
    const trim = { timestamp: 6, headers: [commandHeader("trim")], body: encodeTrimBody(3n) };
    for (const cipher of ciphers) {
      for (const command of [fence, trim]) {
        const key = new Uint8Array(32);
        const position = { streamId: 1, seqNum: 9 };
        assert.equal(encryptRecord(cipher, key, command, position), command);
        assert.equal(decryptRecord(cipher, key, command, position), command);
        assert.equal(storedMeteredBytes(command), meteredBytes(command));
      }
    }
  });

  it("fails with decryption_failed under any other key", () => {
    fc.assert(
      fc.property(
        cipherArb,
        keyArb,
        keyArb,
        recordArb,
        positionArb,
        (cipher, key, other, record, position) => {
          fc.pre(Buffer.compare(key, other) !== 0);
          const stored = encryptRecord(cipher, key, record, position);
          rejectsWith("decryption_failed", () => decryptRecord(cipher, other, stored, position));
        },
      ),
      { numRuns: 50 },
    );
  });

  it("binds a record to its stream id, seq num and timestamp", () => {
    fc.assert(
      fc.property(
        cipherArb,
        keyArb,
        recordArb,
        positionArb,
        fc.constantFrom("streamId", "seqNum", "timestamp"),
        (cipher, key, record, position, changed) => {
          const stored = encryptRecord(cipher, key, record, position);
          const moved = {
            streamId: position.streamId + (changed === "streamId" ? 1 : 0),
            seqNum: position.seqNum + (changed === "seqNum" ? 1 : 0),
          };
          const retimed = {
            ...stored,
            timestamp: stored.timestamp + (changed === "timestamp" ? 1 : 0),
          };
          rejectsWith(
            "decryption_failed",
            () => decryptRecord(cipher, key, retimed, moved),
            /seq_num=/,
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  it("detects any single-bit change of the stored body", () => {
    fc.assert(
      fc.property(
        cipherArb,
        keyArb,
        recordArb,
        positionArb,
        fc.nat(),
        (cipher, key, record, position, where) => {
          const stored = encryptRecord(cipher, key, record, position);
          const body = stored.body.slice();
          const bit = where % (body.length * 8);
          body[bit >>> 3]! ^= 1 << (bit & 7);
          // The version and cipher bytes make it no envelope of this cipher: corrupt storage.
          // Every other byte (metered size, nonce, ciphertext, tag) fails authentication.
          const expected: ErrorCode = bit >>> 3 < 2 ? "storage" : "decryption_failed";
          rejectsWith(expected, () => decryptRecord(cipher, key, { ...stored, body }, position));
        },
      ),
    );
  });

  it("reports a record that is no envelope of the stream's cipher as corrupt storage", () => {
    const key = new Uint8Array(32);
    const position = { streamId: 1, seqNum: 0 };
    const record = { timestamp: 1, headers: [], body: encoder.encode("x") };
    const aegis = encryptRecord("aegis-256", key, record, position);
    rejectsWith("storage", () => decryptRecord("aes-256-gcm", key, aegis, position));
    rejectsWith("storage", () =>
      decryptRecord("aegis-256", key, { ...aegis, body: aegis.body.subarray(0, 20) }, position),
    );
    const withHeader = { ...aegis, headers: [{ name: encoder.encode("h"), value: aegis.body }] };
    rejectsWith("storage", () => decryptRecord("aegis-256", key, withHeader, position));
    rejectsWith("storage", () => decryptRecord("aegis-256", key, record, position));
  });
});

describe("the stored format matches the module header", () => {
  /** A decoder written from the documented layout, independent of the module's. */
  function openDocumented(
    cipher: EncryptionAlgorithm,
    key: Uint8Array,
    stored: RecordContent,
    position: { streamId: number; seqNum: number },
  ): { metered: number; content: Uint8Array } {
    const body = Buffer.from(stored.body);
    assert.equal(body[0], 1, "version 1");
    assert.equal(body[1], cipher === "aegis-256" ? 1 : 2, "cipher id");
    const metered = body.readUInt32BE(2);
    const nonceBytes = cipher === "aegis-256" ? 32 : 12;
    const nonce = body.subarray(6, 6 + nonceBytes);
    const ciphertext = body.subarray(6 + nonceBytes, body.length - 16);
    const tag = body.subarray(body.length - 16);
    const ad = Buffer.alloc(30);
    body.copy(ad, 0, 0, 6);
    ad.writeBigUInt64BE(BigInt(position.streamId), 6);
    ad.writeBigUInt64BE(BigInt(position.seqNum), 14);
    ad.writeBigUInt64BE(BigInt(stored.timestamp), 22);
    if (cipher === "aegis-256") {
      const content = aegis256Decrypt(key, nonce, ciphertext, tag, ad);
      assert.ok(content !== undefined);
      return { metered, content };
    }
    const gcm = createDecipheriv("aes-256-gcm", key, nonce);
    gcm.setAuthTag(tag);
    gcm.setAAD(ad);
    return { metered, content: Buffer.concat([gcm.update(ciphertext), gcm.final()]) };
  }

  for (const cipher of ciphers) {
    it(`${cipher}: version, cipher id, metered size, nonce, ciphertext, tag and AD`, () => {
      const key = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
      const record = {
        timestamp: 1_700_000_000_123,
        headers: [{ name: encoder.encode("ab"), value: encoder.encode("c") }],
        body: encoder.encode("hello"),
      };
      const position = { streamId: 7, seqNum: 2 ** 40 + 3 };
      const stored = encryptRecord(cipher, key, record, position);
      const { metered, content } = openDocumented(cipher, key, stored, position);
      assert.equal(metered, 8 + 2 + 3 + 5);
      // headerCount=1 · nameLen=2 "ab" · valueLen=1 "c" · "hello"
      assert.equal(
        Buffer.from(content).toString("hex"),
        "00000001" + "00000002" + "6162" + "00000001" + "63" + Buffer.from("hello").toString("hex"),
      );
    });
  }
});

describe("checkEncryptedSeqNums (S2-API.md §5.3)", () => {
  const data = { headers: [] };
  const trim = { headers: [commandHeader("trim")] };

  it("caps the seq nums of encrypted records of aes-256-gcm streams at 2^32 - 1", () => {
    assert.equal(aes256GcmSeqNumMax, 4_294_967_295);
    checkEncryptedSeqNums("aes-256-gcm", aes256GcmSeqNumMax, [data]);
    checkEncryptedSeqNums("aes-256-gcm", aes256GcmSeqNumMax - 1, [data, data]);
    rejectsWith(
      "invalid",
      () => checkEncryptedSeqNums("aes-256-gcm", aes256GcmSeqNumMax, [data, data]),
      /seq_num=`4294967296`/,
    );
    rejectsWith("invalid", () =>
      checkEncryptedSeqNums("aes-256-gcm", aes256GcmSeqNumMax + 1, [data]),
    );
  });

  it("does not count command records, which stay plaintext", () => {
    checkEncryptedSeqNums("aes-256-gcm", aes256GcmSeqNumMax, [data, trim, trim]);
    checkEncryptedSeqNums("aes-256-gcm", aes256GcmSeqNumMax + 5, [trim]);
  });

  it("does not limit aegis-256 streams", () => {
    checkEncryptedSeqNums("aegis-256", Number.MAX_SAFE_INTEGER - 10, [data, data]);
  });
});
