/**
 * The typed Tributary client, independent of the platform: the generated Connect services
 * (`account`, `basins`, `streams`) with unary retries, basin- and stream-scoped helpers,
 * pagination as async iterables, and the append and read sessions. `client.ts` (Node) and
 * `browser.ts` create it over their transports; this module imports nothing platform-specific.
 */
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import type { SequencedRecord } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import type { BasinInfo, StreamInfo } from "@tributary/protocol/gen/tributary/v1/config_pb.js";
import { StreamService } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";
import { AppendSession, type AppendSessionOptions } from "./append-session.js";
import { type ReadSessionOptions, readSession } from "./read-session.js";
import { createRetryingTransport, type RetryOptions } from "./retry.js";
import { withUnaryAppendSessions } from "./unary-append-session.js";

/** How to reach the server. */
export interface TributaryClientOptions {
  /** The server's URL, e.g. `http://127.0.0.1:8080`. */
  readonly baseUrl: string;
  /** An access token, sent as `authorization: Bearer <token>` (ignored with `transport`). */
  readonly token?: string;
  /**
   * A transport to use instead of the default one (Node: Connect over HTTP/2 with
   * @connectrpc/connect-node; browser: Connect over `fetch` with @connectrpc/connect-web).
   */
  readonly transport?: Transport;
  /**
   * Retries of unary calls (see `retry.ts` for which failures are retried): backoff and attempts,
   * or `false` for none. Sessions resume or fail on their own and ignore this.
   */
  readonly retry?: RetryOptions | false;
}

/** Filters of a listing. */
export interface ListOptions {
  /** Only names starting with this prefix. */
  readonly prefix?: string;
  /** Only names strictly greater than this one. */
  readonly startAfter?: string;
  /** Page size (at most 1000). */
  readonly pageSize?: number;
}

/** Helpers bound to one stream. */
export interface StreamHandle {
  readonly basin: string;
  readonly stream: string;
  /** The durable tail: the next seq num and the last timestamp. */
  checkTail(): Promise<{ seqNum: bigint; timestamp: bigint }>;
  /** Opens a pipelined append session. */
  appendSession(options?: Omit<AppendSessionOptions, "basin" | "stream">): AppendSession;
  /** Reads records from a seq num on, resuming after disconnects. */
  readSession(
    options: Omit<ReadSessionOptions, "basin" | "stream">,
  ): AsyncGenerator<SequencedRecord, void, undefined>;
}

/** Helpers bound to one basin. */
export interface BasinHandle {
  readonly basin: string;
  /** Every stream of the basin, page after page. */
  listAllStreams(options?: ListOptions): AsyncGenerator<StreamInfo, void, undefined>;
  /** Creates a stream with the basin's defaults. */
  createStream(stream: string): Promise<StreamInfo | undefined>;
  /** Deletes a stream. */
  deleteStream(stream: string): Promise<void>;
  /** Helpers bound to one stream of the basin. */
  stream(stream: string): StreamHandle;
}

/** The client: typed services plus helpers. */
export interface TributaryClient {
  /** The transport every call goes through, with the unary retries applied. */
  readonly transport: Transport;
  /** Basin management (`tributary.v1.AccountService`). */
  readonly account: Client<typeof AccountService>;
  /** Stream management (`tributary.v1.BasinService`). */
  readonly basins: Client<typeof BasinService>;
  /** Records (`tributary.v1.StreamService`). */
  readonly streams: Client<typeof StreamService>;
  /** Helpers bound to one basin. */
  basin(basin: string): BasinHandle;
  /** Every basin, page after page. */
  listAllBasins(options?: ListOptions): AsyncGenerator<BasinInfo, void, undefined>;
  /** Every stream of a basin, page after page. */
  listAllStreams(basin: string, options?: ListOptions): AsyncGenerator<StreamInfo, void, undefined>;
  /** Opens a pipelined append session. */
  appendSession(options: AppendSessionOptions): AppendSession;
  /** Reads records from a seq num on, resuming after disconnects. */
  readSession(options: ReadSessionOptions): AsyncGenerator<SequencedRecord, void, undefined>;
}

/**
 * Pages through a listing: calls `page` with the last name seen until it reports no more.
 */
async function* paginate<T extends { name: string }>(
  options: ListOptions,
  page: (startAfter: string) => Promise<{ items: T[]; hasMore: boolean }>,
): AsyncGenerator<T, void, undefined> {
  let startAfter = options.startAfter ?? "";
  for (;;) {
    const { items, hasMore } = await page(startAfter);
    yield* items;
    const last = items.at(-1);
    if (!hasMore || last === undefined) return;
    startAfter = last.name;
  }
}

/** How append sessions reach the server. */
export type AppendSessionMode =
  /** One bidi `AppendSession` stream, pipelined (needs HTTP/2 full duplex: Node). */
  | "bidi"
  /** Sequential unary `Append` calls (browsers: `fetch` cannot stream a request body). */
  | "unary";

/**
 * Builds the client over `baseTransport`, wrapped with the unary retries of `options.retry`. The
 * Node and browser entries (`client.ts`, `browser.ts`) pick the transport and the append mode.
 * @internal
 */
export function createTributaryClientOver(
  baseTransport: Transport,
  options: { readonly retry?: RetryOptions | false; readonly appendSessions: AppendSessionMode },
): TributaryClient {
  const transport =
    options.retry === false
      ? baseTransport
      : createRetryingTransport(baseTransport, options.retry ?? {});
  const account = createClient(AccountService, transport);
  const basins = createClient(BasinService, transport);
  const streams = createClient(StreamService, transport);
  // The sessions' view of `streams`; `streams` itself stays the generated client.
  const sessionStreams =
    options.appendSessions === "unary" ? withUnaryAppendSessions(streams) : streams;

  const listAllBasins = (list: ListOptions = {}): AsyncGenerator<BasinInfo, void, undefined> =>
    paginate(list, async (startAfter) => {
      const response = await account.listBasins({
        prefix: list.prefix ?? "",
        startAfter,
        ...(list.pageSize !== undefined && { limit: list.pageSize }),
      });
      return { items: response.basins, hasMore: response.hasMore };
    });

  const listAllStreams = (
    basin: string,
    list: ListOptions = {},
  ): AsyncGenerator<StreamInfo, void, undefined> =>
    paginate(list, async (startAfter) => {
      const response = await basins.listStreams({
        basin,
        prefix: list.prefix ?? "",
        startAfter,
        ...(list.pageSize !== undefined && { limit: list.pageSize }),
      });
      return { items: response.streams, hasMore: response.hasMore };
    });

  const streamHandle = (basin: string, stream: string): StreamHandle => ({
    basin,
    stream,
    async checkTail() {
      const { tail } = await streams.checkTail({ basin, stream });
      return { seqNum: tail?.seqNum ?? 0n, timestamp: tail?.timestamp ?? 0n };
    },
    appendSession: (session = {}) =>
      new AppendSession(sessionStreams, { ...session, basin, stream }),
    readSession: (read) => readSession(sessionStreams, { ...read, basin, stream }),
  });

  return {
    transport,
    account,
    basins,
    streams,
    basin: (basin) => ({
      basin,
      listAllStreams: (list) => listAllStreams(basin, list),
      async createStream(stream) {
        return (await basins.createStream({ basin, stream })).info;
      },
      async deleteStream(stream) {
        await basins.deleteStream({ basin, stream });
      },
      stream: (stream) => streamHandle(basin, stream),
    }),
    listAllBasins,
    listAllStreams,
    appendSession: (session) => new AppendSession(sessionStreams, session),
    readSession: (read) => readSession(sessionStreams, read),
  };
}
