/** Byte buffers, joined: shared by the S2S frame decoder and the object stores' bodies. */

/**
 * `parts` back to back in a new plain `Uint8Array` (never a Node `Buffer`, whose `slice` is a
 * view: callers that keep the result hand out copies made with `slice`).
 */
export function joinBytes(parts: readonly Uint8Array[]): Uint8Array {
  let bytes = 0;
  for (const part of parts) bytes += part.length;
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
