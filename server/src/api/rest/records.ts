/**
 * Records routes (S2-API.md §5.3–§5.7): append, read (unary JSON or protobuf, SSE, S2S) and check
 * tail on `/v1/streams/{stream}/records`, with the basin from the `S2-Basin` header.
 *
 * Checks run in lite's order (its extractors, field by field): `S2-Basin` (400 `bad_header`), the
 * stream name in the path (400 `bad_path`), then for a read the query (400 `bad_query`), the
 * headers (400 `bad_header`) and the start (422); for an append the body by its `Content-Type`:
 * `s2s/proto` opens an S2S session, protobuf (400 `bad_proto`), else JSON with `S2-Format`
 * (400 `bad_header`, then 400 `bad_json` for a missing or non-JSON `Content-Type` or a malformed
 * body, 422 for Base64 and validation).
 */
import { S2Error } from "../../core/errors.js";
import { type AppendInput, meteredBytesOfBatch } from "../../core/records.js";
import { validateStreamName } from "../../core/names.js";
import { appendOnce } from "../../service/append-session.js";
import { collectUnaryRead } from "../../service/read-session.js";
import {
  appendAckToJson,
  appendInputFromJson,
  parseRecordFormat,
  readBatchToJson,
  tailResponseToJson,
} from "../convert/records-json.js";
import { decodeAppendInput } from "../convert/append-input-decoder.js";
import { encodeAppendAckProto, encodeReadBatchProto } from "../convert/records-proto.js";
import { readBody } from "../http/body.js";
import {
  contentTypeOf,
  firstAcceptOf,
  isProtobufMediaType,
  isS2sMediaType,
  parseReadQuery,
  readModeOf,
  readRequestOf,
  unaryReadRequest,
} from "../http/read-query.js";
import {
  type ApiResponse,
  basinHeaderOf,
  encryptionKeyOf,
  headerOf,
  type RequestContext,
  sendJson,
} from "../http/request-context.js";
import { readJsonBody } from "../json/json-body.js";
import { authorizeCommands } from "../auth.js";
import { type Route, route } from "../router.js";
import type { ApiDeps } from "../routes.js";
import { handleS2sAppendSession } from "../s2s/append-session.js";
import { handleS2sReadSession } from "../s2s/read-session.js";
import { nextUnlessClosed, serveSseRead, watchClosed } from "./sse.js";
import { producerOf } from "../http/producer-headers.js";

export function recordRoutes(deps: ApiDeps): Route[] {
  return [
    route("POST", "/v1/streams/{stream}/records", (context) => append(context, deps)),
    route("GET", "/v1/streams/{stream}/records", (context) => read(context, deps)),
    route("GET", "/v1/streams/{stream}/records/tail", (context) => checkTail(context, deps)),
  ];
}

/** The basin (`S2-Basin`) and the stream (path) of a records route, checked in lite's order. */
function streamAt(context: RequestContext): { basin: string; stream: string } {
  const basin = basinHeaderOf(context.request);
  const stream = context.params["stream"] ?? "";
  const reason = validateStreamName(stream);
  if (reason !== undefined) throw new S2Error("bad_path", `invalid stream name: ${reason}`);
  return { basin, stream };
}

function sendProtobuf(response: ApiResponse, bytes: Uint8Array): void {
  response.writeHead(200, {
    "content-type": "application/protobuf",
    "content-length": String(bytes.length),
  });
  response.end(bytes);
}

/** `POST /v1/streams/{stream}/records` (S2-API.md §5.3). */
async function append(context: RequestContext, deps: ApiDeps): Promise<void> {
  const { request, response } = context;
  const { basin, stream } = streamAt(context);
  const contentType = contentTypeOf(request);
  if (isS2sMediaType(contentType)) {
    await deps.sessionSlots.serve(() => handleS2sAppendSession(context, deps, basin, stream));
    return;
  }
  const respondWithProtobuf = isProtobufMediaType(firstAcceptOf(request));
  let input: AppendInput;
  if (isProtobufMediaType(contentType)) {
    const bytes = await readBody(request, "bad_proto");
    input = decodeAppendInput(bytes, "bad_proto");
  } else {
    const format = parseRecordFormat(headerOf(request, "s2-format"));
    input = appendInputFromJson(await readJsonBody(request), format);
  }
  authorizeCommands(context.auth, input);
  const target = {
    basin,
    stream,
    encryptionKey: encryptionKeyOf(request),
    producer: producerOf(request),
  };
  const ack = await appendOnce(deps.service.records, target, input, {
    observeAck: (observed) => deps.metrics.observeAppend(observed),
  });
  if (respondWithProtobuf) sendProtobuf(response, encodeAppendAckProto(ack));
  else sendJson(response, 200, appendAckToJson(ack));
}

/** `GET /v1/streams/{stream}/records` (S2-API.md §5.4, §5.7, §5.8). */
async function read(context: RequestContext, deps: ApiDeps): Promise<void> {
  const { request, response } = context;
  const at = streamAt(context);
  const query = parseReadQuery(context.query);
  const mode = readModeOf(request);
  const readRequest = readRequestOf(query);
  switch (mode.kind) {
    case "s2s":
      await deps.sessionSlots.serve(() =>
        handleS2sReadSession(context, deps, at.basin, at.stream, readRequest),
      );
      return;
    case "sse":
      await deps.sessionSlots.serve(() => serveSseRead(context, deps, at, readRequest, mode));
      return;
    case "unary": {
      const watch = watchClosed(response);
      try {
        const session = await deps.service.records.openReadSession(
          at.basin,
          at.stream,
          unaryReadRequest(readRequest),
          { encryptionKey: encryptionKeyOf(request) },
        );
        const batch = await collectUnaryRead(session, () => nextUnlessClosed(session, watch));
        if (batch === undefined) return;
        deps.metrics.observeRead(batch.records.length, meteredBytesOfBatch(batch.records));
        if (mode.protobuf) sendProtobuf(response, encodeReadBatchProto(batch));
        else sendJson(response, 200, readBatchToJson(batch, mode.format));
      } finally {
        watch.stop();
      }
      return;
    }
  }
}

/** `GET /v1/streams/{stream}/records/tail` (S2-API.md §5.5). */
async function checkTail(context: RequestContext, deps: ApiDeps): Promise<void> {
  const { basin, stream } = streamAt(context);
  const tail = await deps.service.records.checkTail(basin, stream);
  sendJson(context.response, 200, tailResponseToJson(tail));
}
