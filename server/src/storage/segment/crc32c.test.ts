// Goal: pin crc32c to the iSCSI CRC32C (RFC 3720) and show that a running CRC chains across
// chunks, whichever implementation computes it (the native addon or the portable JS). Method:
// published test vectors, plus fast-check properties comparing `crc32c` and the slicing-by-16
// code with a bit-at-a-time reference over random bytes, chunk splits and unaligned views, and the
// native path with the portable one on inputs around and far above its threshold.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import fc from "fast-check";
import { crc32c, crc32cImplementation, crc32cPortable } from "./crc32c.js";

/** The textbook definition, one bit at a time: slow, and obviously right. */
function crc32cReference(data: Uint8Array, seed = 0): number {
  let crc = ~seed >>> 0;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("crc32c", () => {
  it("gives 0 for empty input", () => {
    assert.equal(crc32c(new Uint8Array(0)), 0);
    assert.equal(crc32cReference(new Uint8Array(0)), 0);
  });

  it("matches the check value for 123456789", () => {
    assert.equal(crc32c(ascii("123456789")), 0xe3069283);
  });

  it("matches the RFC 3720 B.4 test vectors", () => {
    const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
    const descending = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(crc32c(ascending), 0x46dd794e);
    assert.equal(crc32c(descending), 0x113fdb5c);
  });

  it("agrees with the reference for every length 0..64 (the 16-byte loop and its tail)", () => {
    const data = Uint8Array.from({ length: 64 }, (_, i) => (i * 151 + 7) & 0xff);
    for (let length = 0; length <= 64; length++) {
      const view = data.subarray(0, length);
      assert.equal(crc32c(view), crc32cReference(view), `length=${length}`);
    }
  });

  it("returns an unsigned 32-bit integer", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (data) => {
        const crc = crc32c(data);
        return Number.isInteger(crc) && crc >= 0 && crc <= 0xffffffff;
      }),
    );
  });

  it("agrees with the reference on random unaligned views", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.nat(7),
        fc.nat(7),
        (data, skipStart, skipEnd) => {
          const view = data.subarray(skipStart, Math.max(skipStart, data.length - skipEnd));
          assert.equal(crc32c(view), crc32cReference(view));
        },
      ),
    );
  });

  it("chains: crc32c(b, crc32c(a)) === crc32c(a ++ b), and seeds agree with the reference", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }), (a, b) => {
        const whole = crc32cReference(concat(a, b));
        assert.equal(crc32c(b, crc32c(a)), whole);
        assert.equal(crc32c(concat(a, b)), whole);
        assert.equal(crc32c(b, crc32cReference(a)), crc32cReference(b, crc32cReference(a)));
      }),
    );
  });

  it("chains over many chunks of a buffer split at random points", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 500 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (data, cutSeeds) => {
          const cuts = [...new Set(cutSeeds.map((c) => c % data.length))].sort((x, y) => x - y);
          let running = 0;
          let start = 0;
          for (const cut of [...cuts, data.length]) {
            running = crc32c(data.subarray(start, cut), running);
            start = cut;
          }
          assert.equal(running, crc32cReference(data));
        },
      ),
    );
  });

  it("detects every single-bit flip in a 64-byte buffer", () => {
    const data = Uint8Array.from({ length: 64 }, (_, i) => i * 3);
    const clean = crc32c(data);
    for (let bit = 0; bit < data.length * 8; bit++) {
      const flipped = data.slice();
      flipped[bit >>> 3]! ^= 1 << (bit & 7);
      assert.notEqual(crc32c(flipped), clean, `bit=${bit}`);
    }
  });

  it("rejects a seed that is not a u32", () => {
    assert.throws(() => crc32c(new Uint8Array(1), -1), /seed/);
    assert.throws(() => crc32c(new Uint8Array(1), 2 ** 32), /seed/);
    assert.throws(() => crc32c(new Uint8Array(1), 1.5), /seed/);
  });

  it("takes the native path where the addon has a prebuilt binary (Linux x86-64 here)", () => {
    if (process.platform !== "linux" || process.arch !== "x64") return;
    assert.equal(crc32cImplementation, "native");
  });

  it("agrees with the portable code on inputs around and far above the native threshold", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 200, maxLength: 5000 }),
        fc.nat(15),
        fc.nat(0xffffffff),
        (data, skip, seed) => {
          const view = data.subarray(skip);
          assert.equal(crc32c(view, seed), crc32cPortable(view, seed));
        },
      ),
      { numRuns: 200 },
    );
    const large = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 2654435761) >>> 24);
    assert.equal(crc32c(large), crc32cPortable(large));
    assert.equal(crc32cPortable(large.subarray(0, 1000)), crc32cReference(large.subarray(0, 1000)));
  });

  it("falls back to the portable code when TRIBUTARY_CRC32C=portable", () => {
    const script =
      'const m = await import("./server/src/storage/segment/crc32c.ts");' +
      "console.log(m.crc32cImplementation, m.crc32c(new Uint8Array(4096).fill(7)));";
    const output = execFileSync(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      {
        cwd: new URL("../../../../", import.meta.url).pathname,
        env: { ...process.env, TRIBUTARY_CRC32C: "portable" },
        encoding: "utf8",
      },
    ).trim();
    assert.equal(output, `portable ${crc32cPortable(new Uint8Array(4096).fill(7))}`);
  });
});
