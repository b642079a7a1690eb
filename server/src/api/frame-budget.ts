/**
 * The memory that S2S append sessions and RPC streaming calls (`connect/envelope-budget.ts`) may
 * hold in frames and messages still arriving (issue 14: 1,000 sessions each holding an almost
 * complete 2 MiB frame cost 2 GiB, bounded only by clients × frame size).
 * A frame decoder reserves a frame's declared payload here once its header is in, before it keeps
 * a byte of the payload, and releases it when the frame is complete or dropped. A reservation
 * must fit both `s2sFrameBufferBytesMax` over the server and `s2sFrameBufferBytesPerConnectionMax`
 * over the sessions of one connection (an HTTP/2 connection carries many); one that does not
 * waits, and its session stops reading meanwhile, so the client is held back by flow control (an
 * HTTP/2 stream window, TCP for HTTP/1.1), as Envoy's per-connection buffer limits and its
 * overload manager do. Waiting counts toward the session's stall timeout (`append-session.ts`).
 *
 * A whole frame is reserved, not the bytes as they come: a session that holds a reservation can
 * always finish its frame, so sessions never wait on each other's partial frames (with a budget
 * charged per byte, frames arriving interleaved could each fill part of it and all wait for ever).
 *
 * Invariants: reserved bytes never exceed either cap (asserted); a connection's entry is removed
 * when it holds nothing, so the map is bounded by the connections that are receiving a frame.
 * Waiters are woken in arrival order among those that fit (a large frame may be passed by smaller
 * ones; its wait is bounded by the stall timeout).
 */
import { assert } from "../core/assert.js";
import type { ApiRequest } from "./http/request-context.js";

/** A session's view of the budget: reservations charged to its connection. */
export interface FrameBufferAccount {
  /** Reserves `bytes` if both caps have room. */
  tryReserve(bytes: number): boolean;
  /**
   * Reserves `bytes` as soon as both caps have room (after a release), then calls `onReserved`
   * at once, from inside that release; returns a function that cancels the wait (no effect once
   * reserved).
   */
  waitToReserve(bytes: number, onReserved: () => void): () => void;
  release(bytes: number): void;
}

interface Waiter {
  readonly connection: object;
  readonly bytes: number;
  readonly onReserved: () => void;
}

export class FrameBudget {
  private reserved = 0;
  private readonly reservedByConnection = new Map<object, number>();
  /** In arrival order (a `Set` iterates in insertion order). */
  private readonly waiters = new Set<Waiter>();

  constructor(
    private readonly bytesMax: number,
    private readonly connectionBytesMax: number,
  ) {
    assert(connectionBytesMax <= bytesMax, "a connection's share fits the server's budget");
  }

  /** Bytes reserved now, over the server (`tributary_frame_buffer_bytes`). */
  get reservedBytes(): number {
    return this.reserved;
  }

  /** Sessions waiting for room (`tributary_frame_buffer_waiting`). */
  get waitingCount(): number {
    return this.waiters.size;
  }

  /** The account of a session received on `request`'s connection. */
  accountFor(request: ApiRequest): FrameBufferAccount {
    // The HTTP/2 session is the connection of its streams; HTTP/1.1 has one request at a time.
    // (A stream whose session is already gone is its own connection.)
    const connection: object =
      "stream" in request ? (request.stream.session ?? request.stream) : request.socket;
    return {
      tryReserve: (bytes) => this.tryReserve(connection, bytes),
      waitToReserve: (bytes, onReserved) => {
        const waiter: Waiter = { connection, bytes, onReserved };
        this.waiters.add(waiter);
        return () => this.waiters.delete(waiter);
      },
      release: (bytes) => this.release(connection, bytes),
    };
  }

  private tryReserve(connection: object, bytes: number): boolean {
    assert(bytes <= this.connectionBytesMax, `a frame fits a connection's share. bytes=${bytes}`);
    const connectionBytes = this.reservedByConnection.get(connection) ?? 0;
    if (this.reserved + bytes > this.bytesMax) return false;
    if (connectionBytes + bytes > this.connectionBytesMax) return false;
    this.reserved += bytes;
    this.reservedByConnection.set(connection, connectionBytes + bytes);
    return true;
  }

  private release(connection: object, bytes: number): void {
    const connectionBytes = (this.reservedByConnection.get(connection) ?? 0) - bytes;
    assert(connectionBytes >= 0 && this.reserved >= bytes, "a reservation is released once");
    this.reserved -= bytes;
    if (connectionBytes === 0) this.reservedByConnection.delete(connection);
    else this.reservedByConnection.set(connection, connectionBytes);
    for (const waiter of this.waiters) {
      if (this.reserved >= this.bytesMax) break;
      if (!this.tryReserve(waiter.connection, waiter.bytes)) continue;
      this.waiters.delete(waiter);
      waiter.onReserved();
    }
  }
}
