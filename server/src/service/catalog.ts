/**
 * The catalog of basins and streams as the service sees it: the durable state with the control
 * operations in flight laid over it ("pipelined"). Validation of a change runs against the
 * pipelined view, synchronously, so two concurrent creates of one name cannot both pass; reads
 * that answer clients (get, list) use the durable view, so nothing a client saw can vanish in a
 * crash. An in-flight operation is dropped from the overlay once it is durable (or failed).
 */
import { type DurableState, streamMapKey } from "../storage/durable-state.js";
import type { Storage } from "../storage/storage.js";
import type { BasinRecord, ControlOp, StreamRecord } from "../storage/wal/entries.js";

/**
 * The control operations that change the catalog (expiry changes only a tail; access tokens have
 * their own overlay in `access-tokens.ts`).
 */
export type CatalogOp = Extract<
  ControlOp,
  { op: "basin.put" | "basin.remove" | "stream.put" | "stream.remove" }
>;

export class Catalog {
  /**
   * In-flight changes: a record being put, or null for one being removed. Boxed, so that an
   * operation can tell its own overlay entry from a later one on the same name.
   */
  private readonly pendingBasins = new Map<string, { readonly record: BasinRecord | null }>();
  private readonly pendingStreams = new Map<string, { readonly record: StreamRecord | null }>();
  private nextStreamId: number;

  constructor(private readonly storage: Storage) {
    this.nextStreamId = storage.state.nextStreamId;
  }

  get durable(): DurableState {
    return this.storage.state;
  }

  /** The basin as it will be once everything in flight is durable. */
  basin(name: string): BasinRecord | undefined {
    const pending = this.pendingBasins.get(name);
    if (pending !== undefined) return pending.record ?? undefined;
    return this.durable.basins.get(name);
  }

  /** The stream as it will be once everything in flight is durable. */
  stream(basin: string, name: string): StreamRecord | undefined {
    const pending = this.pendingStreams.get(streamMapKey(basin, name));
    if (pending !== undefined) return pending.record ?? undefined;
    return this.durable.streams.get(streamMapKey(basin, name));
  }

  /** Every stream of a basin, pipelined (for basin deletion). */
  streamsOf(basin: string): StreamRecord[] {
    const byKey = new Map<string, StreamRecord | null>();
    for (const record of this.durable.streams.values()) {
      if (record.basin === basin) byKey.set(streamMapKey(record.basin, record.name), record);
    }
    for (const [key, pending] of this.pendingStreams) {
      if (key.startsWith(`${basin}\u0000`)) byKey.set(key, pending.record);
    }
    return [...byKey.values()].filter((record): record is StreamRecord => record !== null);
  }

  /** A fresh stream id; ids are never reused, even across restarts (the WAL records them). */
  allocateStreamId(): number {
    this.nextStreamId = Math.max(this.nextStreamId, this.durable.nextStreamId);
    return this.nextStreamId++;
  }

  /**
   * Lays `op` over the catalog now and resolves once it is durable. Callers validate against the
   * pipelined view and call this without yielding in between.
   */
  async commit(op: CatalogOp): Promise<void> {
    let release: () => void;
    switch (op.op) {
      case "basin.put":
      case "basin.remove": {
        const key = op.op === "basin.put" ? op.basin.name : op.name;
        const box = { record: op.op === "basin.put" ? op.basin : null };
        this.pendingBasins.set(key, box);
        release = () => {
          if (this.pendingBasins.get(key) === box) this.pendingBasins.delete(key);
        };
        break;
      }
      case "stream.put":
      case "stream.remove": {
        const key =
          op.op === "stream.put"
            ? streamMapKey(op.stream.basin, op.stream.name)
            : streamMapKey(op.basin, op.name);
        const box = { record: op.op === "stream.put" ? op.stream : null };
        this.pendingStreams.set(key, box);
        release = () => {
          if (this.pendingStreams.get(key) === box) this.pendingStreams.delete(key);
        };
        break;
      }
    }
    try {
      await this.storage.submitControl(op);
    } finally {
      release();
    }
  }
}
