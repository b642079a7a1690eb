// Goal: every name and token rule of S2-API.md §6.1 holds exactly at its boundaries, and listings
// sort by UTF-8 bytes. Method: table cases on each side of every limit (ASCII and multibyte), plus
// a fast-check property comparing `compareBytewise` with `Buffer.compare` of the encoded strings.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  compareBytewise,
  isWellFormedUtf16,
  utf8ByteLength,
  validateBasinName,
  validateBasinNamePrefix,
  validateFencingToken,
  validateRequestToken,
  validateStreamName,
  validateStreamNamePrefix,
} from "./names.js";

type Validator = (value: string) => string | undefined;

function check(validate: Validator, valid: readonly string[], invalid: readonly string[]): void {
  for (const value of valid) {
    assert.equal(validate(value), undefined, `expected valid: ${JSON.stringify(value)}`);
  }
  for (const value of invalid) {
    assert.equal(typeof validate(value), "string", `expected invalid: ${JSON.stringify(value)}`);
  }
}

const snowman = "\u2603"; // 3 bytes in UTF-8
const emoji = "\u{1F600}"; // 4 bytes in UTF-8, 2 UTF-16 units

describe("validateBasinName", () => {
  it("accepts 8 and 48 chars, rejects 7 and 49", () => {
    check(
      validateBasinName,
      ["a".repeat(8), "a".repeat(48), "my-basin", "0123-abc"],
      ["a".repeat(7), "a".repeat(49), ""],
    );
    assert.equal(
      validateBasinName("a".repeat(7)),
      "basin name should be at least 8 bytes in length",
    );
    assert.equal(
      validateBasinName("a".repeat(49)),
      "basin name must not exceed 48 bytes in length",
    );
  });

  it("rejects a leading or trailing hyphen", () => {
    check(validateBasinName, ["a-------b"], ["-abcdefgh", "abcdefgh-", "--------"]);
    assert.equal(
      validateBasinName("-abcdefgh"),
      "basin name must begin with a lowercase letter or number",
    );
    assert.equal(
      validateBasinName("abcdefgh-"),
      "basin name must end with a lowercase letter or number",
    );
  });

  it("rejects uppercase, underscores, dots and non-ASCII", () => {
    check(
      validateBasinName,
      [],
      [
        "Abcdefgh",
        "abcdEfgh",
        "abcdefgH",
        "abc_defgh",
        "abc.defgh",
        "abc defgh",
        `abcdefg${snowman}h`,
      ],
    );
    assert.equal(
      validateBasinName("abc_defgh"),
      "basin name must comprise lowercase letters, numbers, and hyphens",
    );
  });

  it("counts bytes, not chars", () => {
    // 16 snowmen = 48 bytes: not too long, but the charset rejects them.
    assert.match(validateBasinName(snowman.repeat(16)) ?? "", /must begin/);
    assert.match(validateBasinName(snowman.repeat(17)) ?? "", /must not exceed 48 bytes/);
  });
});

describe("validateBasinNamePrefix", () => {
  it("allows empty, short and trailing-hyphen prefixes up to 48 bytes", () => {
    check(
      validateBasinNamePrefix,
      ["", "a", "ab-", "a".repeat(48), "0"],
      ["a".repeat(49), "-", "-a", "A", "a_", "a.", snowman],
    );
  });

  it("names the field it checks", () => {
    assert.equal(
      validateBasinNamePrefix("-a", "start_after"),
      "basin start_after must begin with a lowercase letter or number",
    );
    assert.equal(
      validateBasinNamePrefix("a".repeat(49)),
      "basin prefix must not exceed 48 bytes in length",
    );
  });
});

describe("validateStreamName", () => {
  it("accepts 1 and 512 bytes, rejects empty and 513", () => {
    check(validateStreamName, ["a", "a".repeat(512)], ["", "a".repeat(513)]);
    assert.equal(validateStreamName(""), "stream name must not be empty");
    assert.equal(
      validateStreamName("a".repeat(513)),
      "stream name must not exceed 512 bytes in length",
    );
  });

  it("counts multibyte characters in bytes", () => {
    // 170 snowmen = 510 bytes; + "ab" = 512; + "abc" = 513.
    check(
      validateStreamName,
      [`${snowman.repeat(170)}ab`, emoji.repeat(128)],
      [`${snowman.repeat(170)}abc`, `${emoji.repeat(128)}a`, snowman.repeat(171)],
    );
  });

  it("rejects . and .. but allows anything else", () => {
    check(
      validateStreamName,
      ["...", ".a", "a.", "a/b", "/", "A_b.C", " ", "\u0000", emoji],
      [".", ".."],
    );
    assert.equal(validateStreamName(".."), 'stream name must not be "." or ".."');
  });

  it("rejects lone surrogates", () => {
    check(validateStreamName, [], ["\ud800", "a\udc00b", `${emoji.slice(0, 1)}x`]);
  });
});

describe("validateStreamNamePrefix", () => {
  it("allows empty, . and .. up to 512 bytes", () => {
    check(
      validateStreamNamePrefix,
      ["", ".", "..", "a".repeat(512), `${snowman.repeat(170)}ab`],
      ["a".repeat(513), `${snowman.repeat(170)}abc`, "\ud800"],
    );
    assert.equal(
      validateStreamNamePrefix("a".repeat(513), "start_after"),
      "stream start_after must not exceed 512 bytes in length",
    );
  });
});

describe("tokens", () => {
  for (const [name, validate] of [
    ["validateFencingToken", validateFencingToken],
    ["validateRequestToken", validateRequestToken],
  ] as const) {
    it(`${name} allows up to 36 bytes`, () => {
      check(
        validate,
        ["", "a".repeat(36), `${snowman.repeat(12)}`, emoji.repeat(9)],
        ["a".repeat(37), `${snowman.repeat(12)}a`, `${emoji.repeat(9)}a`, "\udfff"],
      );
    });
  }

  it("says what is wrong", () => {
    assert.equal(
      validateFencingToken("a".repeat(37)),
      "fencing token must not exceed 36 bytes in length",
    );
    assert.equal(
      validateRequestToken("a".repeat(37)),
      "request token must not exceed 36 bytes in length",
    );
  });
});

describe("utf8ByteLength and isWellFormedUtf16", () => {
  it("counts UTF-8 bytes", () => {
    assert.equal(utf8ByteLength(""), 0);
    assert.equal(utf8ByteLength("a"), 1);
    assert.equal(utf8ByteLength("\u00e9"), 2);
    assert.equal(utf8ByteLength(snowman), 3);
    assert.equal(utf8ByteLength(emoji), 4);
  });

  it("finds lone surrogates only", () => {
    assert.equal(isWellFormedUtf16(emoji), true);
    assert.equal(isWellFormedUtf16("\ud83d"), false);
    assert.equal(isWellFormedUtf16("\ude00\ud83d"), false);
  });
});

describe("compareBytewise", () => {
  it("orders astral characters after U+E000..U+FFFF, unlike JS string order", () => {
    const astral = "\u{10000}";
    const privateUse = "\ue000";
    assert.equal(astral < privateUse, true, "JS compares UTF-16 code units");
    assert.equal(compareBytewise(astral, privateUse), 1);
    assert.equal(compareBytewise(privateUse, astral), -1);
    assert.equal(compareBytewise("\uffff", emoji), -1);
  });

  it("orders prefixes first and equal strings as 0", () => {
    assert.equal(compareBytewise("", ""), 0);
    assert.equal(compareBytewise("", "a"), -1);
    assert.equal(compareBytewise("ab", "a"), 1);
    assert.equal(compareBytewise("a/b", "a/b"), 0);
    assert.equal(compareBytewise("a-b", "a/b"), -1);
  });

  it("agrees with Buffer.compare of the UTF-8 encodings", () => {
    const text = fc.string({
      unit: fc.constantFrom(
        "a",
        "b",
        "\u007f",
        "\u0080",
        "\ue000",
        "\uffff",
        "\u{10000}",
        "\u{10ffff}",
      ),
    });
    fc.assert(
      fc.property(
        fc.oneof(text, fc.string({ unit: "binary" })),
        fc.string({ unit: "binary" }),
        (a, b) => {
          const expected = Math.sign(
            Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")),
          );
          assert.equal(compareBytewise(a, b), expected);
          assert.equal(compareBytewise(b, a), expected === 0 ? 0 : -expected);
        },
      ),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "binary" })), (names) => {
        const sorted = [...names].sort(compareBytewise);
        const bytes = names.map((n) => Buffer.from(n, "utf8")).sort(Buffer.compare);
        assert.deepEqual(
          sorted.map((n) => Buffer.from(n, "utf8")),
          bytes,
        );
      }),
    );
  });
});
