/**
 * Access tokens (S2-API.md §4.4, docs/design/auth.md): issue, list, revoke, and the lookup that
 * authenticates a request. A token is stored as a `token.put` WAL control entry holding the
 * SHA-256 of its secret, never the secret; a revoke is a `token.remove`. Both are answered once
 * durable. Changes are validated against the durable state with the changes in flight laid over
 * it ("pipelined", as `catalog.ts` does for basins), synchronously, so two concurrent issues of one
 * id cannot both succeed; lookups and listings use the durable view, so nothing a client saw can
 * vanish in a crash.
 */
import type { MetricsService } from "./metrics.js";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import {
  type AccessScope,
  effectiveOperations,
  scopeEscalation,
  streamPrefixOf,
} from "../core/access-scope.js";
import { assert } from "../core/assert.js";
import type { Clock } from "../core/clock.js";
import { invalid, S2Error } from "../core/errors.js";
import {
  accessTokenExpiresAtMsMax,
  accessTokenIdBytesMax,
  accessTokenIdBytesMin,
  accessTokenSecretBytes,
} from "../core/limits.js";
import type { Storage } from "../storage/storage.js";
import type { AccessTokenRecord } from "../storage/wal/entries.js";
import { toS2Error } from "../streamer/streamer.js";
import { type ListOptions, type ListPage, listPage } from "./list.js";

/** Every issued secret starts with this, so that a leaked one is recognizable. */
export const accessTokenSecretPrefix = "tb_at_";

/** A token as clients see it (`AccessTokenInfo`): never its secret or hash. */
export interface AccessTokenInfo {
  readonly id: string;
  readonly scope: AccessScope;
  /** Null: never expires. */
  readonly expiresAtMs: number | null;
  readonly autoPrefixStreams: boolean;
}

/** Who issues a token: its scope and expiry bound the new token's. */
export interface TokenIssuer {
  readonly scope: AccessScope;
  readonly expiresAtMs: number | null;
}

/** Why a token id is not acceptable (1..=96 bytes, no NUL), or undefined. */
export function validateAccessTokenId(id: string): string | undefined {
  const bytes = Buffer.byteLength(id);
  if (bytes < accessTokenIdBytesMin || bytes > accessTokenIdBytesMax) {
    return `access token id must be ${accessTokenIdBytesMin} to ${accessTokenIdBytesMax} bytes. bytes=\`${bytes}\``;
  }
  if (id.includes("\u0000")) return "access token id must not contain NUL";
  return undefined;
}

/** Hex SHA-256 of a secret: what is stored and looked up. */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** Whether two hex digests are equal, compared in constant time. */
export function digestsEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, "hex");
  const right = Buffer.from(b, "hex");
  return left.length === right.length && timingSafeEqual(left, right);
}

function infoOf(record: AccessTokenRecord): AccessTokenInfo {
  return {
    id: record.id,
    scope: record.scope as AccessScope,
    expiresAtMs: record.expiresAtMs,
    autoPrefixStreams: record.autoPrefixStreams,
  };
}

export class AccessTokenService {
  /** In-flight changes by id: a record being put, or null for one being removed (boxed). */
  private readonly pending = new Map<string, { readonly record: AccessTokenRecord | null }>();

  constructor(
    private readonly storage: Storage,
    private readonly clock: Clock,
    /** Counts issue, list and revoke toward `account-ops`, as every other service counts. */
    private readonly metrics: Pick<MetricsService, "recordOp">,
  ) {}

  /**
   * The live token whose secret this is, or undefined for an unknown, revoked or expired one
   * (all 401 to the caller: a client cannot tell them apart, which leaks nothing).
   */
  authenticate(secret: string): AccessTokenInfo | undefined {
    return this.authenticateHash(hashSecret(secret));
  }

  /**
   * `authenticate` by the hash of the secret: what an open session checks again and again, so
   * that a revoke or an expiry ends it (`api/token-watch.ts`).
   */
  authenticateHash(hash: string): AccessTokenInfo | undefined {
    const id = this.storage.state.tokenIdsByHash.get(hash);
    if (id === undefined) return undefined;
    const record = this.storage.state.tokens.get(id);
    if (record === undefined || !digestsEqual(record.secretHash, hash)) return undefined;
    if (record.expiresAtMs !== null && record.expiresAtMs <= this.clock.nowMs()) return undefined;
    return infoOf(record);
  }

  /**
   * Issues a token; resolves with its secret (returned only here) once durable. The new token
   * may not exceed its issuer's scope (403) nor outlive it (a later expiry is clamped: S2 docs,
   * "Expiry time of the requestor's access token will be the default and maximum possible expiry
   * time").
   */
  async issue(
    issuer: TokenIssuer,
    input: {
      readonly id: string;
      readonly scope: AccessScope;
      readonly expiresAtMs?: number | null | undefined;
      readonly autoPrefixStreams: boolean;
    },
  ): Promise<{ readonly accessToken: string }> {
    this.metrics.recordOp("issue-access-token");
    const idReason = validateAccessTokenId(input.id);
    if (idReason !== undefined) throw invalid(idReason);
    if (effectiveOperations(input.scope).size === 0) {
      throw invalid("access token scope must permit at least one operation");
    }
    if (input.autoPrefixStreams && streamPrefixOf(input.scope) === undefined) {
      throw invalid("auto_prefix_streams needs a prefix stream scope");
    }
    const nowMs = this.clock.nowMs();
    let expiresAtMs = input.expiresAtMs ?? issuer.expiresAtMs;
    // Both wires' parsers reject what is not a time; a NaN here would skip every check below
    // and be stored as "never expires" (JSON has no NaN).
    assert(
      expiresAtMs === null || Number.isFinite(expiresAtMs),
      `access token expiry must be finite. expiresAtMs=\`${expiresAtMs}\``,
    );
    if (expiresAtMs !== null && expiresAtMs <= nowMs) {
      throw invalid("access token expiry must be in the future");
    }
    if (expiresAtMs !== null && expiresAtMs > accessTokenExpiresAtMsMax) {
      throw invalid(
        `access token expiry must be at most 9999-12-31T23:59:59.999Z. expiresAtMs=\`${expiresAtMs}\``,
      );
    }
    if (issuer.expiresAtMs !== null) {
      expiresAtMs = Math.min(expiresAtMs ?? issuer.expiresAtMs, issuer.expiresAtMs);
    }
    const escalation = scopeEscalation(input.scope, issuer.scope);
    if (escalation !== undefined) {
      throw new S2Error("permission_denied", `cannot issue a wider scope: ${escalation}`);
    }
    if (this.tokenForChange(input.id) !== undefined) {
      throw new S2Error("resource_already_exists", `access token \`${input.id}\` already exists`);
    }
    const accessToken = `${accessTokenSecretPrefix}${randomBytes(accessTokenSecretBytes).toString("base64url")}`;
    const record: AccessTokenRecord = {
      id: input.id,
      secretHash: hashSecret(accessToken),
      scope: input.scope,
      expiresAtMs,
      autoPrefixStreams: input.autoPrefixStreams,
      createdAtMs: nowMs,
    };
    await this.commit(record.id, record);
    return { accessToken };
  }

  /**
   * A page of live tokens by id (S2-API.md §6.4 rules); `exact` keeps only that id (a scope with
   * an exact token set). Expired tokens are listed until revoked, as S2 lists them.
   */
  list(options: ListOptions & { readonly exact?: string | undefined }): ListPage<AccessTokenInfo> {
    this.metrics.recordOp("list-access-tokens");
    const { exact } = options;
    const records = [...this.storage.state.tokens.values()].filter(
      (record) => exact === undefined || record.id === exact,
    );
    const page = listPage(records, (record) => record.id, options);
    return { items: page.items.map(infoOf), hasMore: page.hasMore };
  }

  /** Revokes a token (404 `access_token_not_found` if unknown); resolves once durable. */
  async revoke(id: string): Promise<AccessTokenInfo> {
    this.metrics.recordOp("revoke-access-token");
    const existing = this.tokenForChange(id);
    if (existing === undefined) {
      throw new S2Error("access_token_not_found", `access token \`${id}\` not found`);
    }
    await this.commit(id, null);
    return infoOf(existing);
  }

  /** The token as it will be once everything in flight is durable. */
  private tokenForChange(id: string): AccessTokenRecord | undefined {
    const pending = this.pending.get(id);
    if (pending !== undefined) return pending.record ?? undefined;
    return this.storage.state.tokens.get(id);
  }

  /** Lays the change over the durable view now and resolves once it is durable. */
  private async commit(id: string, record: AccessTokenRecord | null): Promise<void> {
    const box = { record };
    this.pending.set(id, box);
    try {
      await this.storage.submitControl(
        record === null ? { op: "token.remove", id } : { op: "token.put", token: record },
      );
    } catch (error) {
      throw toS2Error(error);
    } finally {
      if (this.pending.get(id) === box) this.pending.delete(id);
    }
  }
}
