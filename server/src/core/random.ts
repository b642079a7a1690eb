import { randomBytes } from "node:crypto";

/**
 * Randomness is injected so that fault schedules and the simulator replay from a seed. Write ids
 * (which must be unique across processes) come from `bytes`.
 */
export interface Random {
  /** A float in [0, 1). */
  float(): number;
  /** `length` random bytes. */
  bytes(length: number): Uint8Array;
}

/** Cryptographic randomness: the default for production. */
export const systemRandom: Random = {
  float: () => Math.random(),
  bytes: (length) => new Uint8Array(randomBytes(length)),
};

/**
 * A deterministic generator (sfc32) for tests and fault injection: the same seed gives the same
 * sequence. Not for write ids across processes.
 */
export function createSeededRandom(seed: number): Random {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 15; i++) next();
  return {
    float: next,
    bytes(length) {
      const out = new Uint8Array(length);
      for (let i = 0; i < length; i++) out[i] = Math.floor(next() * 256);
      return out;
    },
  };
}
