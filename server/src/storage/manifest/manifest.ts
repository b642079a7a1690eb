/**
 * Manifests: `manifest/<version>` objects, written create-if-absent, one per server start and one
 * per committed checkpoint. Each gives the writer epoch of the server that wrote it, the newest
 * committed checkpoint and the WAL id from which recovery replays. Claiming version v+1 with
 * epoch+1 orders writers; the WAL slot claim (recovery.ts) is what fences the older one; a
 * checkpoint commit that finds its version taken is fenced too. See docs/design/storage.md
 * "Fencing" and docs/design/bottomless.md "The background job".
 */
import { assert } from "../../core/assert.js";
import { manifestClaimAttemptsMax } from "../../core/limits.js";
import type { Random } from "../../core/random.js";
import { manifestKey, manifestPrefix, parseObjectId } from "../object-keys.js";
import type { ObjectStore } from "../object-store/object-store.js";

export interface Manifest {
  readonly version: number;
  readonly writerEpoch: number;
  /** The first WAL id recovery must replay. */
  readonly walStartId: number;
  readonly createdAtMs: number;
  /** Random, per claim (a start's manifest): tells whose claim a version holds (`claimManifest`). */
  readonly claimId?: string | undefined;
  /** The newest committed checkpoint (absent until the first one). */
  readonly checkpoint?: ManifestCheckpoint | undefined;
}

/** A checkpoint a manifest commits: its key, the last WAL id it includes and that id's write id. */
export interface ManifestCheckpoint {
  readonly key: string;
  readonly walId: number;
  /** Hex: a cache whose marker is at `walId` with this write id is of this history. */
  readonly writeId: string;
}

/** Raised when a manifest object does not parse: the bucket is not ours or is corrupt. */
export class ManifestFormatError extends Error {
  override readonly name = "ManifestFormatError";
}

/** Raised when a starting writer keeps losing the race for the next manifest version. */
export class ManifestContendedError extends Error {
  override readonly name = "ManifestContendedError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function decodeManifest(bytes: Uint8Array, version: number): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new ManifestFormatError(`manifest is not JSON. version=\`${version}\``, { cause: error });
  }
  const manifest = value as Partial<Manifest> | null;
  if (
    manifest === null ||
    typeof manifest !== "object" ||
    manifest.version !== version ||
    !Number.isSafeInteger(manifest.writerEpoch) ||
    !Number.isSafeInteger(manifest.walStartId) ||
    (manifest.claimId !== undefined && typeof manifest.claimId !== "string") ||
    (manifest.checkpoint !== undefined &&
      (typeof manifest.checkpoint?.key !== "string" ||
        !Number.isSafeInteger(manifest.checkpoint?.walId) ||
        typeof manifest.checkpoint?.writeId !== "string"))
  ) {
    throw new ManifestFormatError(`malformed manifest. version=\`${version}\``);
  }
  return manifest as Manifest;
}

/** The newest manifest, or undefined for an empty bucket. */
export async function readNewestManifest(
  store: ObjectStore,
  after?: number,
): Promise<Manifest | undefined> {
  let newest: number | undefined;
  let startAfter = after === undefined ? undefined : manifestKey(after);
  for (;;) {
    const page = await store.list(manifestPrefix, { startAfter });
    for (const object of page.objects) {
      const version = parseObjectId(manifestPrefix, object.key);
      if (version !== undefined) newest = version;
    }
    const last = page.objects.at(-1);
    if (!page.isTruncated || last === undefined) break;
    startAfter = last.key;
  }
  if (newest === undefined) return undefined;
  const bytes = await store.get(manifestKey(newest));
  assert(bytes !== undefined, "a listed manifest is never deleted while it is the newest");
  return decodeManifest(bytes, newest);
}

/**
 * The newest manifest after `ours` when a newer writer wrote it (another epoch: epochs only grow
 * with versions), meaning we are fenced; undefined while we are still the writer, as far as the
 * listing shows.
 */
export async function readNewerWriter(
  store: ObjectStore,
  ours: Manifest,
): Promise<Manifest | undefined> {
  const newest = await readNewestManifest(store, ours.version);
  return newest !== undefined && newest.writerEpoch !== ours.writerEpoch ? newest : undefined;
}

/**
 * Writes the next manifest with the next epoch. A lost race (another writer took the version)
 * re-reads and tries again: the last writer to start wins. A "created" is confirmed by reading
 * the version back: a store whose create-if-absent is not atomic under concurrent requests (moto,
 * seen here: two writers started together both got epoch 1, both stayed ready) answers "created"
 * to both, but the object holds one claim, and only its writer takes the version.
 */
export async function claimManifest(
  store: ObjectStore,
  nowMs: () => number,
  random: Random,
): Promise<Manifest> {
  let lastError: unknown;
  for (let attempt = 0; attempt < manifestClaimAttemptsMax; attempt++) {
    let current: Manifest | undefined;
    try {
      current = await readNewestManifest(store);
    } catch (error) {
      if (error instanceof ManifestFormatError) throw error;
      lastError = error;
      continue;
    }
    const next: Manifest = {
      version: (current?.version ?? 0) + 1,
      writerEpoch: (current?.writerEpoch ?? 0) + 1,
      walStartId: current?.walStartId ?? 0,
      createdAtMs: nowMs(),
      claimId: Buffer.from(random.bytes(16)).toString("hex"),
      checkpoint: current?.checkpoint,
    };
    try {
      const key = manifestKey(next.version);
      const result = await store.putIfAbsent(key, encoder.encode(JSON.stringify(next)));
      if (result !== "created") continue;
      const held = await store.get(key);
      if (held !== undefined && decodeManifest(held, next.version).claimId === next.claimId) {
        return next;
      }
      // Another writer's claim holds the version: claim the next one.
    } catch (error) {
      // Ambiguous: if it applied, the next attempt reads it as the newest and claims past it,
      // which only skips an epoch.
      lastError = error;
    }
  }
  throw new ManifestContendedError(
    `could not claim a manifest. attempts=\`${manifestClaimAttemptsMax}\``,
    {
      cause: lastError,
    },
  );
}

/**
 * Commits a checkpoint: writes the manifest version after `current` (ours) with our epoch.
 * Returns the new manifest, or "fenced" when a newer writer holds that version or a newer one.
 * An error leaves the outcome unknown; the caller retries later with a newer checkpoint (if this
 * attempt landed, the next one finds its version taken by... us: hence the read-back).
 */
export async function commitCheckpointManifest(
  store: ObjectStore,
  current: Manifest,
  checkpoint: ManifestCheckpoint,
  nowMs: number,
): Promise<Manifest | "fenced"> {
  const newest = await readNewestManifest(store, current.version);
  if (newest !== undefined && newest.writerEpoch !== current.writerEpoch) return "fenced";
  // A version of our own epoch past `current` is an earlier attempt of ours whose answer was
  // lost: build on it (it names an older checkpoint; this one supersedes it).
  const base = newest ?? current;
  const next: Manifest = {
    version: base.version + 1,
    writerEpoch: current.writerEpoch,
    walStartId: checkpoint.walId + 1,
    createdAtMs: nowMs,
    checkpoint,
  };
  const result = await store.putIfAbsent(
    manifestKey(next.version),
    encoder.encode(JSON.stringify(next)),
  );
  if (result === "created") {
    // A version number a newer writer's GC deleted can be created again by a stalled PUT: only a
    // manifest that is still the newest commits.
    return (await readNewerWriter(store, next)) !== undefined ? "fenced" : next;
  }
  // Who holds the version: read that very key (a listing may be torn and hide it; a GET is not).
  const takenBytes = await store.get(manifestKey(next.version));
  // Gone already: only a newer writer's GC deletes versions (below its own), so we are fenced.
  if (takenBytes === undefined) return "fenced";
  const taken = decodeManifest(takenBytes, next.version);
  if (taken.writerEpoch !== current.writerEpoch) return "fenced";
  // An earlier attempt of ours whose answer was lost: it committed this checkpoint, or an older
  // one that this one supersedes.
  const same = taken.checkpoint?.key === checkpoint.key;
  return same ? taken : commitCheckpointManifest(store, taken, checkpoint, nowMs);
}
