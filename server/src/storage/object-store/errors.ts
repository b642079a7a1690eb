/**
 * Errors thrown by object-store implementations. Storage code throws its own internal errors and
 * `service/` wraps them as `S2Error("storage", …)` (STYLE.md "Errors"). A thrown error from the
 * seam always means "outcome unknown": the caller resolves it by reading the key back.
 */

/**
 * An object-store operation failed for a reason other than the outcomes the seam returns as
 * values ("exists", a missing key). The message is lowercase with variables last as
 * key=`value`; the underlying error is attached as `cause` and not repeated in the text.
 */
export class ObjectStoreError extends Error {
  override readonly name: string = "ObjectStoreError";

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
