/**
 * How the console shows bytes (record bodies, header names and values): valid UTF-8 as text, and
 * text that parses as a JSON object or array pretty-printed; anything else as hex. A long body is
 * cut at `bodyBytesShownMax` so that one 1 MiB record cannot stall the page.
 */

/** At most this many bytes of one body are rendered (a record may hold 1 MiB). */
export const bodyBytesShownMax = 4096;

/** The three renderings, named in the page so a reader (and the test) can tell which was used. */
export type BodyKind = "text" | "json" | "hex";

export interface RenderedBody {
  readonly kind: BodyKind;
  readonly text: string;
}

/** Bytes as space-separated hex pairs. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(" ");
}

/** Renders `bytes` as text, pretty JSON or hex (see the module comment). */
export function renderBody(bytes: Uint8Array): RenderedBody {
  const isCut = bytes.length > bodyBytesShownMax;
  const shown = isCut ? bytes.subarray(0, bodyBytesShownMax) : bytes;
  const more = isCut ? ` … (${bytes.length} bytes)` : "";
  let text: string;
  try {
    // Streaming when cut, so that a character split at the cut is not taken for invalid UTF-8.
    text = new TextDecoder("utf-8", { fatal: true }).decode(shown, { stream: isCut });
  } catch {
    return { kind: "hex", text: toHex(shown) + more };
  }
  const trimmed = text.trim();
  if (!isCut && (trimmed.startsWith("{") || trimmed.startsWith("["))) {
    try {
      return { kind: "json", text: JSON.stringify(JSON.parse(trimmed), null, 2) };
    } catch {
      // Not JSON after all: shown as text.
    }
  }
  return { kind: "text", text: text + more };
}
