/**
 * The listener: one port for HTTP/1.1 and HTTP/2 (h2c with prior knowledge, or TLS with ALPN),
 * permissive CORS unless disabled, the ops routes (`/health`, `/ping`, `/metrics`), the web console
 * (`/`, `/console`: `api/console.ts`) and the v1 API (docs/design/api.md "One port, two
 * protocols"), and the `tributary.v1` services over Connect, gRPC and gRPC-web for paths under
 * `/tributary.v1.` (`api/connect/`). Every v1 route and RPC is authenticated and authorized
 * (`auth.ts`, `auth-routes.ts`; docs/design/auth.md) before its handler runs; the ops routes, the
 * console and CORS preflights are not.
 *
 * Fault model: a connection that never sends enough bytes to pick a protocol is closed after
 * `protocolSniffTimeoutMs`; an HTTP/1.1 request whose headers (or body) take longer than
 * `http1HeadersTimeoutMs` (`http1RequestTimeoutMs`) gets a 408 and its connection is closed, and
 * an idle keep-alive connection is closed after `http1KeepAliveTimeoutMs`; a handler that throws
 * gets an error response if nothing was sent yet, else its stream is reset; an `AssertionError` is
 * rethrown (the process crashes). A response sent before its request body was read whole (an error
 * such as 400 `bad_json` for a body over the limit) must reach a client that is still sending:
 * over HTTP/1.1 (plain text or TLS) the connection then closes lingering (FIN, then the rest of
 * the body is discarded for at most `http1LingerBytesMax` bytes or `http1LingerTimeoutMs`, then
 * the socket is closed), since closing with unread bytes sends a reset that can overtake the
 * response; over HTTP/2 the stream of a v1 route is closed with RST_STREAM(NO_ERROR) once the response is complete (RFC 9113
 * §8.1; an RPC's trailers come after its body, and the Connect handler ends its own streams). An
 * HTTP/2 connection quiet for `http2PingIntervalMs` is pinged and closed if the PING is not
 * answered within `http2PingTimeoutMs`: this closes dead peers, and connections that nghttp2 gave
 * up on after a connection error (GOAWAY sent, reading stopped), which Node never closes itself.
 * Past `connectionsMax` open connections, a new one is closed as soon as it is accepted. An
 * HTTP/2 connection with no open stream for `http2SessionIdleTimeoutMs` is sent GOAWAY and
 * closed. Streams per connection, header list size and nghttp2 memory are capped by `http2*`
 * limits.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import {
  createServer as createHttp2Server,
  createSecureServer,
  constants as http2Constants,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from "node:http2";
import { createServer as createNetServer, type Server, type Socket } from "node:net";
import { AssertionError, assert } from "../core/assert.js";
import {
  connectionsMax,
  http1ConnectionsCheckingIntervalMs,
  http1HeadersTimeoutMs,
  http1KeepAliveTimeoutMs,
  http1LingerBytesMax,
  http1LingerTimeoutMs,
  http1RequestTimeoutMs,
  http2ConnectionWindowBytes,
  http2HeaderListBytesMax,
  http2HeaderPairsMax,
  http2PingIntervalMs,
  http2PingTimeoutMs,
  http2SessionIdleTimeoutMs,
  http2SessionMemoryMbMax,
  http2StreamsPerSessionMax,
  http2StreamWindowBytes,
  protocolSniffTimeoutMs,
  s2sFrameBufferBytesMax,
  s2sFrameBufferBytesPerConnectionMax,
  s2sFrameBytesMax,
  s2sFrameStallTimeoutMs,
  sessionsMax,
  sessionTokenCheckIntervalMs,
} from "../core/limits.js";
import type { Service } from "../service/service.js";
import {
  connectPathPrefix,
  connectProcedurePaths,
  createConnectHandler,
} from "./connect/connect-handler.js";
import { type AuthOptions, createAuthenticator } from "./auth.js";
import { authorizeRoute } from "./auth-routes.js";
import { isConsolePath, serveConsole } from "./console.js";
import type { ApiRequest, ApiResponse, RequestContext } from "./http/request-context.js";
import { sendJson } from "./http/request-context.js";
import { type ApiMetrics, createApiMetrics } from "./metrics.js";
import { renderError } from "./render-error.js";
import { FrameBudget } from "./frame-budget.js";
import { matchRoute } from "./router.js";
import { createRoutes } from "./routes.js";
import { SessionSlots } from "./session-slots.js";
import { TokenWatch } from "./token-watch.js";

const http2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface ApiServerOptions {
  readonly service: Service;
  readonly port: number;
  readonly host?: string | undefined;
  /** Send permissive CORS headers (s2-lite's default; `--no-cors` turns it off). */
  readonly cors: boolean;
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  /**
   * How requests are authenticated (docs/design/auth.md). `main.ts` always says; the default,
   * no checks (`--no-auth`), is for in-process tests.
   */
  readonly auth?: AuthOptions | undefined;
  /** HTTP/1.1 timeouts; the defaults are the `http1*` limits. Tests shorten them. */
  readonly http1HeadersTimeoutMs?: number | undefined;
  readonly http1RequestTimeoutMs?: number | undefined;
  readonly http1KeepAliveTimeoutMs?: number | undefined;
  readonly http1ConnectionsCheckingIntervalMs?: number | undefined;
  /** HTTP/2 liveness pings; the defaults are the `http2Ping*` limits. Tests shorten them. */
  readonly http2PingIntervalMs?: number | undefined;
  readonly http2PingTimeoutMs?: number | undefined;
  /** The HTTP/2 idle timeout; the default is `http2SessionIdleTimeoutMs`. Tests shorten it. */
  readonly http2SessionIdleTimeoutMs?: number | undefined;
  /** The S2S partial-frame stall timeout; the default is the limit. Tests shorten it. */
  readonly s2sFrameStallTimeoutMs?: number | undefined;
  /** The cap on open connections; the default is `connectionsMax`. Tests lower it. */
  readonly connectionsMax?: number | undefined;
  /** The cap on open streaming sessions; the default is `sessionsMax`. Tests lower it. */
  readonly sessionsMax?: number | undefined;
  /**
   * The bytes S2S append sessions may hold in frames still arriving, over the server; the default
   * is `s2sFrameBufferBytesMax` (`--max-frame-buffer`). A connection's share is the smaller of this
   * and `s2sFrameBufferBytesPerConnectionMax`.
   */
  readonly s2sFrameBufferBytesMax?: number | undefined;
  /** How often sessions check their token; the default is the limit. Tests shorten it. */
  readonly sessionTokenCheckIntervalMs?: number | undefined;
}

export interface ApiServer {
  readonly port: number;
  readonly metrics: ApiMetrics;
  close(): Promise<void>;
}

const corsHeaders = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
  "access-control-allow-headers": "*",
  "access-control-expose-headers": "*",
  "access-control-max-age": "86400",
};

/** Starts serving; resolves once listening. */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const frameBufferBytesMax = options.s2sFrameBufferBytesMax ?? s2sFrameBufferBytesMax;
  // Else a maximal frame could never be received (`--max-frame-buffer` has this bound).
  assert(frameBufferBytesMax >= s2sFrameBytesMax, "the frame buffer takes a maximal frame");
  const frameBudget = new FrameBudget(
    frameBufferBytesMax,
    Math.min(frameBufferBytesMax, s2sFrameBufferBytesPerConnectionMax),
  );
  const metrics = createApiMetrics(options.service, frameBudget);
  const tokenWatch = new TokenWatch(
    options.service.accessTokens,
    options.sessionTokenCheckIntervalMs ?? sessionTokenCheckIntervalMs,
  );
  const deps = {
    service: options.service,
    metrics,
    tokenWatch,
    s2sFrameStallTimeoutMs: options.s2sFrameStallTimeoutMs ?? s2sFrameStallTimeoutMs,
    frameBudget,
    sessionSlots: new SessionSlots(options.sessionsMax ?? sessionsMax),
  };
  const routes = createRoutes(deps);
  const authenticate = createAuthenticator(options.auth ?? { kind: "open" }, options.service);
  const connectHandler = createConnectHandler(deps, authenticate);
  const sockets = new Set<Socket>();
  /** Each HTTP/1.1 connection's current request, for `lingerWhileBodyArrives`. */
  const http1Requests = new WeakMap<Socket, IncomingMessage>();

  const handle = (request: ApiRequest, response: ApiResponse): void => {
    const isHttp2 = "stream" in request;
    if (!isHttp2) http1Requests.set(request.socket, request);
    if (options.cors) {
      for (const [name, value] of Object.entries(corsHeaders)) response.setHeader(name, value);
    }
    const rawUrl = request.url ?? "/";
    const queryAt = rawUrl.indexOf("?");
    const rawPath = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
    const query = new URLSearchParams(queryAt === -1 ? "" : rawUrl.slice(queryAt + 1));
    const method = request.method ?? "GET";
    if (method === "OPTIONS" && options.cors) {
      response.writeHead(204).end();
      return;
    }
    if (method === "GET" && (rawPath === "/health" || rawPath === "/ping")) {
      const health = options.service.storage.health;
      // A degraded cache still serves every request (from the bucket): 200, with the reason in
      // the body; a 503 would have orchestrators restart a server that a restart cannot help
      // (docs/design/degraded-cache.md).
      const degraded = options.service.storage.cacheDegradedReason;
      response.writeHead(health === "ready" ? 200 : 503, { "content-type": "text/plain" });
      response.end(
        health !== "ready"
          ? `unavailable: ${health}`
          : degraded !== undefined
            ? `degraded: cache disk unusable (${degraded}), serving from the bucket`
            : "OK",
      );
      return;
    }
    if (method === "GET" && rawPath === "/metrics") {
      const text = metrics.render();
      response.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      response.end(text);
      return;
    }
    if ((method === "GET" || method === "HEAD") && isConsolePath(rawPath)) {
      serveConsole(rawPath, method, response).catch((error: unknown) =>
        respondWithError(request, response, error),
      );
      return;
    }
    const startMs = performance.now();
    if (rawPath.startsWith(connectPathPrefix)) {
      // The tributary.v1 services (Connect, gRPC, gRPC-web): their own errors and status codes.
      // Unknown procedures share one label, so that clients cannot grow the metrics.
      const procedure = connectProcedurePaths.has(rawPath) ? rawPath : `${connectPathPrefix}*`;
      const routeName = `RPC ${procedure}`;
      response.once("close", () =>
        metrics.observeRequest(routeName, response.statusCode, performance.now() - startMs),
      );
      connectHandler(request, response);
      return;
    }
    // Not for RPCs: gRPC's trailers follow the end of the response body.
    if (isHttp2) closeHttp2StreamAfterResponse(request);
    let match: ReturnType<typeof matchRoute>;
    try {
      match = matchRoute(routes, method, rawPath);
    } catch (error) {
      respondWithError(request, response, error);
      return;
    }
    if (match.kind !== "found") {
      response.writeHead(match.kind === "not_found" ? 404 : 405, { "content-length": "0" }).end();
      return;
    }
    const routeName = `${match.route.method} /${match.route.pattern.join("/")}`;
    let context: RequestContext;
    try {
      // Before the handler reads the body: a 401 or 403 has no side effect.
      const auth = authenticate(request.headers.authorization);
      const params = authorizeRoute(auth, routeName, request, match.params);
      context = { request, response, params, query, isHttp2, auth };
    } catch (error) {
      respondWithError(request, response, error);
      metrics.observeRequest(routeName, response.statusCode, performance.now() - startMs);
      return;
    }
    match.route
      .handler(context)
      .catch((error: unknown) => respondWithError(request, response, error))
      .finally(() =>
        metrics.observeRequest(routeName, response.statusCode, performance.now() - startMs),
      );
  };

  const http1Timeouts = {
    headersTimeout: options.http1HeadersTimeoutMs ?? http1HeadersTimeoutMs,
    requestTimeout: options.http1RequestTimeoutMs ?? http1RequestTimeoutMs,
    keepAliveTimeout: options.http1KeepAliveTimeoutMs ?? http1KeepAliveTimeoutMs,
    connectionsCheckingInterval:
      options.http1ConnectionsCheckingIntervalMs ?? http1ConnectionsCheckingIntervalMs,
  };
  const http1 = createHttpServer(
    http1Timeouts,
    (request: IncomingMessage, response: ServerResponse) => handle(request, response),
  );
  const lingerOnHttp1 = (socket: Socket): void =>
    lingerWhileBodyArrives(socket, () => http1Requests.get(socket));
  const http2Options = {
    settings: {
      maxConcurrentStreams: http2StreamsPerSessionMax,
      maxHeaderListSize: http2HeaderListBytesMax,
      initialWindowSize: http2StreamWindowBytes,
    },
    maxHeaderListPairs: http2HeaderPairsMax,
    maxSessionMemory: http2SessionMemoryMbMax,
  };
  const http2 = options.tls
    ? createSecureServer(
        { cert: options.tls.cert, key: options.tls.key, allowHTTP1: true, ...http2Options },
        (request, response) => handle(request, response),
      )
    : createHttp2Server(
        http2Options,
        (request: Http2ServerRequest, response: Http2ServerResponse) => handle(request, response),
      );
  const http2Ping = {
    intervalMs: options.http2PingIntervalMs ?? http2PingIntervalMs,
    timeoutMs: options.http2PingTimeoutMs ?? http2PingTimeoutMs,
  };
  const http2IdleTimeoutMs = options.http2SessionIdleTimeoutMs ?? http2SessionIdleTimeoutMs;
  http2.on("session", (session: ServerHttp2Session) => {
    // The connection's window is not a setting: it is raised by a WINDOW_UPDATE of its own.
    session.setLocalWindowSize(http2ConnectionWindowBytes);
    pingWhenQuiet(session, http2Ping);
    closeWhenIdle(session, http2IdleTimeoutMs);
  });

  let listener: Server;
  if (options.tls) {
    // ALPN's HTTP/1.1 connections are served by the TLS server itself, which enforces the same
    // timeouts (with Node's defaults unless set) once it listens.
    Object.assign(http2, http1Timeouts);
    // ALPN's HTTP/1.1 connections close lingering too.
    http2.on("secureConnection", (socket: Socket & { alpnProtocol?: string | false }) => {
      if (socket.alpnProtocol !== "h2") lingerOnHttp1(socket);
    });
    listener = http2 as unknown as Server;
  } else {
    // Node enforces `headersTimeout` and `requestTimeout` only from a timer it starts when the
    // server emits 'listening' (lib/_http_server.js `setupConnectionsTracking`); before that it
    // does not even track its connections. This server never listens (the sniffing listener hands
    // it its sockets), so without this a client that never ends its headers is never closed.
    http1.emit("listening");
    listener = createNetServer((socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      sniffProtocol(socket, (isHttp2) => {
        if (!isHttp2) lingerOnHttp1(socket);
        (isHttp2 ? http2 : http1).emit("connection", socket);
      });
    });
  }
  listener.maxConnections = options.connectionsMax ?? connectionsMax;
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(options.port, options.host ?? "0.0.0.0", () => {
      listener.off("error", reject);
      resolve();
    });
  });
  const address = listener.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  return {
    port,
    metrics,
    close: () =>
      new Promise<void>((resolve) => {
        listener.close(() => resolve());
        tokenWatch.close();
        // Stops the timeout checks started above; the server itself was never listening.
        http1.close();
        http1.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/**
 * Makes Node's close of an HTTP/1.1 connection after a `Connection: close` response linger while
 * the request body is still arriving: Node calls `destroySoon` (end, then destroy once the
 * response is flushed), which closes with unread bytes, and the kernel then answers with a reset
 * that a client still writing its body sees instead of the response. Lingering sends the FIN
 * after the response, reads and discards the rest of the body until the client closes (or ends
 * its side), for at most `http1LingerBytesMax` bytes or `http1LingerTimeoutMs`, then closes.
 */
function lingerWhileBodyArrives(
  socket: Socket,
  currentRequest: () => IncomingMessage | undefined,
): void {
  const destroySoon = socket.destroySoon.bind(socket);
  socket.destroySoon = () => {
    const request = currentRequest();
    if (request === undefined || request.complete || socket.destroyed) {
      destroySoon();
      return;
    }
    // The HTTP parser is done with this connection: what arrives now is discarded unparsed (the
    // parser would pause the socket behind a request that nobody reads).
    socket.removeAllListeners("data");
    let lingeredBytes = 0;
    const close = (): void => {
      socket.destroy();
    };
    const timer = setTimeout(close, http1LingerTimeoutMs);
    socket.once("close", () => clearTimeout(timer));
    socket.once("end", close);
    socket.on("data", (chunk: Buffer) => {
      lingeredBytes += chunk.length;
      if (lingeredBytes > http1LingerBytesMax) close();
    });
    socket.end();
    socket.resume();
    // Node's server stops the socket's handle itself when it pauses the socket (its 'pause'
    // listener) and starts it again on 'resume'; adding a 'data' listener removed both listeners
    // (lib/_http_server.js `unconsume`), and the stream still counts the read it had begun, so
    // `resume` would not start the handle. A plain socket's handle is read by the parser natively
    // and is started again by `unconsume`; a TLS socket's is not (the body was never read).
    const handle = (socket as { _handle?: { reading?: boolean; readStart?: () => number } })
      ._handle;
    if (handle?.reading === false && handle.readStart !== undefined) {
      handle.reading = true;
      handle.readStart();
    }
  };
}

/**
 * Once an HTTP/2 response is complete while its request is not (an error answered before the
 * body was read whole), asks the client to stop sending, without error (RFC 9113 §8.1), and
 * consumes what is buffered: Node destroys a stream closed without error only once its input is
 * consumed, and a handler that gave up on the body no longer reads it.
 */
function closeHttp2StreamAfterResponse(request: Http2ServerRequest): void {
  const { stream } = request;
  stream.once("finish", () => {
    if (stream.closed || stream.readableEnded) return;
    const { state } = stream.state;
    const isClientSending =
      state === http2Constants.NGHTTP2_STREAM_STATE_OPEN ||
      state === http2Constants.NGHTTP2_STREAM_STATE_HALF_CLOSED_LOCAL;
    if (isClientSending) stream.close(http2Constants.NGHTTP2_NO_ERROR);
    stream.resume();
  });
}

/**
 * Pings an HTTP/2 session after `intervalMs` without activity and destroys it if the PING is not
 * answered within `timeoutMs`. After a connection error (e.g. a header block nghttp2 cannot
 * decode) nghttp2 sends GOAWAY and stops reading, and Node neither closes the socket nor emits an
 * event; RFC 9113 §5.4.1 says the connection MUST then be closed. Such a session cannot send the
 * PING (nghttp2 drops it), so it is destroyed here, as is one whose peer is gone.
 */
function pingWhenQuiet(
  session: ServerHttp2Session,
  bounds: { readonly intervalMs: number; readonly timeoutMs: number },
): void {
  let deadline: NodeJS.Timeout | undefined;
  const onQuiet = (): void => {
    if (session.destroyed || deadline !== undefined) return;
    deadline = setTimeout(() => session.destroy(), bounds.timeoutMs);
    const onAnswer = (error: Error | null): void => {
      clearTimeout(deadline);
      deadline = undefined;
      if (error !== null) session.destroy();
      // Node re-arms a fired session timeout only on activity that reaches JavaScript.
      else if (!session.destroyed) session.setTimeout(bounds.intervalMs);
    };
    try {
      // False when too many PINGs are unanswered already: the deadline then decides.
      session.ping(onAnswer);
    } catch {
      // Node refuses a PING on a session it is closing: close it now.
      session.destroy();
    }
  };
  session.setTimeout(bounds.intervalMs);
  session.on("timeout", onQuiet);
  session.once("close", () => {
    clearTimeout(deadline);
    session.off("timeout", onQuiet);
  });
}

/**
 * Closes an HTTP/2 session (GOAWAY with NO_ERROR, then the socket) once it has had no open
 * stream for `idleTimeoutMs`: an idle connection otherwise costs a socket and nghttp2's memory
 * for as long as the client keeps it.
 */
function closeWhenIdle(session: ServerHttp2Session, idleTimeoutMs: number): void {
  let openStreams = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    timer = setTimeout(() => {
      if (!session.closed && !session.destroyed) session.close();
    }, idleTimeoutMs);
  };
  session.on("stream", (stream) => {
    openStreams++;
    clearTimeout(timer);
    stream.once("close", () => {
      openStreams--;
      if (openStreams === 0 && !session.closed && !session.destroyed) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
  arm();
}

/** Reads just enough of a new connection to tell the HTTP/2 preface from HTTP/1.1. */
function sniffProtocol(socket: Socket, onProtocol: (isHttp2: boolean) => void): void {
  let buffered = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), protocolSniffTimeoutMs);
  const onData = (chunk: Buffer): void => {
    buffered = Buffer.concat([buffered, chunk]);
    const compared = Math.min(buffered.length, http2Preface.length);
    const isPrefaceSoFar = buffered
      .subarray(0, compared)
      .equals(http2Preface.subarray(0, compared));
    if (isPrefaceSoFar && buffered.length < http2Preface.length) return;
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("error", onError);
    socket.pause();
    socket.unshift(buffered);
    onProtocol(isPrefaceSoFar);
    // The HTTP/2 session reads the unshifted bytes itself on the next tick (`socket.read()`) and
    // then consumes the socket natively; resuming here would flow them away to no listener and
    // nghttp2 would never see the preface ("bad client magic byte string").
    if (!isPrefaceSoFar) socket.resume();
  };
  const onError = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  socket.on("data", onData);
  socket.on("error", onError);
}

function respondWithError(request: ApiRequest, response: ApiResponse, error: unknown): void {
  if (error instanceof AssertionError) throw error;
  const rendered = renderError(error);
  if (response.headersSent) {
    // Too late for a status: end the exchange so the client sees a failure, not a hang.
    const destroyable = response as {
      destroy?: (error?: Error) => void;
      stream?: { close(code?: number): void };
    };
    if (destroyable.stream !== undefined) destroyable.stream.close(2);
    else destroyable.destroy?.();
    return;
  }
  // Answering before the request body was read whole (too large, bad headers): an HTTP/1.1
  // client would send its next request behind the unread bytes, so end the connection (as hyper).
  const headers: Record<string, string> =
    !("stream" in request) && !request.complete ? { connection: "close" } : {};
  sendJson(response, rendered.status, rendered.body, headers);
}
