/**
 * The limits of the wire that a client must respect to be accepted (S2-API.md §5.1, §6.1): a
 * request past one of them fails with `invalid`. The server's `core/limits.ts` takes them from here,
 * among its own bounds.
 */

/** Records in one append batch (S2 common/src/caps.rs). */
export const recordBatchCountMax = 1000;
/** Metered bytes of one append batch; also the largest metered size of a single record. */
export const recordBatchBytesMax = 1 << 20;
/** Fixed per-record overhead of the metered size: 8 + 2 × headers + Σ(name + value) + body. */
export const recordMeteredOverheadBytes = 8;
/** Metered bytes per header on top of its name and value. */
export const headerMeteredOverheadBytes = 2;
/** UTF-8 bytes of a fencing token. */
export const fencingTokenBytesMax = 36;
/** Bytes of a stream encryption key (AEGIS-256 and AES-256-GCM), sent base64-encoded. */
export const encryptionKeyBytes = 32;
