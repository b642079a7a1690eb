/**
 * Ends the sessions of an access token once it is revoked or has expired (issue 14). A request is
 * authenticated when it starts, but a session (S2S append or read, SSE, an RPC session) can
 * outlive its token by hours. Each session opened with an issued token takes a lease here; every
 * `sessionTokenCheckIntervalMs` the watch looks each leased token up again (by the hash of its
 * secret, as `auth.ts` did at the start) and aborts the lease's signal with 401 `authn` when the
 * token is gone or expired. The session then ends as on any other error after its start: the acks
 * of inputs already submitted, then a terminal frame, an SSE `error` event or an RPC error.
 *
 * Fault model: the look-up runs on a timer, so a session ends at most one interval after its
 * token stops being valid, plus the time its own end takes (an append session still writes the
 * acks of the inputs it submitted before). Sessions of the root token and of a `--no-auth` server
 * take no lease. Leases are released when their session ends, so the set is bounded by the open
 * sessions; the timer runs only while there is a lease.
 */
import { S2Error } from "../core/errors.js";
import type { AccessTokenService } from "../service/access-tokens.js";
import type { Principal } from "./auth.js";

/** A session's hold on its token: `signal` aborts (with 401 `authn`) once the token is not live. */
export interface TokenLease {
  readonly signal: AbortSignal;
  /** The session is over: stop watching. Idempotent. */
  release(): void;
}

interface Lease {
  readonly controller: AbortController;
  readonly secretHash: string;
}

export class TokenWatch {
  private readonly leases = new Set<Lease>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly accessTokens: Pick<AccessTokenService, "authenticateHash">,
    private readonly checkIntervalMs: number,
  ) {}

  /** Watches `principal`'s token for one session. */
  lease(principal: Principal): TokenLease {
    const controller = new AbortController();
    const { secretHash } = principal;
    if (secretHash === undefined) return { signal: controller.signal, release: () => {} };
    const lease: Lease = { controller, secretHash };
    this.leases.add(lease);
    this.timer ??= setInterval(() => this.check(), this.checkIntervalMs).unref();
    return {
      signal: controller.signal,
      release: () => {
        this.leases.delete(lease);
        this.stopIfIdle();
      },
    };
  }

  /** Stops the timer; open leases are no longer checked (the server is closing). */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    for (const lease of this.leases) {
      if (this.accessTokens.authenticateHash(lease.secretHash) !== undefined) continue;
      this.leases.delete(lease);
      lease.controller.abort(new S2Error("authn", "access token revoked or expired"));
    }
    this.stopIfIdle();
  }

  private stopIfIdle(): void {
    if (this.leases.size === 0) this.close();
  }
}
