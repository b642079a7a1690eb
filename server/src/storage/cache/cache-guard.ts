/**
 * The cache's two modes (docs/design/degraded-cache.md): `disk` (LevelDB and files under
 * `--cache-dir`) and `degraded` (the index in a memory KV, no files, every entry read from the
 * bucket). A disk fault on a cache write degrades the cache instead of stopping the server; a
 * probe every `cacheDiskProbeIntervalMs` finds the disk usable again and the index is copied back.
 *
 * Invariants:
 * - The engine's KV (`kv`, a switch) targets the disk's LevelDB exactly when the mode is `disk`,
 *   and the memory KV exactly when it is `degraded`; files are detached exactly when degraded
 *   (asserted at each transition).
 * - Transitions run on the storage's commit chain (the caller's `onChain`), between two cache
 *   writes: no write is split between two KVs, and a copy sees one consistent state.
 * - A rejoined LevelDB holds exactly the memory KV's rows (counted) and its marker (read back);
 *   the marker is written last, alone, so a copy cut short is a cache without a marker, which
 *   recovery resets.
 *
 * Fault model: the disk fails writes (ENOSPC, EDQUOT, EIO, EROFS) at any time and may recover;
 * LevelDB keeps serving reads after a write failed (its error is sticky for writes only). If the
 * degrade copy cannot read LevelDB, the copy's error is thrown (the storage stops; the restart
 * comes up degraded). Nothing here is on the ack path: acks follow the WAL PUT.
 */
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { assert } from "../../core/assert.js";
import type { Clock } from "../../core/clock.js";
import {
  cacheBoundShareAfterFault,
  cacheDiskProbeIntervalMs,
  cacheRejoinRowsPerBatch,
} from "../../core/limits.js";
import { cacheMarkerKey } from "../kv/keys.js";
import type { KvOp, KvStore } from "../kv/kv-store.js";
import { createMemoryKvStore } from "../kv/memory.js";
import type { SwitchableKvStore } from "../kv/switchable.js";
import { diskFaultOf } from "./disk-fault.js";
import type { SegmentCache } from "./segment-cache.js";
import type { SegmentFiles } from "./segment-files.js";

/** A cache opened on disk: LevelDB and the two file directories. */
export interface OpenedCache {
  readonly kv: KvStore;
  readonly segmentFiles: SegmentFiles;
  readonly chunkFiles: SegmentFiles;
  /** Whether a corrupt LevelDB was wiped at open. */
  readonly wiped: boolean;
}

/** The cache directory, for the storage to open, probe and wipe (`open-stores.ts`). */
export interface CacheDisk {
  readonly path: string;
  /** Opens LevelDB and the file directories (a corrupt LevelDB is wiped and created again). */
  open(): Promise<OpenedCache>;
  /** Resolves when the disk can take the cache again; rejects with the fault otherwise. */
  probe(): Promise<void>;
  /** Removes everything in the directory (the database must be closed). */
  wipe(): Promise<void>;
}

export type CacheMode = "disk" | "degraded";

export interface CacheGuardStats {
  readonly mode: CacheMode;
  /** Why the cache is degraded (the disk fault, errno name first); undefined on disk. */
  readonly degradedReason: string | undefined;
  /** Times the cache degraded (a start on a bad disk included). */
  readonly degradedTotal: number;
  /** Times it rejoined its disk. */
  readonly rejoinedTotal: number;
}

export interface CacheGuardOptions {
  readonly kv: SwitchableKvStore;
  readonly cache: SegmentCache;
  /** The directory, when the storage owns it (it can then be wiped, probed and reopened). */
  readonly disk: CacheDisk | undefined;
  /** The LevelDB the storage opened from `disk` (closed when left), if any. */
  readonly ownedKv: KvStore | undefined;
  readonly clock: Clock;
  /** Runs `task` on the commit chain; a rejection there stops the storage. */
  readonly onChain: (task: () => Promise<void>) => void;
  /** One line per transition, for the operator. */
  readonly log: (line: string) => void;
  /** Start degraded, for this reason (the disk failed at open or during recovery). */
  readonly degradedAtStart: string | undefined;
  readonly probeIntervalMs?: number | undefined;
}

/** Copies every row of `from` into `to`, in batches; the marker last and alone. Returns the count. */
async function copyRows(from: KvStore, to: KvStore): Promise<number> {
  let rows = 0;
  let ops: KvOp[] = [];
  let marker: Uint8Array | undefined;
  for await (const [key, value] of from.entries({})) {
    rows += 1;
    if (Buffer.compare(key, cacheMarkerKey) === 0) {
      marker = value;
      continue;
    }
    ops.push({ type: "put", key, value });
    if (ops.length === cacheRejoinRowsPerBatch) {
      await to.write(ops);
      ops = [];
    }
  }
  if (ops.length > 0) await to.write(ops);
  if (marker !== undefined) await to.write([{ type: "put", key: cacheMarkerKey, value: marker }]);
  return rows;
}

async function countRows(kv: KvStore): Promise<number> {
  let rows = 0;
  for await (const _ of kv.entries({})) rows += 1;
  return rows;
}

export class CacheGuard {
  private state: CacheMode;
  private reason: string | undefined;
  private degradedTotal = 0;
  private rejoinedTotal = 0;
  /** The memory KV while degraded. */
  private memory: KvStore | undefined;
  /** The LevelDB the guard must close when it leaves it (opened from `disk`). */
  private ownedKv: KvStore | undefined;
  private isDegradeScheduled = false;
  private isClosed = false;
  private cancelProbe: (() => void) | undefined;
  private readonly probeIntervalMs: number;

  constructor(private readonly options: CacheGuardOptions) {
    this.probeIntervalMs = options.probeIntervalMs ?? cacheDiskProbeIntervalMs;
    assert(this.probeIntervalMs > 0, "the probe interval is positive");
    this.ownedKv = options.ownedKv;
    this.state = options.degradedAtStart === undefined ? "disk" : "degraded";
    options.cache.onDiskFault = (error) => this.reportOffChain(error);
    if (options.degradedAtStart !== undefined) {
      assert(options.cache.isFilesDetached, "a cache that starts degraded has no files");
      assert(this.ownedKv === undefined, "a cache that starts degraded owns no LevelDB");
      this.memory = options.kv.target;
      this.reason = options.degradedAtStart;
      this.degradedTotal = 1;
      this.logDegraded();
      this.scheduleProbe();
    }
  }

  get mode(): CacheMode {
    return this.state;
  }

  get stats(): CacheGuardStats {
    return {
      mode: this.state,
      degradedReason: this.reason,
      degradedTotal: this.degradedTotal,
      rejoinedTotal: this.rejoinedTotal,
    };
  }

  /**
   * On the commit chain, after a cache write failed with `error`: degrades the cache and returns
   * true when it is a disk fault and the cache was on disk (the caller then runs its commit
   * again, on memory); false when the error is not the disk's (the caller's old handling).
   * Rejects if the degrade itself fails.
   */
  async absorb(error: unknown): Promise<boolean> {
    const fault = diskFaultOf(error);
    if (fault === undefined || this.state !== "disk") return false;
    await this.degrade(fault);
    return true;
  }

  /** A disk fault met off the chain (a chunk file write): degrade on the chain. */
  private reportOffChain(error: unknown): void {
    const fault = diskFaultOf(error);
    if (fault === undefined || this.state !== "disk" || this.isDegradeScheduled) return;
    this.isDegradeScheduled = true;
    this.options.onChain(async () => {
      this.isDegradeScheduled = false;
      if (this.state === "disk" && !this.isClosed) await this.degrade(fault);
    });
  }

  /** Disk → degraded: the index to memory, files detached (module header). */
  private async degrade(fault: string): Promise<void> {
    const { kv, cache } = this.options;
    assert(this.state === "disk" && this.memory === undefined, "degrade from disk only");
    assert(!cache.isFilesDetached, "files are attached on disk");
    const disk = kv.target;
    const memory = createMemoryKvStore();
    const rows = await copyRows(disk, memory);
    assert((await countRows(memory)) === rows, "the memory index holds every LevelDB row");
    kv.switchTo(memory);
    cache.detachFiles((fileBytes) => Math.floor(fileBytes * cacheBoundShareAfterFault));
    this.memory = memory;
    this.state = "degraded";
    this.reason = fault;
    this.degradedTotal += 1;
    this.logDegraded();
    // The directory's contents are stale from now on; gone, they give a full disk its space back.
    // LevelDB is closed first: a file unlinked while open keeps its blocks until it is closed
    // (reads still iterating it fail once: degraded-cache.md, "Costs while degraded").
    if (this.ownedKv !== undefined) {
      const owned = this.ownedKv;
      this.ownedKv = undefined;
      await owned.close().catch(() => {});
      await this.options.disk?.wipe().catch(() => {});
    }
    this.scheduleProbe();
  }

  private logDegraded(): void {
    const where = this.options.disk === undefined ? "" : ` path=\`${this.options.disk.path}\``;
    this.options.log(
      `cache disk unusable (${this.reason}), serving from the bucket until it recovers.${where}`,
    );
  }

  private scheduleProbe(): void {
    const { disk, clock } = this.options;
    if (disk === undefined || this.isClosed) return;
    this.cancelProbe = clock.setTimer(this.probeIntervalMs, () => {
      this.cancelProbe = undefined;
      disk.probe().then(
        () => this.options.onChain(() => this.rejoin(disk)),
        () => this.scheduleProbe(),
      );
    });
  }

  /** Degraded → disk: a fresh LevelDB holding the memory index (module header). */
  private async rejoin(disk: CacheDisk): Promise<void> {
    if (this.isClosed) return;
    const { kv, cache } = this.options;
    const memory = this.memory;
    assert(this.state === "degraded" && memory !== undefined, "rejoin from degraded only");
    assert(kv.target === memory && cache.isFilesDetached, "degraded: memory KV, no files");
    let opened: OpenedCache | undefined;
    try {
      await disk.wipe();
      opened = await disk.open();
      const rows = await copyRows(memory, opened.kv);
      assert((await countRows(opened.kv)) === rows, "the rejoined LevelDB holds every row");
      const [copied, source] = await Promise.all([
        opened.kv.get(cacheMarkerKey),
        memory.get(cacheMarkerKey),
      ]);
      assert(
        source === undefined || (copied !== undefined && Buffer.compare(copied, source) === 0),
        "the rejoined LevelDB holds the marker",
      );
    } catch (error) {
      const fault = diskFaultOf(error);
      if (fault === undefined) throw error;
      // Still not usable: leave nothing half-copied behind, and look again later.
      await opened?.kv.close().catch(() => {});
      await disk.wipe().catch(() => {});
      this.options.log(`cache disk still unusable (${fault}), staying degraded.`);
      this.scheduleProbe();
      return;
    }
    kv.switchTo(opened.kv);
    cache.attachFiles(opened.segmentFiles, opened.chunkFiles);
    this.ownedKv = opened.kv;
    this.memory = undefined;
    this.state = "disk";
    this.reason = undefined;
    this.rejoinedTotal += 1;
    this.options.log(`cache disk usable again, cache back on disk. path=\`${disk.path}\``);
    // The memory KV is not closed: a read or a checkpoint dump still iterating it finishes there
    // (closing would fail it), and it holds nothing but memory, freed once they are done.
  }

  /** Stops probing and closes the KV this guard owns (LevelDB it opened, or the memory KV). */
  async close(): Promise<void> {
    this.isClosed = true;
    this.cancelProbe?.();
    this.cancelProbe = undefined;
    await this.ownedKv?.close();
    this.ownedKv = undefined;
    await this.memory?.close();
    this.memory = undefined;
  }
}

/** Removes every entry of `dir` (not `dir` itself: it may be a mount point); none is fine. */
export async function wipeDirectory(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT")
      return;
    throw error;
  }
  for (const name of names) await rm(join(dir, name), { recursive: true, force: true });
}
