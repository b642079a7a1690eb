/**
 * The S2S frame codec (S2-API.md §5.8, SDK-CLIENT.md "s2s details"): a 3-byte big-endian length
 * (1 + payload length), a flag byte `[T][CC][R][0000]`, then the payload. Regular payloads are
 * protobuf messages, compressed per frame when the peer asked for it; a terminal payload is a u16
 * HTTP status and a JSON error body, never compressed.
 *
 * The decoder is incremental over chunks of any size. Like connect-es's envelope reader it checks
 * the declared length against `s2sFrameBytesMax` as soon as the three length bytes are in, before
 * it allocates or buffers the payload, and decompression is bounded by `s2sFrameBytesMax - 1`, so
 * a peer can never make a session hold more than one maximal frame. Every malformation is
 * `S2Error("bad_frame")`, which is 400 and side-effect free.
 */
import type { Writable } from "node:stream";
import { assert } from "../../core/assert.js";
import { S2Error } from "../../core/errors.js";
import { joinBytes } from "../../core/bytes.js";
import { s2sCompressionBytesMin, s2sFrameBytesMax } from "../../core/limits.js";
import type { ApiResponse } from "../http/request-context.js";
import type { FrameBufferAccount } from "../frame-budget.js";
import { renderErrorTerminalPayload } from "../render-error.js";
import {
  DecompressionError,
  gzipCompress,
  gzipDecompress,
  zstdCompress,
  zstdDecompress,
} from "./compression.js";

/**
 * The response headers that establish a session (S2-API.md §3.2, §5.8), sent at once: the SDK
 * waits for them before it reads frames.
 */
export function startS2sResponse(response: ApiResponse): void {
  response.writeHead(200, {
    "content-type": "s2s/proto",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
  });
  // HTTP/2 sends the headers on `writeHead`; HTTP/1.1 waits for the first write unless flushed.
  (response as { flushHeaders?: () => void }).flushHeaders?.();
}

/**
 * Whether the client has gone away (or the exchange is over). A closed HTTP/2 response accepts
 * `writeHead` and writes silently and emits no further `close`, so sessions check this before they
 * start and before they wait for `close`.
 */
export function isResponseClosed(response: ApiResponse): boolean {
  if ("stream" in response) return response.stream.destroyed || response.stream.closed;
  return response.destroyed || (response.socket?.destroyed ?? true);
}

/** Writes frames to a session's response; false when the caller should wait for `drain`. */
export function writeS2sFrame(response: ApiResponse, frame: Uint8Array): boolean {
  return (response as Writable).write(frame);
}

/**
 * Writes frames given as chunks (`encodeS2sMessageChunksInPlace`) to a session's response, all in
 * one gathered write: the writable is corked around them, so HTTP/2 hands the whole list to one
 * `writev` instead of one write per chunk. False when the caller should wait for `drain`.
 */
export function writeS2sFrameChunks(
  response: ApiResponse,
  frames: readonly (readonly Uint8Array[])[],
): boolean {
  const corkable: Writable = "stream" in response ? response.stream : (response as Writable);
  corkable.cork();
  let hasRoom = true;
  try {
    for (const frame of frames) {
      for (const chunk of frame) hasRoom = (response as Writable).write(chunk) && hasRoom;
    }
  } finally {
    corkable.uncork();
  }
  return hasRoom;
}

/** Per-frame compression (the CC bits). */
export type S2sCompression = "none" | "zstd" | "gzip";

/** Flag bits (S2-API.md §5.8). */
const terminalFlag = 0x80;
const compressionMask = 0x60;
const zstdFlag = 0x20;
const gzipFlag = 0x40;
/** "Reconnect advised" in lite's library (reserved in the spec); accepted and ignored. */
const reconnectAdvisedFlag = 0x10;
const reservedMask = 0x0f;

const lengthPrefixBytes = 3;
/** The 3-byte length and the flags byte in front of every payload. */
export const s2sFrameHeaderBytes = lengthPrefixBytes + 1;
const frameHeaderBytes = s2sFrameHeaderBytes;
/** The largest payload: the length counts the flag byte. */
export const s2sPayloadBytesMax = s2sFrameBytesMax - 1;
/** Bytes of the status that opens a terminal payload. */
const terminalStatusBytes = 2;

assert(s2sFrameBytesMax < 1 << 24, "the length of a maximal frame fits the 3-byte prefix");

/** No budget: a client's decoder of server frames, and tests. */
const unlimitedBudget: FrameBufferAccount = {
  tryReserve: () => true,
  waitToReserve: () => () => {},
  release: () => {},
};

/** A decoded frame. */
export interface S2sFrame {
  readonly isTerminal: boolean;
  readonly compression: S2sCompression;
  readonly isReconnectAdvised: boolean;
  /** The payload as sent: still compressed when `compression` is not "none". */
  readonly payload: Uint8Array;
}

function badFrame(message: string, options?: { cause?: unknown }): S2Error {
  return new S2Error("bad_frame", message, options);
}

/**
 * The compression to use for frames sent to a client, from its `Accept-Encoding`: zstd if listed,
 * else gzip if listed, else none. q-values and order are ignored, as lite does.
 */
export function compressionFromAcceptEncoding(header: string | undefined): S2sCompression {
  if (header === undefined) return "none";
  const codings = header.split(",").map((entry) => entry.split(";")[0]!.trim().toLowerCase());
  if (codings.includes("zstd")) return "zstd";
  if (codings.includes("gzip")) return "gzip";
  return "none";
}

/**
 * Frames a payload that is already in its wire form (compressed or not, as `compression` says).
 * Our own payloads are bounded by construction, so an oversized one is a bug.
 */
export function encodeS2sFrame(
  payload: Uint8Array,
  options: { readonly isTerminal?: boolean; readonly compression?: S2sCompression } = {},
): Uint8Array {
  const compression = options.compression ?? "none";
  const isTerminal = options.isTerminal ?? false;
  assert(!isTerminal || compression === "none", "terminal frames are never compressed");
  const length = 1 + payload.length;
  assert(length <= s2sFrameBytesMax, `an s2s frame fits the limit. length=\`${length}\``);
  const frame = new Uint8Array(lengthPrefixBytes + length);
  writeFrameHeader(frame, length, isTerminal, compression);
  frame.set(payload, frameHeaderBytes);
  return frame;
}

/** Writes the length prefix (of the flags byte and the payload) and the flags byte. */
function writeFrameHeader(
  frame: Uint8Array,
  length: number,
  isTerminal: boolean,
  compression: S2sCompression,
): void {
  frame[0] = (length >>> 16) & 0xff;
  frame[1] = (length >>> 8) & 0xff;
  frame[2] = length & 0xff;
  frame[3] =
    (isTerminal ? terminalFlag : 0) |
    (compression === "zstd" ? zstdFlag : compression === "gzip" ? gzipFlag : 0);
}

/**
 * Frames a protobuf message, compressing it when `compression` is negotiated and the message is at
 * least `s2sCompressionBytesMin` bytes. A compressed form that would not fit one frame is sent
 * uncompressed instead (receivers honour the per-frame bits).
 */
export async function encodeS2sMessage(
  message: Uint8Array,
  compression: S2sCompression,
): Promise<Uint8Array> {
  assert(message.length <= s2sPayloadBytesMax, "an s2s message fits one frame");
  if (compression === "none" || message.length < s2sCompressionBytesMin) {
    return encodeS2sFrame(message);
  }
  const compressed =
    compression === "zstd" ? await zstdCompress(message) : await gzipCompress(message);
  if (compressed.length > s2sPayloadBytesMax) return encodeS2sFrame(message);
  return encodeS2sFrame(compressed, { compression });
}

/**
 * `encodeS2sMessage` for a message written after `s2sFrameHeaderBytes` of headroom in `buffer`
 * (which the caller owns and no longer uses): an uncompressed frame is completed in place, so the
 * catch-up read path does not copy every ~128 KiB message into a second buffer (the copy and the
 * allocation, whose external-memory pressure drives most of the read path's GC). A compressed
 * frame is a new buffer, as in `encodeS2sMessage`.
 */
export async function encodeS2sMessageInPlace(
  buffer: Uint8Array,
  compression: S2sCompression,
): Promise<Uint8Array> {
  assert(buffer.length >= frameHeaderBytes, "the buffer has room for the frame header");
  const message = buffer.subarray(frameHeaderBytes);
  assert(message.length <= s2sPayloadBytesMax, "an s2s message fits one frame");
  if (compression === "none" || message.length < s2sCompressionBytesMin) {
    writeFrameHeader(buffer, 1 + message.length, false, "none");
    return buffer;
  }
  return encodeS2sMessage(message, compression);
}

/**
 * `encodeS2sMessageInPlace` for a message given as chunks (`encodeReadBatchProtoChunks`) whose
 * first one starts with `s2sFrameHeaderBytes` of headroom, uncompressed: the frame header is
 * written there, and the chunks are the frame. The caller must not use the chunks otherwise.
 */
export function encodeS2sMessageChunksInPlace(
  chunks: readonly Uint8Array[],
  messageBytes: number,
): readonly Uint8Array[] {
  const first = chunks[0];
  assert(first !== undefined && first.length >= frameHeaderBytes, "room for the frame header");
  assert(messageBytes <= s2sPayloadBytesMax, "an s2s message fits one frame");
  writeFrameHeader(first, 1 + messageBytes, false, "none");
  return chunks;
}

/** The terminal frame for `error`: flag 0x80, u16 status + JSON body (S2-API.md §7.1). */
export function encodeS2sTerminalFrame(error: unknown): Uint8Array {
  return encodeS2sFrame(renderErrorTerminalPayload(error), { isTerminal: true });
}

/** Splits a terminal payload into its status and JSON text (the inverse of the renderer). */
export function parseS2sTerminalPayload(payload: Uint8Array): { status: number; body: string } {
  if (payload.length < terminalStatusBytes) {
    throw badFrame("terminal frame is missing its status code");
  }
  const status = (payload[0]! << 8) | payload[1]!;
  return { status, body: new TextDecoder().decode(payload.subarray(terminalStatusBytes)) };
}

/**
 * The payload of a regular frame, decompressed per its CC bits to at most `s2sPayloadBytesMax`
 * bytes. Undecodable or oversized data is `bad_frame`.
 */
export async function decodeS2sPayload(frame: S2sFrame): Promise<Uint8Array> {
  try {
    switch (frame.compression) {
      case "none":
        return frame.payload;
      case "gzip":
        return await gzipDecompress(frame.payload, s2sPayloadBytesMax);
      case "zstd":
        return await zstdDecompress(frame.payload, s2sPayloadBytesMax);
    }
  } catch (error) {
    if (error instanceof DecompressionError) {
      throw badFrame(
        `frame payload could not be decompressed. compression=\`${frame.compression}\``,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}

/** What a chunk yields: the frames it completes, and the malformation that stopped decoding. */
export interface S2sDecodeResult {
  /** Complete frames before any malformation, in order: they are valid. */
  readonly frames: S2sFrame[];
  readonly error?: S2Error;
}

/**
 * An incremental frame decoder. `push` takes chunks of any size and returns the frames they
 * complete; `end` says the byte stream is over. The first malformation (`bad_frame`) is returned
 * with the frames before it, and the decoder then refuses further input with the same error.
 *
 * Memory: at most one frame's payload (≤ `s2sPayloadBytesMax`) plus a 4-byte header. A payload
 * still arriving is held as views of the pieces of chunks it came in, when a piece is at least
 * `viewBytesMin` (`push` takes the chunks over: the caller must not change them, as a stream's
 * `data` chunks never are); smaller pieces are copied into a buffer that grows with them (at most
 * twice what it holds, and `smallPiecesBytesMax` before it becomes a part), so a frame sent a
 * byte at a time holds about what it sent, not a view object per byte (~200 bytes each). What a
 * partly received frame holds follows what arrived, never what its header declares. A complete
 * payload is the one piece it came in, or one exact-size copy of its parts. (The whole payload
 * used to grow by doubling from 64 KiB: writing 512 MiB of 8 KiB records through the SDK cost the
 * server 24.1–28.0 ms of CPU per MiB with that, 24.2–25.7 with views, three runs each.)
 *
 * With a `budget` (a server's append sessions, `frame-budget.ts`), a payload is kept only once its
 * declared length is reserved there. When there is no room, `push` stops after the header and
 * keeps the rest of its chunk (`isWaitingForRoom`; its caller stops reading), until the budget
 * grants the reservation and `onRoom` is called (asynchronously): the next `push`, of an empty
 * chunk if nothing else, goes on. The reservation is released when the frame is complete or on
 * `close`.
 */
export class S2sFrameDecoder {
  private readonly header = new Uint8Array(frameHeaderBytes);
  private headerBytes = 0;
  /**
   * The payload received so far, as views of the pushed chunks, once the header is complete and
   * valid; undefined between frames.
   */
  private parts: Uint8Array[] | undefined;
  /** Small pieces of the payload, copied together (the next part once full or done). */
  private small: Uint8Array | undefined;
  private smallBytes = 0;
  /** The payload's declared length. */
  private payloadLength = 0;
  private payloadBytes = 0;
  private flag = 0;
  private failure: S2Error | undefined;
  /** The payload bytes reserved in the budget for the frame being received. */
  private reservedBytes = 0;
  /** Cancels the wait for a reservation; set while waiting. */
  private cancelWait: (() => void) | undefined;
  /** What followed the header while the decoder waits for room. */
  private pending: Uint8Array | undefined;

  constructor(
    private readonly options: {
      readonly budget: FrameBufferAccount;
      /** The reservation waited for is granted: push again. */
      readonly onRoom: () => void;
    } = { budget: unlimitedBudget, onRoom: () => {} },
  ) {}

  /** Whether part of a frame is buffered (the stream would be truncated if it ended now). */
  get hasPartialFrame(): boolean {
    return this.headerBytes > 0;
  }

  /** Whether a frame's header is in and its payload waits for room in the budget. */
  get isWaitingForRoom(): boolean {
    return this.cancelWait !== undefined;
  }

  /** Consumes `chunk` (after what was kept while waiting for room). */
  push(chunk: Uint8Array): S2sDecodeResult {
    if (this.failure !== undefined) return { frames: [], error: this.failure };
    if (this.pending !== undefined) {
      chunk = chunk.length === 0 ? this.pending : Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    const frames: S2sFrame[] = [];
    if (this.isWaitingForRoom) {
      if (chunk.length > 0) this.pending = chunk;
      return { frames };
    }
    try {
      this.consume(chunk, frames);
    } catch (error) {
      if (!(error instanceof S2Error)) throw error;
      this.failure = error;
      return { frames, error };
    }
    return { frames };
  }

  /** Checks that the stream ended on a frame boundary; the malformation if not. */
  end(): S2Error | undefined {
    if (this.failure === undefined && this.hasPartialFrame) {
      const expected =
        this.parts === undefined ? frameHeaderBytes : frameHeaderBytes + this.payloadLength;
      const received =
        this.parts === undefined ? this.headerBytes : frameHeaderBytes + this.payloadBytes;
      this.failure = badFrame(
        `stream ended inside a frame. received_bytes=\`${received}\` frame_bytes=\`${expected}\``,
      );
    }
    return this.failure;
  }

  /**
   * Drops the frame being received and releases its reservation (or stops waiting for one): the
   * session is over, or its input is. The decoder takes no more input.
   */
  close(): void {
    this.cancelWait?.();
    this.cancelWait = undefined;
    this.releaseReservation();
    this.pending = undefined;
    this.parts = undefined;
    this.small = undefined;
    this.smallBytes = 0;
    this.failure ??= badFrame("the session's input is closed");
  }

  private releaseReservation(): void {
    const bytes = this.reservedBytes;
    this.reservedBytes = 0;
    if (bytes > 0) this.options.budget.release(bytes);
  }

  private consume(chunk: Uint8Array, frames: S2sFrame[]): void {
    let offset = 0;
    for (;;) {
      if (this.parts === undefined && this.headerBytes === frameHeaderBytes) {
        if (!this.startPayload()) {
          // No room: keep the rest of the chunk (a view: `push` takes its chunks over).
          if (offset < chunk.length) this.pending = chunk.subarray(offset);
          return;
        }
      } else if (offset >= chunk.length) {
        return;
      } else if (this.parts === undefined) {
        const taken = Math.min(frameHeaderBytes - this.headerBytes, chunk.length - offset);
        this.header.set(chunk.subarray(offset, offset + taken), this.headerBytes);
        this.headerBytes += taken;
        offset += taken;
        if (this.headerBytes >= lengthPrefixBytes) this.checkLength();
        continue;
      } else {
        const taken = Math.min(this.payloadLength - this.payloadBytes, chunk.length - offset);
        this.addPiece(chunk.subarray(offset, offset + taken));
        this.payloadBytes += taken;
        offset += taken;
      }
      const frame = this.takeCompleteFrame();
      if (frame !== undefined) frames.push(frame);
    }
  }

  /** Keeps a piece of the payload: as a view when large enough, else copied with its neighbours. */
  private addPiece(piece: Uint8Array): void {
    const parts = this.parts!;
    if (piece.length >= viewBytesMin) {
      this.endSmallPart();
      parts.push(piece);
      return;
    }
    const needed = this.smallBytes + piece.length;
    if (this.small === undefined || needed > this.small.length) {
      // Doubling, never past what the payload can still bring.
      const room = this.smallBytes + (this.payloadLength - this.payloadBytes);
      const grown = new Uint8Array(
        Math.min(room, Math.max(needed, 2 * (this.small?.length ?? 0), viewBytesMin)),
      );
      if (this.small !== undefined) grown.set(this.small.subarray(0, this.smallBytes));
      this.small = grown;
    }
    this.small.set(piece, this.smallBytes);
    this.smallBytes = needed;
    if (this.smallBytes >= smallPiecesBytesMax) this.endSmallPart();
  }

  /** Makes the small pieces copied so far a part of their own. */
  private endSmallPart(): void {
    if (this.small === undefined) return;
    this.parts!.push(this.small.subarray(0, this.smallBytes));
    this.small = undefined;
    this.smallBytes = 0;
  }

  /** The declared length, checked before anything of the payload is kept. */
  private checkLength(): number {
    const length = (this.header[0]! << 16) | (this.header[1]! << 8) | this.header[2]!;
    if (length === 0) throw badFrame("empty frame: the length must count the flag byte");
    if (length > s2sFrameBytesMax) {
      throw badFrame(
        `frame too large. declared_bytes=\`${length}\` max_bytes=\`${s2sFrameBytesMax}\``,
      );
    }
    return length;
  }

  /** Validates the header and starts the payload; false while waiting for room for it. */
  private startPayload(): boolean {
    const length = this.checkLength();
    const flag = this.header[3]!;
    if ((flag & reservedMask) !== 0) {
      throw badFrame(`reserved flag bits are set. flag=\`0x${flag.toString(16)}\``);
    }
    if ((flag & compressionMask) === compressionMask) {
      throw badFrame(`invalid compression bits. flag=\`0x${flag.toString(16)}\``);
    }
    if ((flag & terminalFlag) !== 0 && (flag & compressionMask) !== 0) {
      throw badFrame(`terminal frames are never compressed. flag=\`0x${flag.toString(16)}\``);
    }
    const payloadLength = length - 1;
    if (this.reservedBytes < payloadLength && !this.reserve(payloadLength)) return false;
    this.flag = flag;
    this.payloadLength = payloadLength;
    this.parts = [];
    this.payloadBytes = 0;
    return true;
  }

  /** Reserves `bytes` for the payload, or starts waiting for room (false). */
  private reserve(bytes: number): boolean {
    assert(this.reservedBytes === 0 && !this.isWaitingForRoom, "one reservation at a time");
    const { budget, onRoom } = this.options;
    if (budget.tryReserve(bytes)) {
      this.reservedBytes = bytes;
      return true;
    }
    this.cancelWait = budget.waitToReserve(bytes, () => {
      this.cancelWait = undefined;
      this.reservedBytes = bytes;
      // Not from inside the budget's release (another session's frame).
      queueMicrotask(onRoom);
    });
    return false;
  }

  private takeCompleteFrame(): S2sFrame | undefined {
    const parts = this.parts;
    if (parts === undefined || this.payloadBytes < this.payloadLength) return undefined;
    this.endSmallPart();
    assert(this.payloadBytes === this.payloadLength, "a payload never takes more than declared");
    const payload = parts.length === 1 ? parts[0]! : joinBytes(parts);
    const flag = this.flag;
    const bits = flag & compressionMask;
    const frame: S2sFrame = {
      isTerminal: (flag & terminalFlag) !== 0,
      compression: bits === zstdFlag ? "zstd" : bits === gzipFlag ? "gzip" : "none",
      isReconnectAdvised: (flag & reconnectAdvisedFlag) !== 0,
      payload,
    };
    this.parts = undefined;
    this.payloadBytes = 0;
    this.headerBytes = 0;
    this.releaseReservation();
    return frame;
  }
}

/**
 * A piece of a payload at least this large is kept as a view of its chunk; smaller ones are
 * copied (a view costs ~200 bytes of heap whatever its length: a client sending a byte per chunk
 * would otherwise make a 2 MiB frame cost ~400 MiB).
 */
const viewBytesMin = 4 << 10;

/** Small pieces are copied into buffers of at most this much, each then a part (copies bounded). */
const smallPiecesBytesMax = 64 << 10;
