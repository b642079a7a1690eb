// Goal: the console shows record bytes the way api.md "Web console" says (valid UTF-8 as text, a
// JSON object or array pretty-printed, anything else as hex, long bodies cut) and turns the append
// form's hex body and header lines into the right bytes. Method: the console's DOM-free modules
// (render-body.ts, append-input.ts) called directly in Node.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fromHex, parseHeaders } from "../../console/append-input.js";
import { bodyBytesShownMax, renderBody, toHex } from "../../console/render-body.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

describe("renderBody", () => {
  it("shows UTF-8 as text, JSON objects and arrays pretty-printed, the rest as hex", () => {
    assert.deepEqual(renderBody(encoder.encode("héllo wörld")), {
      kind: "text",
      text: "héllo wörld",
    });
    assert.deepEqual(renderBody(encoder.encode(' {"a":[1,2]} ')), {
      kind: "json",
      text: '{\n  "a": [\n    1,\n    2\n  ]\n}',
    });
    assert.deepEqual(renderBody(encoder.encode("[1,")), { kind: "text", text: "[1," });
    // A bare number or string is text: only objects and arrays are reformatted.
    assert.deepEqual(renderBody(encoder.encode("42")), { kind: "text", text: "42" });
    assert.deepEqual(renderBody(new Uint8Array([0xff, 0x00, 0x7f])), {
      kind: "hex",
      text: "ff 00 7f",
    });
    assert.deepEqual(renderBody(new Uint8Array()), { kind: "text", text: "" });
  });

  it("cuts a long body, even inside a multi-byte character, and says how long it was", () => {
    const long = encoder.encode(`${"a".repeat(bodyBytesShownMax - 1)}é and more`);
    const shown = renderBody(long);
    assert.equal(shown.kind, "text");
    assert.ok(shown.text.startsWith("a".repeat(bodyBytesShownMax - 1)));
    assert.ok(shown.text.endsWith(` … (${long.length} bytes)`));
    const binary = new Uint8Array(bodyBytesShownMax + 10).fill(0xff);
    const hex = renderBody(binary);
    assert.equal(hex.kind, "hex");
    assert.equal(
      hex.text,
      `${toHex(binary.subarray(0, bodyBytesShownMax))} … (${binary.length} bytes)`,
    );
  });
});

describe("append input", () => {
  it("parses hex pairs with any whitespace, and rejects anything else", () => {
    assert.deepEqual(fromHex("ff fe\n00 0A"), new Uint8Array([0xff, 0xfe, 0x00, 0x0a]));
    assert.deepEqual(fromHex(""), new Uint8Array());
    assert.equal(fromHex("abc"), undefined);
    assert.equal(fromHex("zz"), undefined);
  });

  it("parses header lines, keeping colons in values and skipping blank lines", () => {
    const headers = parseHeaders("content-type: text/plain\n\n  x-url : http://a:1/b \n");
    assert.deepEqual(
      headers.map(({ name, value }) => [decoder.decode(name), decoder.decode(value)]),
      [
        ["content-type", "text/plain"],
        ["x-url", "http://a:1/b"],
      ],
    );
    assert.deepEqual(parseHeaders(""), []);
    assert.throws(() => parseHeaders(": no name"), /without "name:"/);
    assert.throws(() => parseHeaders("no colon"), /without "name:"/);
  });
});
