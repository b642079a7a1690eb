/**
 * An object store that wraps any other and injects faults, for fault tests and the simulator
 * (after slatedb's `FailingObjectStore` and its `Toxic`s). Every decision comes from the injected
 * `Random` and every delay from the injected `Clock`, so a seed replays the same faults.
 *
 * Fault kinds, per call:
 * - `failBeforeApply`: throws; the inner store is not touched.
 * - `failAfterApply`: the operation runs on the inner store, then the call throws. This is the
 *   ambiguous case a real store produces when a response is lost: the write happened, but the
 *   caller saw an error. A batch delete applies a random prefix of its keys (S3's DeleteObjects
 *   answers per key, so any subset may go).
 * - `timeout`: hangs for `timeoutMs`, then throws without applying (a request that never
 *   reached the store).
 * - `lateSuccess`: throws at once, then applies the operation after a delay: a request the
 *   caller gave up on that still lands, possibly after the caller retried or moved on.
 * - `tornList` (list only): omits a random non-empty suffix of the page and claims it is the
 *   last (`isTruncated: false`). It is the worst listing for a caller that trusts
 *   `isTruncated`: recovery scanning for the newest manifest would see an older one. Real S3
 *   listings are strongly consistent, so this models racing writers and buggy
 *   S3-compatible servers, and checks that callers confirm what a listing implies.
 *
 * Independently of the fault, `latencyMs` adds a uniform delay before each call, and a stall
 * (`setStalled(true)`) holds every call that starts until `setStalled(false)`.
 * Thrown faults are `InjectedFault`, a subclass of `ObjectStoreError`, so code under test
 * handles them like real store errors while tests can tell them apart.
 */
import { assert, assertNever } from "../../core/assert.js";
import type { Clock } from "../../core/clock.js";
import { segmentPutTimeoutMs } from "../../core/limits.js";
import type { Random } from "../../core/random.js";
import { ObjectStoreError } from "./errors.js";
import {
  bodyCopy,
  type ByteRange,
  type ObjectBody,
  type ObjectListOptions,
  type ObjectListPage,
  type ObjectStore,
} from "./object-store.js";

/** The operations of the `ObjectStore` seam that can fault (`close` never does). */
export type ObjectStoreOp = "get" | "putIfAbsent" | "list" | "delete";

/** What an injected fault does; see the module header. */
export type FaultKind =
  | "failBeforeApply"
  | "failAfterApply"
  | "timeout"
  | "lateSuccess"
  | "tornList";

const objectStoreOps: readonly ObjectStoreOp[] = ["get", "putIfAbsent", "list", "delete"];
/** Also the order in which one uniform draw is mapped onto the probabilities. */
const faultKinds: readonly FaultKind[] = [
  "failBeforeApply",
  "failAfterApply",
  "timeout",
  "lateSuccess",
  "tornList",
];

/** The probability of each fault kind per call; they must sum to at most 1. */
export type FaultProbabilities = { readonly [Kind in FaultKind]?: number };

/** One call, as shown to a `decide` function. */
export interface FaultCall {
  readonly op: ObjectStoreOp;
  /** The key, or the prefix for `list`. */
  readonly key: string;
  /** How many calls of this op came before this one (0 for the first). */
  readonly callIndex: number;
}

/** A closed interval of milliseconds, drawn uniformly. */
export interface DelayRangeMs {
  readonly min: number;
  readonly max: number;
}

/** The fault settings; replaced as a whole by `setFaults`. */
export interface FaultSettings {
  /** Fault probabilities for every op (`tornList` only affects `list`). */
  readonly probabilities?: FaultProbabilities;
  /** Per-op probabilities, replacing `probabilities` for that op. */
  readonly probabilitiesByOp?: { readonly [Op in ObjectStoreOp]?: FaultProbabilities };
  /**
   * Decides each call instead of the probabilities, e.g. "fail the third put": a kind, or
   * `undefined` for no fault. Consumes no randomness.
   */
  readonly decide?: (call: FaultCall) => FaultKind | undefined;
  /** Delay added before every call. */
  readonly latencyMs?: DelayRangeMs;
  /** How long a `timeout` fault hangs. */
  readonly timeoutMs?: number;
  /** How long after the throw a `lateSuccess` fault applies its operation. */
  readonly lateSuccessDelayMs?: DelayRangeMs;
}

/**
 * Callbacks at exact points of a put, so crash tests can kill the process there. A put whose
 * fault kind means it never applies calls neither.
 */
export interface FaultHooks {
  /** Just before the write reaches the inner store. */
  beforePut?(key: string): void | Promise<void>;
  /** Just after the inner store created the object (not on "exists"). */
  afterPutApplied?(key: string): void | Promise<void>;
}

/** Options of `createFaultyObjectStore`. */
export interface FaultyObjectStoreOptions {
  readonly random: Random;
  readonly clock: Clock;
  readonly faults?: FaultSettings;
  readonly hooks?: FaultHooks;
}

/** What the wrapper has seen and done so far. */
export interface FaultyCounters {
  /** Calls per op, counted on entry (stalled calls included). */
  readonly calls: Readonly<Record<ObjectStoreOp, number>>;
  /** Puts that created an object in the inner store, including late and fail-after-apply ones. */
  readonly putsApplied: number;
  /** Faults injected per kind. */
  readonly faults: Readonly<Record<FaultKind, number>>;
}

/** An `ObjectStore` with controls for injecting faults. */
export interface FaultyObjectStore extends ObjectStore {
  /** The wrapped store, to inspect the true state behind the faults. */
  readonly inner: ObjectStore;
  /** Whether calls are being held; see `setStalled`. */
  readonly isStalled: boolean;
  /** Replaces the fault settings; affects calls that start afterwards. */
  setFaults(settings: FaultSettings): void;
  /** Replaces the hooks. */
  setHooks(hooks: FaultHooks): void;
  /** While stalled, every call that starts waits (before anything else) until un-stalled. */
  setStalled(isStalled: boolean): void;
  /** A snapshot of the counters. */
  counters(): FaultyCounters;
  /**
   * Resolves when every late-success operation scheduled so far has run. With a manual clock,
   * advance it past `lateSuccessDelayMs.max` first.
   */
  whenLateOpsSettled(): Promise<void>;
}

/** The error every injected fault throws. */
export class InjectedFault extends ObjectStoreError {
  override readonly name: string = "InjectedFault";

  constructor(
    readonly kind: FaultKind,
    readonly op: ObjectStoreOp,
    readonly key: string,
  ) {
    super(`injected fault. kind=\`${kind}\` op=\`${op}\` key=\`${key}\``);
  }
}

/**
 * Longer than any caller waits for one object-store call (the longest is a segment PUT), so the
 * caller's own timeout fires first, as it would against a hung server.
 */
export const faultTimeoutMsDefault = 2 * segmentPutTimeoutMs;
/** Late writes land anywhere up to twice a caller's timeout: before and after its retries. */
export const faultLateSuccessDelayMsDefault: DelayRangeMs = {
  min: 0,
  max: 2 * segmentPutTimeoutMs,
};

/** Wraps `inner` with faults drawn from `options.random` and timed by `options.clock`. */
export function createFaultyObjectStore(
  inner: ObjectStore,
  options: FaultyObjectStoreOptions,
): FaultyObjectStore {
  const { random, clock } = options;
  let settings: FaultSettings = {};
  let hooks: FaultHooks = options.hooks ?? {};
  let stallRelease: { promise: Promise<void>; resolve: () => void } | undefined;
  const calls: Record<ObjectStoreOp, number> = { get: 0, putIfAbsent: 0, list: 0, delete: 0 };
  const faults: Record<FaultKind, number> = {
    failBeforeApply: 0,
    failAfterApply: 0,
    timeout: 0,
    lateSuccess: 0,
    tornList: 0,
  };
  let putsApplied = 0;
  /** Late operations not yet run: their timer's cancel function and their completion. */
  const lateOps = new Map<Promise<void>, { cancel: () => void; settle: () => void }>();

  function setFaults(next: FaultSettings): void {
    for (const op of objectStoreOps) {
      const probabilities = next.probabilitiesByOp?.[op] ?? next.probabilities ?? {};
      let sum = 0;
      for (const kind of faultKinds) {
        const p = probabilities[kind] ?? 0;
        assert(p >= 0 && p <= 1, `fault probability must be in [0, 1]: ${op}.${kind}`);
        sum += p;
      }
      assert(sum <= 1 + 1e-9, `fault probabilities sum to more than 1: ${op}`);
    }
    for (const range of [next.latencyMs, next.lateSuccessDelayMs]) {
      if (range !== undefined) assert(0 <= range.min && range.min <= range.max, "bad delay range");
    }
    assert(next.timeoutMs === undefined || next.timeoutMs >= 0, "timeoutMs must be >= 0");
    settings = next;
  }
  setFaults(options.faults ?? {});

  function drawDelayMs(range: DelayRangeMs): number {
    return range.min + random.float() * (range.max - range.min);
  }

  /** One decision per call; with probabilities, exactly one draw so that seeds replay. */
  function decide(call: FaultCall): FaultKind | undefined {
    if (settings.decide !== undefined) {
      const kind = settings.decide(call);
      assert(kind !== "tornList" || call.op === "list", "tornList only applies to list");
      return kind;
    }
    const probabilities = settings.probabilitiesByOp?.[call.op] ?? settings.probabilities ?? {};
    const draw = random.float();
    let cumulative = 0;
    for (const kind of faultKinds) {
      if (kind === "tornList" && call.op !== "list") continue;
      cumulative += probabilities[kind] ?? 0;
      if (draw < cumulative) return kind;
    }
    return undefined;
  }

  async function waitWhileStalled(): Promise<void> {
    while (stallRelease !== undefined) await stallRelease.promise;
  }

  function scheduleLate(apply: () => Promise<unknown>, range: DelayRangeMs): void {
    let settle = (): void => {};
    const done = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const cancel = clock.setTimer(drawDelayMs(range), () => {
      // The caller was told the call failed, so the late outcome, even an error, has no one to
      // report to: that silence is the point of this fault.
      apply()
        .catch(() => {})
        .finally(() => {
          lateOps.delete(done);
          settle();
        });
    });
    lateOps.set(done, { cancel, settle });
  }

  /**
   * Runs one call under the current settings. `detach` makes an `apply` safe to run after the
   * call returned (copying what the caller may reuse); `tear` makes a torn list page; `partial`
   * is what `failAfterApply` applies when that is less than the whole call.
   */
  async function run<T>(
    op: ObjectStoreOp,
    key: string,
    apply: () => Promise<T>,
    variants: {
      detach?: () => () => Promise<T>;
      tear?: (result: T) => T;
      partial?: () => Promise<unknown>;
    } = {},
  ): Promise<T> {
    const callIndex = calls[op]++;
    await waitWhileStalled();
    // A call runs under the settings in force when it started (`setFaults` documents this).
    const current = settings;
    const kind = decide({ op, key, callIndex });
    if (current.latencyMs !== undefined) await clock.sleep(drawDelayMs(current.latencyMs));
    if (kind === undefined) return apply();
    faults[kind]++;
    switch (kind) {
      case "failBeforeApply":
        throw new InjectedFault(kind, op, key);
      case "failAfterApply":
        await (variants.partial ?? apply)();
        throw new InjectedFault(kind, op, key);
      case "timeout":
        await clock.sleep(current.timeoutMs ?? faultTimeoutMsDefault);
        throw new InjectedFault(kind, op, key);
      case "lateSuccess":
        scheduleLate(
          variants.detach?.() ?? apply,
          current.lateSuccessDelayMs ?? faultLateSuccessDelayMsDefault,
        );
        throw new InjectedFault(kind, op, key);
      case "tornList": {
        assert(variants.tear !== undefined, "tornList only applies to list");
        return variants.tear(await apply());
      }
      default:
        return assertNever(kind);
    }
  }

  return {
    inner,

    get isStalled(): boolean {
      return stallRelease !== undefined;
    },

    get(key: string, range?: ByteRange): Promise<Uint8Array | undefined> {
      return run("get", key, () => inner.get(key, range));
    },

    putIfAbsent(key: string, bytes: ObjectBody): Promise<"created" | "exists"> {
      const applyPut = async (payload: ObjectBody): Promise<"created" | "exists"> => {
        await hooks.beforePut?.(key);
        const outcome = await inner.putIfAbsent(key, payload);
        if (outcome === "created") {
          putsApplied++;
          await hooks.afterPutApplied?.(key);
        }
        return outcome;
      };
      return run("putIfAbsent", key, () => applyPut(bytes), {
        // A late write runs after the caller saw the failure and may have reused its buffer.
        detach: () => {
          const copy = bodyCopy(bytes);
          return () => applyPut(copy);
        },
      });
    },

    list(prefix: string, listOptions?: ObjectListOptions): Promise<ObjectListPage> {
      return run("list", prefix, () => inner.list(prefix, listOptions), {
        tear: (page) => {
          if (page.objects.length === 0) return page;
          const kept = Math.floor(random.float() * page.objects.length);
          return { objects: page.objects.slice(0, kept), isTruncated: false };
        },
      });
    },

    delete(keys: readonly string[]): Promise<void> {
      // One decision per batch, keyed by its first key; a copy, since a late delete runs after
      // the caller may have reused its array.
      const batch = [...keys];
      if (batch.length === 0) return Promise.resolve(); // no request, so no fault to draw
      return run("delete", batch[0] ?? "", () => inner.delete(batch), {
        partial: () => inner.delete(batch.slice(0, 1 + Math.floor(random.float() * batch.length))),
      });
    },

    async close(): Promise<void> {
      // Late operations that have not run never will: allowed, since their callers saw errors.
      for (const { cancel, settle } of lateOps.values()) {
        cancel();
        settle();
      }
      lateOps.clear();
      await inner.close();
    },

    setFaults,

    setHooks(next: FaultHooks): void {
      hooks = next;
    },

    setStalled(isStalled: boolean): void {
      if (isStalled && stallRelease === undefined) {
        let resolve = (): void => {};
        const promise = new Promise<void>((r) => {
          resolve = r;
        });
        stallRelease = { promise, resolve };
      } else if (!isStalled && stallRelease !== undefined) {
        stallRelease.resolve();
        stallRelease = undefined;
      }
    },

    counters(): FaultyCounters {
      return { calls: { ...calls }, putsApplied, faults: { ...faults } };
    },

    async whenLateOpsSettled(): Promise<void> {
      while (lateOps.size > 0) await Promise.all(lateOps.keys());
    },
  };
}
