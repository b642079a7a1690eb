// Goal: the S2S frame codec round-trips every frame whatever the chunking, and rejects every
// malformed input as 400 `bad_frame` before buffering it (S2-API.md §5.8). Method: fast-check
// properties over random payloads, flags and cut points, plus one table case per malformation,
// including compression bombs and garbage in both codecs; a frame header alone does not make the
// decoder hold the payload it declares (issue 14).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { AssertionError } from "../../core/assert.js";
import { AppendConditionFailed, S2Error } from "../../core/errors.js";
import { s2sCompressionBytesMin, s2sFrameBytesMax } from "../../core/limits.js";
import { zstdCompress } from "./compression.js";
import {
  compressionFromAcceptEncoding,
  decodeS2sPayload,
  encodeS2sFrame,
  encodeS2sMessage,
  encodeS2sMessageInPlace,
  encodeS2sTerminalFrame,
  parseS2sTerminalPayload,
  type S2sCompression,
  type S2sFrame,
  S2sFrameDecoder,
  s2sFrameHeaderBytes,
  s2sPayloadBytesMax,
} from "./frame.js";

/** A frame header: 3-byte length, flag. */
function header(length: number, flag: number): Uint8Array {
  return new Uint8Array([(length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff, flag]);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Splits `bytes` at the given offsets (any order, duplicates allowed). */
function chunked(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  return chunks;
}

/** Decodes a whole stream; throws the first malformation. */
function decodeAll(chunks: readonly Uint8Array[]): S2sFrame[] {
  const decoder = new S2sFrameDecoder();
  const frames: S2sFrame[] = [];
  for (const chunk of chunks) {
    const result = decoder.push(chunk);
    frames.push(...result.frames);
    if (result.error !== undefined) throw result.error;
  }
  const error = decoder.end();
  if (error !== undefined) throw error;
  return frames;
}

function assertBadFrameError(error: unknown, pattern?: RegExp): void {
  assert.ok(error instanceof S2Error, `expected S2Error, got ${String(error)}`);
  assert.equal(error.code, "bad_frame");
  if (pattern !== undefined) assert.match(error.message, pattern);
}

function assertBadFrame(action: () => unknown, pattern?: RegExp): void {
  assert.throws(action, (error: unknown) => {
    assertBadFrameError(error, pattern);
    return true;
  });
}

/** Pushes `bytes` into a fresh decoder and expects a malformation and no frame. */
function assertMalformed(bytes: Uint8Array, pattern: RegExp): void {
  const result = new S2sFrameDecoder().push(bytes);
  assert.deepEqual(result.frames, []);
  assertBadFrameError(result.error, pattern);
}

async function assertBadFrameAsync(action: () => Promise<unknown>, pattern?: RegExp) {
  await assert.rejects(action, (error: unknown) => {
    assert.ok(error instanceof S2Error, `expected S2Error, got ${String(error)}`);
    assert.equal(error.code, "bad_frame");
    if (pattern !== undefined) assert.match(error.message, pattern);
    return true;
  });
}

/** A zstd frame of raw blocks with no declared content size (as streaming compressors write). */
function zstdFrameWithoutContentSize(content: Uint8Array): Uint8Array {
  const blockBytesMax = 128 * 1024;
  // Magic, descriptor (no content size, not single-segment), window descriptor (2^21 bytes).
  const parts: Uint8Array[] = [new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58])];
  let offset = 0;
  do {
    const size = Math.min(blockBytesMax, content.length - offset);
    const isLast = offset + size >= content.length ? 1 : 0;
    const blockHeader = (size << 3) | isLast; // block type 0: raw
    parts.push(
      new Uint8Array([blockHeader & 0xff, (blockHeader >>> 8) & 0xff, blockHeader >>> 16]),
    );
    parts.push(content.subarray(offset, offset + size));
    offset += size;
  } while (offset < content.length);
  return concat(parts);
}

const frameArbitrary = fc.record({
  payload: fc.uint8Array({ maxLength: 300 }),
  isTerminal: fc.boolean(),
  compression: fc.constantFrom<S2sCompression>("none", "zstd", "gzip"),
});

describe("S2S frame codec", () => {
  it("round-trips any sequence of frames under any chunking", () => {
    fc.assert(
      fc.property(
        fc.array(frameArbitrary, { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (specs, cuts) => {
          const frames = specs.map((spec) => ({
            ...spec,
            compression: spec.isTerminal ? ("none" as const) : spec.compression,
          }));
          const bytes = concat(frames.map((frame) => encodeS2sFrame(frame.payload, frame)));
          const decoded = decodeAll(chunked(bytes, cuts));
          assert.deepEqual(
            decoded.map((frame) => ({
              payload: frame.payload,
              isTerminal: frame.isTerminal,
              compression: frame.compression,
            })),
            frames,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("delivers byte-by-byte input", () => {
    const bytes = concat([
      encodeS2sFrame(new Uint8Array([1, 2, 3])),
      encodeS2sFrame(new Uint8Array(0)),
      encodeS2sFrame(new Uint8Array([9]), { compression: "gzip" }),
    ]);
    const chunks = [...bytes].map((byte) => new Uint8Array([byte]));
    const frames = decodeAll(chunks);
    assert.deepEqual(
      frames.map((frame) => [...frame.payload]),
      [[1, 2, 3], [], [9]],
    );
    assert.deepEqual(
      frames.map((frame) => frame.compression),
      ["none", "none", "gzip"],
    );
  });

  it("writes the layout of S2-API.md §5.8", () => {
    assert.deepEqual([...encodeS2sFrame(new Uint8Array([0xaa, 0xbb]))], [0, 0, 3, 0, 0xaa, 0xbb]);
    assert.deepEqual(
      [...encodeS2sFrame(new Uint8Array(0), { compression: "zstd" })],
      [0, 0, 1, 0x20],
    );
    assert.deepEqual(
      [...encodeS2sFrame(new Uint8Array(0), { compression: "gzip" })],
      [0, 0, 1, 0x40],
    );
    assert.deepEqual(
      [...encodeS2sFrame(new Uint8Array([7]), { isTerminal: true })],
      [0, 0, 2, 0x80, 7],
    );
  });

  it("accepts a frame of exactly the maximum length", () => {
    const payload = new Uint8Array(s2sPayloadBytesMax).fill(7);
    const [frame] = decodeAll([encodeS2sFrame(payload)]);
    assert.equal(frame?.payload.length, s2sFrameBytesMax - 1);
  });

  it("refuses to encode a frame over the maximum (a bug, not input)", () => {
    assert.throws(() => encodeS2sFrame(new Uint8Array(s2sFrameBytesMax)), AssertionError);
    assert.throws(
      () => encodeS2sFrame(new Uint8Array(1), { isTerminal: true, compression: "gzip" }),
      AssertionError,
    );
  });

  it("accepts the reconnect-advised bit", () => {
    const [frame] = decodeAll([concat([header(2, 0x10), new Uint8Array([5])])]);
    assert.equal(frame?.isReconnectAdvised, true);
    assert.equal(frame?.isTerminal, false);
  });
});

/** A full garbage collection, callable without starting node with `--expose-gc`. */
function gcFunction(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

describe("S2S frame decoder memory", () => {
  it("holds what a partial frame sent, not what its header declares", () => {
    // 64 stalled frames, each a header declaring the largest payload and 10 bytes of it.
    const payload = new Uint8Array(s2sFrameBytesMax - 1).fill(7);
    // A copy of the frame's first bytes: a view would count the whole 2 MiB frame as held.
    const start = encodeS2sFrame(payload).slice(0, 4 + 10);
    const decoders = Array.from({ length: 64 }, () => new S2sFrameDecoder());
    const beforeBytes = process.memoryUsage().arrayBuffers;
    for (const decoder of decoders) assert.deepEqual(decoder.push(start).frames, []);
    // 64 × 2 MiB would be 128 MiB; a 64 KiB buffer per frame would be 4 MiB.
    const heldBytes = process.memoryUsage().arrayBuffers - beforeBytes;
    assert.ok(heldBytes < 1 << 20, `held by partial frames. held_bytes=${heldBytes}`);
  });

  it("holds about what a frame sent a byte at a time sent, not an object per byte", () => {
    // A client may send a frame in 1-byte chunks (HTTP/1.1 chunked encoding does this). A view
    // per piece would cost ~100-200 bytes of heap each: ~20 MiB here, ~400 MiB for 2 MiB.
    const payload = new Uint8Array(200_000).map((_, i) => i % 253);
    const bytes = encodeS2sFrame(payload);
    const pieces = Array.from({ length: bytes.length - 1 }, (_, i) => bytes.subarray(i, i + 1));
    const collect = gcFunction();
    const decoder = new S2sFrameDecoder();
    collect();
    collect();
    const beforeHeap = process.memoryUsage().heapUsed;
    for (const piece of pieces) decoder.push(piece);
    collect();
    collect();
    const heldHeap = process.memoryUsage().heapUsed - beforeHeap;
    assert.ok(heldHeap < 4 << 20, `heap held by a partial frame. held_bytes=${heldHeap}`);
    // The pieces stay alive until here: freed before the second measure, they would hide ~20 MiB.
    assert.equal(pieces.length, bytes.length - 1);
    const [frame] = decoder.push(bytes.subarray(bytes.length - 1)).frames;
    assert.deepEqual(frame?.payload, payload);
  });

  it("grows a payload to its declared length as its bytes arrive in uneven chunks", () => {
    const payload = new Uint8Array(s2sFrameBytesMax - 1).map((_, i) => i % 251);
    const bytes = encodeS2sFrame(payload);
    const decoder = new S2sFrameDecoder();
    const frames = [];
    for (
      let at = 0, size = 1;
      at < bytes.length;
      at += size, size = 1 + ((size * 7 + 3) % 300_000)
    ) {
      frames.push(...decoder.push(bytes.subarray(at, at + size)).frames);
    }
    assert.equal(frames.length, 1);
    assert.deepEqual(frames[0]!.payload, payload);
    assert.equal(decoder.end(), undefined, "ended on a frame boundary");
  });
});

describe("S2S frame decoder rejects malformed input", () => {
  it("a declared length over the maximum, from the length bytes alone", () => {
    const decoder = new S2sFrameDecoder();
    assert.equal(decoder.push(new Uint8Array([0x20])).error, undefined);
    assert.equal(decoder.push(new Uint8Array([0x00])).error, undefined);
    assertBadFrameError(decoder.push(new Uint8Array([0x01])).error, /frame too large/);
    assertMalformed(header(0xffffff, 0), /frame too large/);
  });

  it("an empty frame (length 0)", () => {
    assertMalformed(new Uint8Array([0, 0, 0]), /empty frame/);
  });

  it("the invalid compression bits 11", () => {
    assertMalformed(header(1, 0x60), /compression bits/);
  });

  it("each reserved bit", () => {
    for (const bit of [0x01, 0x02, 0x04, 0x08])
      assertMalformed(header(1, bit), /reserved flag bits/);
  });

  it("a compressed terminal frame", () => {
    for (const flag of [0xa0, 0xc0]) assertMalformed(header(3, flag), /never compressed/);
  });

  it("a stream that ends inside a frame", () => {
    const frame = encodeS2sFrame(new Uint8Array([1, 2, 3, 4]));
    for (let cut = 1; cut < frame.length; cut++) {
      const decoder = new S2sFrameDecoder();
      assert.deepEqual(decoder.push(frame.subarray(0, cut)), { frames: [] });
      assert.equal(decoder.hasPartialFrame, true);
      assertBadFrameError(decoder.end(), /ended inside a frame/);
    }
    assert.equal(new S2sFrameDecoder().end(), undefined, "an empty stream is fine");
  });

  it("returns the valid frames before a malformation in the same chunk", () => {
    const good = encodeS2sFrame(new Uint8Array([1]));
    const result = new S2sFrameDecoder().push(
      concat([good, good, new Uint8Array([0, 0, 0]), good]),
    );
    assert.equal(result.frames.length, 2);
    assertBadFrameError(result.error, /empty frame/);
  });

  it("any input after a failure", () => {
    const decoder = new S2sFrameDecoder();
    assertBadFrameError(decoder.push(new Uint8Array([0, 0, 0])).error);
    const again = decoder.push(encodeS2sFrame(new Uint8Array([1])));
    assert.deepEqual(again.frames, []);
    assertBadFrameError(again.error);
    assertBadFrameError(decoder.end());
  });

  it("random bytes: frames or bad_frame, never anything else", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        (bytes, cuts) => {
          try {
            decodeAll(chunked(bytes, cuts));
          } catch (error) {
            assertBadFrameError(error);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("S2S payload compression", () => {
  it("compresses only negotiated payloads of at least 1 KiB, and round-trips them", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<S2sCompression>("none", "zstd", "gzip"),
        fc.integer({ min: 0, max: 3 * s2sCompressionBytesMin }),
        fc.integer({ min: 0, max: 255 }),
        async (compression, length, seed) => {
          const message = new Uint8Array(length).map((_, i) => (i * 31 + seed) % 7);
          const [frame, ...rest] = decodeAll([await encodeS2sMessage(message, compression)]);
          assert.equal(rest.length, 0);
          const expected = length >= s2sCompressionBytesMin ? compression : "none";
          assert.equal(frame?.compression, expected);
          assert.deepEqual(await decodeS2sPayload(frame!), message);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("frames a message in place after its headroom with the bytes encodeS2sMessage gives", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<S2sCompression>("none", "zstd", "gzip"),
        fc.integer({ min: 0, max: 3 * s2sCompressionBytesMin }),
        fc.integer({ min: 0, max: 255 }),
        async (compression, length, seed) => {
          const message = new Uint8Array(length).map((_, i) => (i * 31 + seed) % 7);
          const buffer = new Uint8Array(s2sFrameHeaderBytes + length);
          buffer.set(message, s2sFrameHeaderBytes);
          const framed = await encodeS2sMessageInPlace(buffer, compression);
          assert.deepEqual(framed, await encodeS2sMessage(message, compression));
          // Uncompressed, the frame is the caller's buffer: no second copy of the message.
          if (length < s2sCompressionBytesMin || compression === "none") {
            assert.equal(framed, buffer);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("picks zstd over gzip from Accept-Encoding, ignoring order and q-values", () => {
    const cases: [string | undefined, S2sCompression][] = [
      [undefined, "none"],
      ["", "none"],
      ["identity", "none"],
      ["gzip", "gzip"],
      ["GZIP;q=0.1", "gzip"],
      ["gzip, zstd", "zstd"],
      ["zstd;q=0, gzip", "zstd"],
      [" br , zstd ", "zstd"],
      ["x-gzip, deflate", "none"],
    ];
    for (const [header, expected] of cases) {
      assert.equal(compressionFromAcceptEncoding(header), expected, String(header));
    }
  });

  it("decodes zstd frames that do not declare their size, up to the bound", async () => {
    const content = new Uint8Array(1_500_000).map((_, i) => i % 251);
    const frame: S2sFrame = {
      isTerminal: false,
      compression: "zstd",
      isReconnectAdvised: false,
      payload: zstdFrameWithoutContentSize(content),
    };
    assert.deepEqual(await decodeS2sPayload(frame), content);
    const tooLarge = {
      ...frame,
      payload: zstdFrameWithoutContentSize(new Uint8Array(s2sFrameBytesMax)),
    };
    await assertBadFrameAsync(() => decodeS2sPayload(tooLarge), /decompressed/);
  });

  it("rejects garbage and bombs in both codecs", async () => {
    const frameOf = (compression: S2sCompression, payload: Uint8Array): S2sFrame => ({
      isTerminal: false,
      compression,
      isReconnectAdvised: false,
      payload,
    });
    const garbage = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await assertBadFrameAsync(() => decodeS2sPayload(frameOf("gzip", garbage)), /gzip/);
    await assertBadFrameAsync(() => decodeS2sPayload(frameOf("zstd", garbage)), /zstd/);
    const zeros = new Uint8Array(s2sFrameBytesMax);
    await assertBadFrameAsync(() => decodeS2sPayload(frameOf("gzip", gzipSync(zeros))));
    const zstdBomb = await zstdCompress(zeros);
    assert.ok(zstdBomb.length < 1024, "the bomb is small");
    await assertBadFrameAsync(() => decodeS2sPayload(frameOf("zstd", zstdBomb)));
    const valid = await zstdCompress(new Uint8Array(5000));
    await assertBadFrameAsync(() => decodeS2sPayload(frameOf("zstd", valid.subarray(0, 6))));
    await assertBadFrameAsync(() => decodeS2sPayload(frameOf("zstd", valid.subarray(0, -3))));
  });
});

describe("S2S terminal frames", () => {
  it("carry the status and the JSON body of the error, uncompressed", () => {
    const [frame] = decodeAll([encodeS2sTerminalFrame(new S2Error("bad_frame", "nope"))]);
    assert.equal(frame?.isTerminal, true);
    assert.equal(frame?.compression, "none");
    const { status, body } = parseS2sTerminalPayload(frame!.payload);
    assert.equal(status, 400);
    assert.deepEqual(JSON.parse(body), { code: "bad_frame", message: "nope" });
  });

  it("carry the 412 body of a failed append condition", () => {
    const error = new AppendConditionFailed({ kind: "seq_num_mismatch", nextSeqNum: 42 });
    const [frame] = decodeAll([encodeS2sTerminalFrame(error)]);
    const { status, body } = parseS2sTerminalPayload(frame!.payload);
    assert.equal(status, 412);
    assert.deepEqual(JSON.parse(body), { seq_num_mismatch: 42 });
  });

  it("must hold a status", () => {
    assertBadFrame(() => parseS2sTerminalPayload(new Uint8Array([1])), /status/);
  });
});
