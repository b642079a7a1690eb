/**
 * What the stream page's append form turns into bytes: a body typed as hex pairs, and headers
 * typed as `name: value` lines. Plain functions without the DOM, so that they are unit-tested in
 * Node (server/test/console/).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HeaderSchema } from "@tributary/protocol/gen/s2/v1/s2_pb.js";

const encoder = new TextEncoder();

/** Parses hex pairs (whitespace allowed anywhere) into bytes; undefined when `text` is not hex. */
export function fromHex(text: string): Uint8Array | undefined {
  const digits = text.replace(/\s+/g, "");
  if (digits.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(digits)) return undefined;
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = Number.parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  }
  return bytes;
}

/**
 * Parses `name: value` lines into record headers: blank lines are skipped, the name ends at the
 * first colon, and both sides are trimmed (so a value may hold colons). Throws on a line without a
 * name.
 */
export function parseHeaders(text: string): MessageInitShape<typeof HeaderSchema>[] {
  const headers: MessageInitShape<typeof HeaderSchema>[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0 || line.slice(0, colon).trim() === "") {
      throw new Error(`header line without "name:": ${line}`);
    }
    headers.push({
      name: encoder.encode(line.slice(0, colon).trim()),
      value: encoder.encode(line.slice(colon + 1).trim()),
    });
  }
  return headers;
}
