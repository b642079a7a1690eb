/**
 * Waiting for a step of a session while the session may end under it (its client left, its
 * token was revoked), without `Promise.race` against a promise that lives as long as the session.
 *
 * Why not `Promise.race([step, sessionEnded])`: each call adds a reaction to `sessionEnded`, and
 * that reaction holds the race's own promise, so the value the race settled with, until
 * `sessionEnded` settles, which for a session that ends normally is never. S2S and SSE read
 * sessions raced each batch they served that way and so kept every batch until they ended: a heap
 * snapshot 0.8 s into a catch-up read found 49 MiB of records held by 52 settled races (issue 12,
 * README "Where the memory goes").
 *
 * Invariant: once the returned promise has settled, nothing reachable from the signals refers to
 * it or to the value it settled with (the abort listener is removed when the step settles; an
 * abort's rejection holds only the signal's reason). What the step's promise keeps alive is the
 * caller's to drop.
 */

/**
 * Settles like `step`, or rejects with the reason of the first of `signals` that aborts first
 * (at once if one has already aborted). `step` goes on either way; its later rejection is
 * handled here, so it is never unhandled.
 */
export function untilAborted<T>(step: Promise<T>, signals: readonly AbortSignal[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const listeners: { signal: AbortSignal; onAbort: () => void }[] = [];
    const stopListening = (): void => {
      for (const { signal, onAbort } of listeners) signal.removeEventListener("abort", onAbort);
      listeners.length = 0;
    };
    step.then(
      (value) => {
        stopListening();
        resolve(value);
      },
      (error: unknown) => {
        stopListening();
        reject(error);
      },
    );
    for (const signal of signals) {
      if (signal.aborted) {
        stopListening();
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        stopListening();
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      listeners.push({ signal, onAbort });
    }
  });
}
