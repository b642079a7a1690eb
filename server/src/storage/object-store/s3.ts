/**
 * The object store on S3 or an S3-compatible server (`--bucket B [--path P]`). Create-if-absent
 * is a conditional PUT with `If-None-Match: *`
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
 *
 * Outcomes of a conditional PUT:
 * - 200: "created".
 * - 412 PreconditionFailed: "exists", unless the SDK retried the request: then an earlier attempt
 *   may have created the object and the 412 may answer our own write, so the outcome is unknown
 *   and we throw (the caller reads the key back, as for any thrown error).
 * - 409 ConditionalRequestConflict: another conditional write to the key was in flight and ours
 *   did not apply; retried after a short delay, `conditionalPutAttemptsMax` times in all.
 * - anything else: thrown as `ObjectStoreError`, outcome unknown.
 *
 * Checksums are only computed and validated when an operation requires them, because
 * S3-compatible servers (and moto) do not all accept the SDK's default CRC headers; DeleteObjects,
 * which requires one, also carries Content-MD5 (`withContentMd5`), which they all accept. Listing
 * order is S3's ascending UTF-8 byte order (general-purpose buckets; directory buckets do not
 * order listings and are not supported).
 */
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { assert } from "../../core/assert.js";
import { type Clock, systemClock } from "../../core/clock.js";
import { objectDeleteBatchMax, objectListPageMax } from "../../core/limits.js";
import { ObjectStoreError } from "./errors.js";
import {
  type ByteRange,
  bodyAsBuffer,
  type ObjectBody,
  type ObjectInfo,
  type ObjectListOptions,
  type ObjectListPage,
  type ObjectStore,
} from "./object-store.js";

/** Options of `createS3ObjectStore`. */
export interface S3ObjectStoreOptions {
  readonly bucket: string;
  /**
   * Namespaces every key, like `--path`: key `k` is stored as `<prefix>/k`. Leading and trailing
   * slashes are ignored, so `"p"`, `"p/"` and `"/p/"` are the same namespace.
   */
  readonly prefix?: string | undefined;
  /** An S3-compatible endpoint (the caller passes `AWS_ENDPOINT_URL_S3` here). */
  readonly endpoint?: string | undefined;
  /** Defaults to the SDK's region chain (`AWS_REGION`, profile). */
  readonly region?: string | undefined;
  /** Path-style addressing; defaults to true when `endpoint` is given, as most emulators need. */
  readonly forcePathStyle?: boolean | undefined;
  /** Static credentials or a provider; defaults to the SDK's default credential chain. */
  readonly credentials?: S3ClientConfig["credentials"] | undefined;
  /** A ready client (tests, shared connection pools). Not destroyed by `close`. */
  readonly client?: S3Client | undefined;
  /** Paces the 409 retries; injected so tests and the simulator control time. */
  readonly clock?: Clock | undefined;
}

/** Conditional PUTs answered 409 ConditionalRequestConflict are tried this many times in all. */
export const conditionalPutAttemptsMax = 5;
/** The first wait after a 409; doubled on each further conflict (50, 100, 200, 400 ms). */
export const conditionalPutRetryDelayMs = 50;

/** Creates a store keeping each object as an S3 object in `options.bucket`. */
export function createS3ObjectStore(options: S3ObjectStoreOptions): ObjectStore {
  const bucket = options.bucket;
  const keyPrefix = normalizePrefix(options.prefix);
  const clock = options.clock ?? systemClock;
  const isClientOwned = options.client === undefined;
  const client = options.client ?? new S3Client(clientConfig(options));

  const fullKey = (key: string): string => keyPrefix + key;

  async function headExists(key: string): Promise<boolean> {
    try {
      await client.send(new HeadObjectCommand({ Bucket: bucket, Key: fullKey(key) }));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw new ObjectStoreError(`s3 head failed. key=\`${key}\``, { cause: error });
    }
  }

  return {
    async get(key: string, range?: ByteRange): Promise<Uint8Array | undefined> {
      if (range !== undefined) {
        assertRange(range);
        // S3 cannot express an empty range: it ignores an unsatisfiable `bytes=5-4` and sends
        // the whole object. Existence still has to be answered, so ask with HEAD.
        if (range.start >= range.end) {
          return (await headExists(key)) ? new Uint8Array(0) : undefined;
        }
      }
      try {
        const response = await client.send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: fullKey(key),
            Range: range === undefined ? undefined : `bytes=${range.start}-${range.end - 1}`,
          }),
        );
        const bytes = await response.Body?.transformToByteArray();
        return bytes ?? new Uint8Array(0);
      } catch (error) {
        if (isNotFound(error)) return undefined;
        // 416: the range starts at or past the end of an existing object.
        if (errorName(error) === "InvalidRange" || httpStatus(error) === 416) {
          return new Uint8Array(0);
        }
        throw new ObjectStoreError(`s3 get failed. key=\`${key}\``, { cause: error });
      }
    },

    async putIfAbsent(key: string, body: ObjectBody): Promise<"created" | "exists"> {
      // The SDK sends (and re-sends on its retries) one buffer.
      const bytes = bodyAsBuffer(body);
      let wasRequestRetried = false;
      for (let attempt = 1; ; attempt++) {
        try {
          await client.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: fullKey(key),
              Body: bytes,
              ContentLength: bytes.length,
              IfNoneMatch: "*",
            }),
          );
          return "created";
        } catch (error) {
          wasRequestRetried ||= sdkAttempts(error) > 1;
          if (errorName(error) === "PreconditionFailed" || httpStatus(error) === 412) {
            if (!wasRequestRetried) return "exists";
            throw new ObjectStoreError(
              `s3 conditional put retried then found the key, which may be our own write. key=\`${key}\``,
              { cause: error },
            );
          }
          const isConflict =
            errorName(error) === "ConditionalRequestConflict" || httpStatus(error) === 409;
          if (isConflict && attempt < conditionalPutAttemptsMax) {
            await clock.sleep(conditionalPutRetryDelayMs * 2 ** (attempt - 1));
            continue;
          }
          throw new ObjectStoreError(
            `s3 conditional put failed. key=\`${key}\` attempts=\`${attempt}\``,
            { cause: error },
          );
        }
      }
    },

    async list(prefix: string, options?: ObjectListOptions): Promise<ObjectListPage> {
      const limit = listLimit(options?.limit);
      const startAfter = options?.startAfter;
      let response: ListObjectsV2CommandOutput;
      try {
        response = await client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: fullKey(prefix) === "" ? undefined : fullKey(prefix),
            StartAfter: startAfter === undefined ? undefined : fullKey(startAfter),
            MaxKeys: limit,
          }),
        );
      } catch (error) {
        throw new ObjectStoreError(`s3 list failed. prefix=\`${prefix}\``, { cause: error });
      }
      const objects: ObjectInfo[] = (response.Contents ?? []).map((object) => {
        const key = object.Key ?? "";
        assert(key.startsWith(keyPrefix), "listed key outside the store prefix");
        return { key: key.slice(keyPrefix.length), size: object.Size ?? 0 };
      });
      return { objects, isTruncated: response.IsTruncated === true };
    },

    async delete(keys: readonly string[]): Promise<void> {
      assert(keys.length <= objectDeleteBatchMax, "too many keys in one delete");
      if (keys.length === 0) return;
      const [only] = keys;
      if (keys.length === 1 && only !== undefined) {
        try {
          // S3 answers 204 for a missing key too, so there is no "not found" case to map.
          await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: fullKey(only) }));
        } catch (error) {
          if (isNotFound(error)) return;
          throw new ObjectStoreError(`s3 delete failed. key=\`${only}\``, { cause: error });
        }
        return;
      }
      let errors: readonly { Key?: string | undefined; Code?: string | undefined }[];
      try {
        // Quiet: the answer lists only the keys that failed (a missing key is not a failure).
        const response = await client.send(
          withContentMd5(
            new DeleteObjectsCommand({
              Bucket: bucket,
              Delete: { Objects: keys.map((key) => ({ Key: fullKey(key) })), Quiet: true },
            }),
          ),
        );
        errors = response.Errors ?? [];
      } catch (error) {
        throw new ObjectStoreError(`s3 delete failed. keys=\`${keys.length}\` first=\`${only}\``, {
          cause: error,
        });
      }
      const failed = errors.filter((error) => error.Code !== "NoSuchKey");
      if (failed.length > 0) {
        const first = failed[0]!;
        throw new ObjectStoreError(
          `s3 delete failed for some keys. failed=\`${failed.length}\` keys=\`${keys.length}\` first=\`${first.Key}\` code=\`${first.Code}\``,
        );
      }
    },

    async close(): Promise<void> {
      if (isClientOwned) client.destroy();
    },
  };
}

function clientConfig(options: S3ObjectStoreOptions): S3ClientConfig {
  const config: S3ClientConfig = {
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  };
  if (options.endpoint !== undefined) config.endpoint = options.endpoint;
  if (options.region !== undefined) config.region = options.region;
  if (options.credentials !== undefined) config.credentials = options.credentials;
  return config;
}

/**
 * `command` with a Content-MD5 header: S3 requires an integrity header on DeleteObjects, and with
 * `requestChecksumCalculation: "WHEN_REQUIRED"` the SDK sends only its CRC32 one (aws-sdk-js-v3
 * issues 6819 and 6920), which some S3-compatible servers (MinIO versions, s3proxy, OVH) reject
 * with MissingContentMD5: GC would then never complete a pass there. The body is the serialized
 * XML at the build step.
 */
export function withContentMd5(command: DeleteObjectsCommand): DeleteObjectsCommand {
  command.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      const { body, headers } = request;
      if (headers !== undefined && (typeof body === "string" || body instanceof Uint8Array)) {
        headers["content-md5"] = createHash("md5").update(body).digest("base64");
      }
      return next(args);
    },
    { step: "build", name: "tributaryContentMd5", override: true },
  );
  return command;
}

/** `"/a/b/"` → `"a/b/"`, `""` → `""`: the prefix of every stored key. */
function normalizePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? "").replace(/^\/+|\/+$/g, "");
  return trimmed === "" ? "" : trimmed + "/";
}

function isNotFound(error: unknown): boolean {
  const name = errorName(error);
  return name === "NoSuchKey" || name === "NotFound" || httpStatus(error) === 404;
}

function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

/** The HTTP status of an SDK service error (`$metadata.httpStatusCode`). */
function httpStatus(error: unknown): number | undefined {
  const metadata = sdkMetadata(error);
  return typeof metadata?.httpStatusCode === "number" ? metadata.httpStatusCode : undefined;
}

/** How many HTTP requests the SDK's retry strategy made for one `send`. */
function sdkAttempts(error: unknown): number {
  const metadata = sdkMetadata(error);
  return typeof metadata?.attempts === "number" ? metadata.attempts : 1;
}

function sdkMetadata(error: unknown): { httpStatusCode?: unknown; attempts?: unknown } | undefined {
  if (typeof error !== "object" || error === null || !("$metadata" in error)) return undefined;
  const metadata = error.$metadata;
  return typeof metadata === "object" && metadata !== null ? metadata : undefined;
}

/** A negative or fractional range is a caller bug, not a storage condition. */
function assertRange(range: ByteRange): void {
  assert(Number.isSafeInteger(range.start) && range.start >= 0, "range start is invalid");
  assert(Number.isSafeInteger(range.end) && range.end >= 0, "range end is invalid");
}

function listLimit(limit: number | undefined): number {
  if (limit === undefined) return objectListPageMax;
  assert(Number.isSafeInteger(limit) && limit >= 1, "list limit must be a positive integer");
  return Math.min(limit, objectListPageMax);
}
