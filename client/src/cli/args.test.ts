// Goal: the CLI's argument parsing (flags, positionals, durations, S2 URIs) accepts what the S2
// CLI accepts and turns every other input into a UsageError. Method: table-driven cases, plus a
// fast-check round trip of durations through their printed form; no server needed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseCommandArgs, parseDurationSecs, parseU64, UsageError } from "./args.js";
import { formatDurationSecs } from "./config-flags.js";
import { parseBasinUri, parseListUri, parseStreamUri } from "./uri.js";

describe("CLI arguments", () => {
  const specs = {
    count: { type: "string", short: "n" },
    follow: { type: "boolean", short: "F" },
  } as const;

  it("parses long, short, inline and boolean flags and positionals", () => {
    const parsed = parseCommandArgs(
      ["s2://b/s", "-n5", "--follow", "false", "extra", "--count=7", "--", "--not-a-flag"],
      specs,
    );
    assert.deepEqual(Object.fromEntries(parsed.flags), { count: "7", follow: false });
    assert.deepEqual(parsed.positionals, ["s2://b/s", "extra", "--not-a-flag"]);
    assert.deepEqual(Object.fromEntries(parseCommandArgs(["-F", "-n", "3"], specs).flags), {
      follow: true,
      count: "3",
    });
    // A negative number is a positional (e.g. a bad trim point), not an unknown flag.
    assert.deepEqual(parseCommandArgs(["-3"], specs).positionals, ["-3"]);
  });

  it("rejects unknown flags, missing values and non-boolean words", () => {
    for (const args of [["--bogus"], ["-x"], ["--count"], ["--follow=yes"]]) {
      assert.throws(() => parseCommandArgs(args, specs), UsageError, args.join(" "));
    }
  });

  it("parses durations and u64s", () => {
    assert.equal(parseDurationSecs("90", "d"), 90);
    assert.equal(parseDurationSecs("1h30m", "d"), 5400);
    assert.equal(parseDurationSecs("7d", "d"), 604_800);
    assert.equal(parseDurationSecs("2w", "d"), 1_209_600);
    for (const bad of ["", "7x", "h", "1.5h", "-1s", "1h 30m"]) {
      assert.throws(() => parseDurationSecs(bad, "d"), UsageError, bad);
    }
    assert.equal(parseU64("18446744073709551615", "n"), (1n << 64n) - 1n);
    assert.throws(() => parseU64("18446744073709551616", "n"), UsageError);
    assert.throws(() => parseU64("-1", "n"), UsageError);
  });

  it("prints durations that parse back to the same seconds", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 * 365 * 86_400 }), (secs) => {
        assert.equal(parseDurationSecs(formatDurationSecs(secs), "d"), secs);
      }),
    );
    assert.equal(formatDurationSecs(604_800), "1w");
    assert.equal(formatDurationSecs(5400), "90m");
  });

  it("parses S2 URIs", () => {
    assert.deepEqual(parseStreamUri("s2://basin/a/b"), { basin: "basin", stream: "a/b" });
    assert.equal(parseBasinUri("s2://basin"), "basin");
    assert.equal(parseBasinUri("s2://basin/"), "basin");
    assert.equal(parseBasinUri("basin"), "basin");
    assert.deepEqual(parseListUri("s2://basin/logs/"), { basin: "basin", prefix: "logs/" });
    assert.deepEqual(parseListUri("basin"), { basin: "basin", prefix: "" });
    for (const bad of ["basin/s", "s2://basin", "s2://basin/", "s2:///s", "http://b/s", ""]) {
      assert.throws(() => parseStreamUri(bad), UsageError, bad);
    }
    for (const bad of ["s2://basin/s", "s2://", "https://basin", ""]) {
      assert.throws(() => parseBasinUri(bad), UsageError, bad);
    }
  });
});
