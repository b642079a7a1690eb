/**
 * Every limit in the server, as a named constant with its source. Queues, maps, buffers and loops
 * in `server/src` take their bounds from here; configuration knobs default from here.
 */
// The limits a client must respect too are the protocol package's (the wire limits).
import * as wire from "@tributary/protocol";
import { assert } from "./assert.js";

// Names and tokens (S2 common/src/caps.rs, spec/S2-API.md §6.1).
export const basinNameLengthMin = 8;
export const basinNameLengthMax = 48;
export const streamNameLengthMin = 1;
export const streamNameLengthMax = 512;
export const fencingTokenBytesMax = wire.fencingTokenBytesMax;
export const requestTokenBytesMax = 36;

// Records (S2-API.md §5.1).
export const recordBatchCountMax = wire.recordBatchCountMax;
/** Also the largest metered size of a single record. */
export const recordBatchBytesMax = wire.recordBatchBytesMax;
/** Fixed per-record overhead of the metered size formula. */
export const recordMeteredOverheadBytes = wire.recordMeteredOverheadBytes;
/** Metered bytes per header on top of its name and value. */
export const headerMeteredOverheadBytes = wire.headerMeteredOverheadBytes;

// Encryption at rest (S2-API.md §3.1, §5.3, §6.7).
/** The `S2-Encryption-Key` header after trimming: 1..=44 characters (base64 of 32 bytes). */
export const encryptionKeyHeaderLengthMax = 44;
/**
 * Highest seq num an encrypted record of an `aes-256-gcm` stream may get (S2 lite: 2^32 messages
 * per stream). Its 96-bit nonces are random, so one key must seal at most 2^32 records to keep
 * the chance of a nonce collision below 2^-32 (NIST SP 800-38D §8.3); AEGIS-256 has no such limit.
 */
export const aes256GcmSeqNumMax = 2 ** 32 - 1;

// Encryption off the event loop (issue 12: no request blocks the loop for more than 10 ms).
/**
 * Worker threads that encrypt and decrypt record batches (`core/record-crypto-pool.ts`), started
 * on first use. Measured on this project's 2-core VM (`bench/encryption-loop-bench.ts`): AEGIS-256,
 * pure TypeScript, costs 11–13 ms per MiB plus ~2–15 µs per record (a 1 MiB batch of 1,000
 * records: 15–26 ms); AES-256-GCM 1–3 ms per MiB plus ~10–15 µs per record (node:crypto's set-up
 * per call), so its batch of 1,000 small records takes 12–16 ms too. Two workers keep a 1 MiB
 * batch off the loop with a second one under way; more would only contend with the loop and the
 * flusher for the same two cores.
 */
export const recordCryptoWorkersMax = 2;
/**
 * A batch of at most this many envelope bytes and `recordCryptoInlineRecordsMax` records is
 * encrypted or decrypted on the loop: ~1 ms of AEGIS-256 at most (measured 0.95 ms), while a hop to
 * a worker adds 0.1–0.6 ms to the batch's latency (measured at 16–64 records).
 */
export const recordCryptoInlineBytesMax = 64 << 10;
/** See `recordCryptoInlineBytesMax`: 16 small records cost ~0.25 ms on the loop (measured). */
export const recordCryptoInlineRecordsMax = 16;
/**
 * Envelope bytes of the jobs waiting for a worker, at most; a job beyond it runs on the loop
 * (overload degrades to the behaviour before the pool rather than queueing without bound). The
 * appends that can wait are already bounded by `appendInflightBytesMax`, matched here.
 */
export const recordCryptoQueueBytesMax = 64 * recordBatchBytesMax;

// Listing (S2-API.md §6.4).
export const listLimitMax = 1000;

// Write path (ours; tuned by `make bench`).
/** Metered bytes accepted but not yet durable, across all streams (s2-lite default: 128 MiB). */
export const appendInflightBytesMax = 64 * recordBatchBytesMax;
/** A flush seals a segment once this many bytes are pending, without waiting for the timer. */
export const segmentBytesTarget = 8 << 20;
/**
 * Segment PUTs in flight at once (docs/design/storage.md "The PUT window"). One at a time capped a
 * writer at one segment per store round trip: against a store that answers in 50 ± 20 ms (S3
 * Standard's range), one stream did 88.5 MiB/s, ack p50 130 ms at 100 MiB/s; with four, 129.8
 * MiB/s and 71.6 ms (`bench/engine-bench.ts --only s3-latency`). A protocol constant, not a
 * setting: a starting writer tombstones this many ids after its fence, which must cover every
 * earlier writer's window.
 */
export const walPutsInFlightMax = 4;
/**
 * A segment starts while other PUTs are still in flight only once this much is pending (or a
 * segment's worth): a smaller one waits for a PUT to end, as with one PUT at a time, so a light
 * load does not pay a PUT per interval (S3 bills per request; moto spends CPU per request).
 * Measured (bench/bottomless-bench.ts, moto, maintenance off, 2 rounds): starting one at every
 * interval regardless, ack p50 at 10 MiB/s 32.3 ms with moto at 10.3 CPU s per 12 s, closed-loop
 * 79.0 MiB/s; with 1 MiB, 19.4 ms, 7.2 s, 65.2 MiB/s; with 256 KiB, 16.9 ms, 7.5 s, 70.8 MiB/s.
 * A 50 ± 20 ms store still fills the window: 164 MiB/s, p50 72 ms at 100 MiB/s.
 */
export const walPipelinedFlushBytesMin = 256 << 10;
/** Default group-commit interval (s2-lite: 5 ms in memory/local, 50 ms on a bucket). */
export const flushIntervalMsDefault = 5;
export const flushIntervalMsMax = 10_000;
/** One segment PUT that has not answered by then is abandoned and retried. */
export const segmentPutTimeoutMs = 10_000;
/** Each retry doubles the timeout, this many times at most (10 s → 160 s). */
export const segmentPutTimeoutDoublingsMax = 4;
/** Backoff between retries of a failed segment PUT. */
export const segmentPutRetryDelayMsMin = 10;
export const segmentPutRetryDelayMsMax = 1_000;
/** Starting writers that keep losing the manifest race give up after this many tries. */
export const manifestClaimAttemptsMax = 100;
/** While fencing, a writer replays at most this many WAL segments written by others. */
export const walClaimAttemptsMax = 10_000;
/** How often an idle writer looks for a newer manifest (to stop serving when fenced). */
export const manifestPollIntervalMs = 5_000;
/** Flag bounds of the background job (docs/design/bottomless.md): a week, a day, 1 TiB. */
export const gcGraceMsMax = 7 * 86_400_000;
export const checkpointIntervalMsMax = 86_400_000;
export const checkpointWalBytesMax = 2 ** 40;

// Object storage listing (S3 ListObjectsV2 max-keys).
export const objectListPageMax = 1000;
// Keys one object-store delete takes (S3 DeleteObjects' limit): GC deletes in batches, one
// request per batch rather than one per object.
export const objectDeleteBatchMax = 1000;

// Segment format (docs/design/storage.md).
/** A segment never exceeds this, so a reader can bound its allocation before decoding. */
export const segmentBytesMax = 2 * segmentBytesTarget + recordBatchBytesMax * 2;

// A degraded cache (docs/design/degraded-cache.md).
/**
 * How often a degraded cache checks whether its disk can take writes again: a `statfs` and a
 * small file written and unlinked, cheap enough every few seconds; the reads served from the
 * bucket meanwhile cost a range GET each, so waiting much longer than a few seconds after space
 * returns costs more than the probes.
 */
export const cacheDiskProbeIntervalMs = 5_000;
/**
 * The free bytes a rejoin needs: LevelDB's log and memtable flush (a 64 MiB write buffer, so up
 * to twice that while a flush runs), the index copied back, and some segment files before
 * eviction catches up. On a smaller filesystem `cacheDiskFreeShareMin` of it is enough.
 */
export const cacheDiskFreeBytesMin = 256 << 20;
/**
 * The share of the filesystem that must be free to rejoin when that is less than
 * `cacheDiskFreeBytesMin`: a quarter leaves room for the index and a few files on a small disk,
 * while a disk still nearly full (the cause of the fault) does not pass.
 */
export const cacheDiskFreeShareMin = 0.25;
/** The probe file's size: one page, enough to find a read-only or failing disk. */
export const cacheDiskProbeBytes = 4096;
/**
 * After a fault, the cache's file bound becomes at most this share of the bytes its files held
 * when the disk failed: a `--cache-size` larger than the disk would otherwise fill it again after
 * every rejoin (a flap every probe interval, each copying the index twice).
 */
export const cacheBoundShareAfterFault = 0.5;
/** Index rows per LevelDB batch when a rejoin copies the memory index back (~4096 × 50 B). */
export const cacheRejoinRowsPerBatch = 4096;

assert(cacheDiskFreeShareMin > 0 && cacheDiskFreeShareMin < 1, "a share of the disk");
assert(cacheBoundShareAfterFault > 0 && cacheBoundShareAfterFault < 1, "a fault lowers the bound");

// Reads.
/** Records per catch-up batch read from the cache (S2: a batch is ≤ 1000 records / 1 MiB). */
export const readBatchCountMax = recordBatchCountMax;
export const readBatchBytesMax = recordBatchBytesMax;
/**
 * A follower more than this many read batches (≤ `readBatchCountMax` records / `readBatchBytesMax`
 * each) behind is cut off to catch up from storage (S2 lite's FOLLOWER_MAX_LAG, counted in read
 * batches so that one flush of many small appended batches does not cut off a reader at once).
 */
export const followerLagBatchesMax = 25;

assert(appendInflightBytesMax >= recordBatchBytesMax, "one max batch must always be admissible");
assert(segmentBytesTarget >= recordBatchBytesMax, "a batch never spans two segments");
assert(segmentBytesMax > segmentBytesTarget + recordBatchBytesMax, "a full segment fits the cap");

// HTTP API (S2-API.md §3.3, §5.8; S2 lite).
/** Request bodies above this are rejected (lite: axum's default body limit, 2 MiB). */
export const requestBodyBytesMax = 2 << 20;
/** S2S frames above this (counting the flag byte) are rejected (lite: 2 MiB). */
export const s2sFrameBytesMax = 2 << 20;
/**
 * An S2S read session cuts a batch into `ReadBatch` frames of about this many metered bytes. The
 * TypeScript SDK's frame parser copies its whole buffer for every HTTP/2 chunk it receives, so a
 * frame costs it time quadratic in its size: measured on its parser, 1 MiB frames parse at
 * ~100 MiB/s and 64–128 KiB frames at ~450–600 MiB/s. Frames much smaller only add overhead.
 */
export const s2sReadFrameBytesTarget = 128 << 10;
/** S2S payloads smaller than this are never compressed (S2-API.md §5.8). */
export const s2sCompressionBytesMin = 1024;

assert(s2sFrameBytesMax > recordBatchBytesMax, "a max batch fits one s2s frame");
// An RPC message is reserved in the frame budget like an S2S frame (`api/connect/envelope-budget.ts`),
// and a reservation must fit a connection's share, which is at least one maximal S2S frame.
assert(requestBodyBytesMax <= s2sFrameBytesMax, "a maximal RPC message fits a connection's share");

/**
 * An append session (S2S, the RPC `AppendSession`; `service/append-session.ts`) takes no more
 * input while the inputs it took and whose replies its transport has not taken are charged this
 * many bytes: each its metered bytes (S2-API.md §5.1: the unit of every batch bound, of admission,
 * and of the SDK's own `maxInflightBytes`), at least `appendSessionInputBytesMin`. One bound in one
 * unit for every protocol; the client then sees its transport's flow control. S2 lite's append
 * session holds 10 MiB (and 100 batches).
 */
export const appendSessionInflightBytesMax = 10 << 20;
/**
 * What an input of an append session is charged at least, so that the in-flight bound also caps
 * the count of small inputs (each holds a promise, a poisoning view and its decoded records): at
 * most 1,024 in flight. More than S2 lite's 100, since the SDK pipelines by bytes with no batch
 * limit.
 */
export const appendSessionInputBytesMin = appendSessionInflightBytesMax / 1024;
assert(appendSessionInflightBytesMax >= recordBatchBytesMax, "a session admits one max batch");
assert(Number.isInteger(appendSessionInputBytesMin), "charges are whole bytes");

/** A connection that has not sent enough bytes to choose HTTP/1.1 or HTTP/2 by then is closed. */
export const protocolSniffTimeoutMs = 10_000;
/**
 * An HTTP/1.1 request whose headers are not complete this long after it started gets a 408 and
 * its connection is closed (a slowloris client, issue 14). A real client sends its headers in its
 * first packets, so the budget is the sniff's; Node's default is 60 s, hyper's (S2 lite) 30 s.
 */
export const http1HeadersTimeoutMs = protocolSniffTimeoutMs;
/**
 * An HTTP/1.1 request whose body is not complete this long after it started is cut the same way:
 * the only bound on a body trickled byte by byte. Node's default, which the TLS listener already
 * applied. It also caps an S2S append session over HTTP/1.1 (a chunked body); HTTP/2 sessions,
 * which the SDK uses, are not affected.
 */
export const http1RequestTimeoutMs = 300_000;
/** An idle HTTP/1.1 keep-alive connection is closed after this (Node's default). */
export const http1KeepAliveTimeoutMs = 5_000;
/**
 * How often Node checks the two timeouts above, so how late it may enforce them (Node's default
 * is 30 s, three times the header timeout). A check walks only the requests still in progress.
 */
export const http1ConnectionsCheckingIntervalMs = 1_000;
/**
 * After an S2S append session ends while its client is still sending (a terminal frame), this
 * many more request bytes are read and discarded before the exchange is reset: the rest of a
 * maximal frame the client was writing, and as much again for what was already in flight (socket
 * buffers, an HTTP/2 stream window). Unread input would pin the stream and its socket: Node
 * destroys an HTTP/2 stream only once its input is consumed, and a paused HTTP/1.1 request stops
 * reading the socket, so a client's FIN goes unseen (issue 14).
 */
export const s2sAppendDrainBytesMax = 2 * s2sFrameBytesMax;
/**
 * The same drain ends after this long: a client learns of the end within a round trip, then
 * stops sending or closes. It also frees the exchange of a client that does not read the terminal
 * frame (the response never finishes), and bounds how long a session whose token was revoked may
 * take to deliver its last acks and terminal frame before it is reset (a client that does not
 * read would hold it for ever).
 */
export const s2sAppendDrainTimeoutMs = 5_000;
/**
 * An S2S append session that has received part of a frame, and is reading, fails with 408
 * `request_timeout` when no more of the frame arrives for this long (issue 14: sessions each
 * holding an almost complete 2 MiB frame were never timed out). The clock runs only while the
 * session reads: a client held back by our own back-pressure is not stalled. A client writes a
 * frame in one go, so a gap this long inside one is a stuck client or link (Envoy's
 * `stream_idle_timeout` is 5 min for a whole stream; ours is for half a frame). It also bounds how
 * long a frame waits for room in `s2sFrameBufferBytesMax` (then 429 `rate_limited`).
 */
export const s2sFrameStallTimeoutMs = 30_000;
/**
 * Bytes that S2S append sessions and RPC streaming calls may hold, over the whole server, in frames
 * and messages still arriving (`api/frame-budget.ts`; an RPC message is gRPC's and Connect's
 * length-prefixed envelope, `api/connect/envelope-budget.ts`, which also applies
 * `s2sFrameStallTimeoutMs`): a decoder keeps a frame's payload only once its declared length is
 * reserved here, and a session without room stops reading until there is (flow control holds its
 * client back: an HTTP/2 stream window, TCP), for at most `s2sFrameStallTimeoutMs`, then fails
 * with 429 `rate_limited` (retryable, nothing applied). Issue 14: 1,000 sessions each holding an
 * almost complete 2 MiB frame held 2 GiB, bounded by clients × frame size instead of by the
 * server. This is Envoy's overload manager's heap bound and NATS's `max_pending` applied to input:
 * 64 maximal frames at once is far more than a server's clients send in the same instant (a frame
 * arrives in milliseconds), and 128 MiB is a fair share of a small server's memory. What a waiting
 * session's transport holds is outside it, bounded by `sessionsMax` × a stream window
 * (`http2StreamWindowBytes`) or a socket's read buffer.
 */
export const s2sFrameBufferBytesMax = 64 * s2sFrameBytesMax;
/**
 * The share of `s2sFrameBufferBytesMax` that the sessions of one connection may hold (an HTTP/2
 * connection carries up to `http2StreamsPerSessionMax` of them), so that one client cannot take
 * the whole budget (Envoy's `per_connection_buffer_limit_bytes`, 1 MiB, bounds the same thing for
 * a proxy that streams; we hold whole frames). 8 maximal frames: the SDK pipelines a session's
 * frames one after another, so its connection receives a few frames at a time, not 100.
 */
export const s2sFrameBufferBytesPerConnectionMax = 8 * s2sFrameBytesMax;
/**
 * The largest `--max-frame-buffer`: a guard against typos (1 TiB); the smallest is one maximal
 * frame (`s2sFrameBytesMax`), which a connection's share then is too.
 */
export const s2sFrameBufferBytesMaxBound = 2 ** 40;

assert(s2sFrameBufferBytesPerConnectionMax >= s2sFrameBytesMax, "a connection can take a frame");
assert(s2sFrameBufferBytesMax >= s2sFrameBufferBytesPerConnectionMax, "a connection's share fits");

/**
 * Open streaming sessions of every kind, over all connections (`api/session-slots.ts`); one more
 * is refused with 429. A fence against exhausting descriptors and memory, as Envoy's overload
 * manager refuses streams past `max_active_downstream_connections`, not a tuned figure: an idle
 * session costs tens of KiB (socket buffers, nghttp2 and session state), 10,000 of them some
 * hundreds of MiB; frames still arriving are bounded apart, by `s2sFrameBufferBytesMax`, until
 * `s2sFrameStallTimeoutMs`, and what a session that is not reading holds in its HTTP/2 stream
 * window by `http2StreamWindowBytes` each. Per connection, `http2StreamsPerSessionMax` applies
 * first.
 */
export const sessionsMax = 10_000;
/**
 * Open client connections (TCP, either protocol); one more is closed as soon as it is accepted
 * (Node's `net.Server.maxConnections`). The process's descriptors are shared with the cache's
 * files and LevelDB, so running out of them on sockets (EMFILE) would fail storage, not only
 * clients; a connection costs a descriptor and its socket buffers. As many as sessions (HTTP/2
 * carries many sessions on one connection, HTTP/1.1 one); Envoy's overload manager and nginx's
 * `worker_connections` bound the same thing. The host's `ulimit -n` must be above it.
 */
export const connectionsMax = sessionsMax;
/**
 * Bounds of `--max-sessions` and `--max-connections`: a guard against typos, past any host's
 * descriptors (systemd's default hard `LimitNOFILE` is 524,288).
 */
export const sessionsMaxBound = 1_000_000;
export const connectionsMaxBound = 1_000_000;

/**
 * An HTTP/1.1 connection that is to close while its request body is still arriving (an error
 * answered before the body was read whole: 400 `bad_json` for a body over `requestBodyBytesMax`, a
 * 401) closes lingering, as nginx (`lingering_close`) and Apache do: the response and a FIN go
 * out, then the rest of the body is read and discarded until the client closes, for at most this
 * many bytes or this long, and only then is the socket closed. Closing with unread bytes makes the
 * kernel send a reset, and a client still writing (or that reads only once its body is written:
 * curl, most blocking clients) sees that reset instead of the response (issue 14). Discarding
 * costs bandwidth, not memory, so the byte bound is generous: 32 bodies at the limit (a 50 MiB
 * body in the issue); a client sending more is cut with a reset.
 */
export const http1LingerBytesMax = 32 * requestBodyBytesMax;
/**
 * The same lingering close ends after this long (nginx's `lingering_timeout`, 5 s): a client that
 * reads the response stops within a round trip; one that neither reads nor stops is then reset.
 */
export const http1LingerTimeoutMs = 5_000;

/**
 * Concurrent streams a client may open on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS).
 * S2 advertises 100, and the SDK opens another connection past 100 streams; nghttp2 and Node leave
 * it unlimited by default, Envoy caps it at 1024 (`max_concurrent_streams`). It was 1000 here;
 * with `http2StreamWindowBytes` it bounds what one connection's streams hold unread, which must
 * fit `http2SessionMemoryMbMax` (below).
 */
export const http2StreamsPerSessionMax = 100;
/**
 * The largest header list a client may send on one HTTP/2 request (SETTINGS_MAX_HEADER_LIST_SIZE,
 * uncompressed). Node's default, kept on purpose: nghttp2 cannot decode a single header field
 * above 64 KiB anyway (its HPACK limit, NGHTTP2_HD_MAX_NV), and our own headers (a token, a
 * basin, an encryption key) are far below it.
 */
export const http2HeaderListBytesMax = 65_535;
/** Header fields per HTTP/2 request (Node's `maxHeaderListPairs` default; Node's HTTP/1.1: 2000). */
export const http2HeaderPairsMax = 128;
/**
 * Bytes a client may send on one HTTP/2 stream before the server has read them
 * (SETTINGS_INITIAL_WINDOW_SIZE). Node and nghttp2 default to 64 KiB, which held one S2S append
 * session of the SDK to ~50 MiB/s of 8 KiB records on loopback: the client waits for a
 * WINDOW_UPDATE every 32 KiB, a round trip through two busy event loops, and the server pays for
 * the many small chunks (20 ms of CPU per MiB against 12 with this window; docs/design/api.md
 * "HTTP/2 flow control"). Node refills a stream's window only as the stream is read, so a session
 * that stops reading (waiting for `s2sFrameBufferBytesMax`, or for its acks) holds at most this
 * much in its transport: `sessionsMax` × this bounds all of them, 2.5 GiB at the defaults, and
 * `http2StreamsPerSessionMax` × this one connection's. hyper (under s2-lite) and Go's server use 1
 * MiB, which measured 10–15% faster and would make that bound 10 GiB.
 */
export const http2StreamWindowBytes = 256 << 10;
/**
 * The connection's receive window (nghttp2's `setLocalWindowSize`; the protocol's default is 64
 * KiB whatever the streams' windows). Node consumes connection-level flow control as soon as
 * nghttp2 parses a DATA frame, so this holds no memory of its own (what waits is bounded per
 * stream, above); it only caps the bytes of all of a connection's streams in flight at once: 16
 * streams' windows, as the SDK multiplexes a basin's sessions on one connection.
 */
export const http2ConnectionWindowBytes = 16 * http2StreamWindowBytes;
/**
 * Memory Node lets one HTTP/2 connection hold (HPACK tables, frames queued to send, headers being
 * received, and the unread input of its paused streams), in MB (10^6 bytes) as Node takes it.
 * Past it Node refuses new streams with ENHANCE_YOUR_CALM and stops reading the whole connection
 * until it drains. Its default, 10, was reached by ~40 streams waiting with full 256 KiB windows:
 * the connection stopped, so the sessions holding room in `s2sFrameBufferBytesMax` could not
 * finish their frames, the ones waiting for room never got it, and the idle PING closed the
 * connection (a review reproduced it with 100 SDK-sized sessions on one connection; 64 KiB windows
 * needed ~150). So it holds every stream's full window twice over: 53 MB.
 */
export const http2SessionMemoryMbMax = Math.ceil(
  (2 * http2StreamsPerSessionMax * http2StreamWindowBytes) / 1e6,
);
/**
 * An HTTP/2 connection on which nothing happened (no frame, no stream data either way) for this
 * long is sent a PING; one that does not answer within `http2PingTimeoutMs` is closed. Besides
 * dead peers, this is what closes a connection that nghttp2 has given up on: after a connection
 * error (a CONTINUATION flood is a COMPRESSION_ERROR) it sends GOAWAY and stops reading, but Node
 * neither closes the socket nor tells us (issue 14); such a session never sends the PING, so it is
 * closed within the two bounds. A following read session's heartbeats (every 5–15 s) count as
 * activity, so it is seldom pinged, and a PING costs 17 bytes each way (gRPC's keepalive pings
 * every 2 h by default, but it also detects dead peers by other means).
 */
export const http2PingIntervalMs = 10_000;
/** How long a PING may go unanswered (gRPC's `keepalive_timeout` default is 20 s). */
export const http2PingTimeoutMs = 10_000;
/**
 * An HTTP/2 connection with no open stream for this long is sent GOAWAY(NO_ERROR) and closed
 * (issue 14: 300 idle h2c connections stayed open for ever). Pings keep a connection alive only
 * while it has streams: a client between requests reconnects, which SDKs and gRPC do on GOAWAY.
 * nginx closes idle HTTP/2 connections after 75 s (`keepalive_timeout`), Go's server after its
 * `IdleTimeout`, Envoy after 1 h (`idle_timeout`); ours is a minute.
 */
export const http2SessionIdleTimeoutMs = 60_000;

assert(http2PingIntervalMs < http2SessionIdleTimeoutMs, "a quiet connection is pinged first");

assert(http1HeadersTimeoutMs <= http1RequestTimeoutMs, "Node requires headers ≤ request timeout");
assert(http1ConnectionsCheckingIntervalMs < http1HeadersTimeoutMs, "checked within the timeout");
assert(s2sAppendDrainBytesMax >= s2sFrameBytesMax, "a client can finish the frame it was writing");
assert(http1LingerBytesMax >= requestBodyBytesMax, "a body at the limit is read to its end");

/**
 * Idempotent producers (docs/design/producers.md): the acks kept per (stream, producer), so a
 * resend of any of its last this-many batches gets its first ack. A client keeps at most this
 * many batches in flight per producer; an older resend is answered `producer_seq_too_old`.
 */
export const producerAckWindow = 64;
/** A producer id: 1 to this many printable ASCII bytes. */
export const producerIdBytesMax = 64;
/**
 * A producer that appended nothing to a stream for this long is forgotten there (its next batch
 * starts over at seq 0), so that producer state does not grow with every client ever seen.
 * Kafka's `transactional.id.expiration.ms`; a client that resends after a week has bigger worries.
 */
export const producerIdleMs = 7 * 86_400_000;
/**
 * Producers with state on one stream at most; one more is refused (409 `producer_limit`) until
 * some expire. Each keeps `producerAckWindow` acks (~100 bytes each), so a stream's producer
 * state stays under ~6 MiB.
 */
export const producersPerStreamMax = 1000;
/** Unary reads: lite caps `wait` at 60 s. */
export const unaryReadWaitSecsMax = 60;
/** Heartbeats while following: a uniformly random delay in this range (S2 lite). */
export const heartbeatDelayMsMin = 5_000;
export const heartbeatDelayMsMax = 15_000;

// Background tasks (S2 lite: trim, delete-on-empty and basin deletion run every 60 s ± 10%).
export const backgroundTaskIntervalMs = 60_000;
/**
 * A streamer idle this long, with nothing in progress, pending or subscribed, is dropped and
 * rebuilt from the durable state on next use (S2 lite retires dormant streamers after 60 s): a
 * server that touched 10,000 streams once does not keep 10,000 streamers.
 */
export const streamerIdleMs = 60_000;

// Metrics API (docs/design/metrics.md; S2 docs: concepts/metrics).
/** The recorder submits its deltas this often (when any): a crash loses at most this much. */
export const metricsFlushIntervalMs = 10_000;
/**
 * Recorder cells (series × minute) before a flush is forced; a hard cap: while a flush is in
 * flight (as long as an object-store outage), deltas that need a new cell are dropped.
 */
export const metricsPendingCellsMax = 10_000;
/**
 * JSON bytes of rows per `metrics.add` entry: a flush with more rows (every stream due at once,
 * e.g. after an hour down) splits them into several entries, so that no entry can push a segment
 * past `segmentBytesMax` (ours: small next to a segment, large enough for ~400 long-named rows).
 */
export const metricsEntryBytesMax = 256 << 10;
/**
 * Gauge cells (minute + hour buckets, streams and basins) the ledger keeps (~100 bytes each):
 * past it the fold prunes the buckets that end first (ours: ~100 MB of heap).
 */
export const metricsGaugeCellsMax = 1_000_000;
/** Every stream's storage is sampled at least this often, so that past hours are answerable. */
export const metricsGaugeSampleIntervalSecs = 3_600;
/** Retention of the ledger's buckets, per granularity (relative to the newest entry's time). */
export const metricsMinuteRetentionSecs = 2 * 86_400;
export const metricsHourRetentionSecs = 45 * 86_400;
export const metricsDayRetentionSecs = 400 * 86_400;
/** S2: "the time period specified should not exceed 30 days". */
export const metricsRangeSecsMax = 30 * 86_400;
/** S2: `end` may not be in the future, "though some leeway is given". */
export const metricsEndLeewaySecs = 60;

assert(metricsHourRetentionSecs >= metricsRangeSecsMax, "a max range is answerable hourly");
assert(metricsFlushIntervalMs <= 60_000, "deltas are flushed within their minute's neighbour");
assert(metricsEntryBytesMax * 4 <= segmentBytesTarget, "metrics entries never crowd a segment");

// Access tokens (S2-API.md §4.4, docs/design/auth.md).
/** Token ids are 1..=96 bytes (S2 openapi `AccessTokenIdStr`). */
export const accessTokenIdBytesMin = 1;
export const accessTokenIdBytesMax = 96;
/**
 * How often open sessions check that their access token is still live (`api/token-watch.ts`): a
 * revoked or expired token's sessions end within this (ours: a look-up per session is a map
 * access, so checking every second costs nothing next to what a session does in that time).
 */
export const sessionTokenCheckIntervalMs = 1_000;
/** Random bytes in a token secret (256 bits: guessing one is hopeless). */
export const accessTokenSecretBytes = 32;
/**
 * The latest token expiry, 9999-12-31T23:59:59.999Z: the end of RFC 3339's four-digit years and of
 * the protobuf `Timestamp` range, so every stored expiry renders on both wires.
 */
export const accessTokenExpiresAtMsMax = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
