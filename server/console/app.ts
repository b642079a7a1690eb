/**
 * The web console (`/console`): lists basins and streams, appends a text record and tails a stream
 * live, from the browser over Connect-web (`tributary.v1` services on the page's own origin). An
 * access token typed in is kept in `localStorage` and sent as `Authorization: Bearer` on every
 * call (docs/design/auth.md); a `--no-auth` server needs none.
 * Bundled by `scripts/build-console.mjs`; browser code, so outside the server's tsconfig.
 */
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import type { ReadBatch } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { AccountService } from "@tributary/protocol/gen/tributary/v1/account_pb.js";
import { BasinService } from "@tributary/protocol/gen/tributary/v1/basin_pb.js";
import { StreamService } from "@tributary/protocol/gen/tributary/v1/stream_pb.js";

/** Records already in the stream shown when a tail starts. */
const tailBacklog = 10n;
/** Rows kept in the table; older ones are dropped. */
const rowsMax = 500;

/** Where the access token is kept between visits. */
const tokenStorageKey = "tributary.accessToken";

function storedToken(): string {
  return window.localStorage.getItem(tokenStorageKey) ?? "";
}

const sendToken: Interceptor = (next) => (request) => {
  const token = storedToken();
  if (token !== "") request.header.set("authorization", `Bearer ${token}`);
  return next(request);
};

const transport = createConnectTransport({
  baseUrl: window.location.origin,
  interceptors: [sendToken],
});
const account = createClient(AccountService, transport);
const basins = createClient(BasinService, transport);
const streams = createClient(StreamService, transport);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`missing #${id}`);
  return found as T;
}

const status = element<HTMLParagraphElement>("status");
const basinSelect = element<HTMLSelectElement>("basin");
const streamSelect = element<HTMLSelectElement>("stream");
const appendForm = element<HTMLFormElement>("append-form");
const appendBody = element<HTMLInputElement>("append-body");
const appendResult = element<HTMLParagraphElement>("append-result");
const tailStart = element<HTMLButtonElement>("tail-start");
const tailStop = element<HTMLButtonElement>("tail-stop");
const tailState = element<HTMLSpanElement>("tail-state");
const rows = element<HTMLTableSectionElement>("records");
const tokenForm = element<HTMLFormElement>("token-form");
const tokenInput = element<HTMLInputElement>("token");

let tail: AbortController | undefined;

function messageOf(error: unknown): string {
  return error instanceof ConnectError ? `${Code[error.code]}: ${error.rawMessage}` : String(error);
}

function showStatus(text: string, isError = false): void {
  status.textContent = text;
  status.className = isError ? "error" : "";
}

function fillSelect(select: HTMLSelectElement, names: readonly string[], keep: string): void {
  select.replaceChildren(
    ...names.map((name) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      return option;
    }),
  );
  if (names.includes(keep)) select.value = keep;
}

async function loadBasins(): Promise<void> {
  const names: string[] = [];
  for (let startAfter = "", hasMore = true; hasMore; ) {
    const page = await account.listBasins({ startAfter });
    names.push(...page.basins.map((basin) => basin.name));
    hasMore = page.hasMore && page.basins.length > 0;
    startAfter = names.at(-1) ?? "";
  }
  fillSelect(basinSelect, names, basinSelect.value);
  await loadStreams();
}

async function loadStreams(): Promise<void> {
  const basin = basinSelect.value;
  const names: string[] = [];
  for (let startAfter = "", hasMore = basin !== ""; hasMore; ) {
    const page = await basins.listStreams({ basin, startAfter });
    names.push(...page.streams.map((stream) => stream.name));
    hasMore = page.hasMore && page.streams.length > 0;
    startAfter = names.at(-1) ?? "";
  }
  fillSelect(streamSelect, names, streamSelect.value);
  showStatus(`${basinSelect.options.length} basins, ${names.length} streams in ${basin || "—"}`);
}

function addRows(batch: ReadBatch): void {
  for (const record of batch.records) {
    const row = document.createElement("tr");
    row.dataset["seq"] = String(record.seqNum);
    for (const text of [
      String(record.seqNum),
      new Date(Number(record.timestamp)).toISOString(),
      decoder.decode(record.body),
    ]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    rows.append(row);
  }
  while (rows.rows.length > rowsMax) rows.deleteRow(0);
}

async function runTail(basin: string, stream: string, abort: AbortController): Promise<void> {
  tailState.textContent = `connecting to ${basin}/${stream}…`;
  try {
    const session = streams.readSession(
      { basin, stream, start: { case: "tailOffset", value: tailBacklog } },
      { signal: abort.signal },
    );
    for await (const response of session) {
      if (response.batch === undefined) continue;
      addRows(response.batch);
      const next = response.batch.tail?.seqNum;
      tailState.textContent = `live on ${basin}/${stream}${next === undefined ? "" : ` (tail ${next})`}`;
    }
    if (!abort.signal.aborted) tailState.textContent = "ended";
  } catch (error) {
    if (abort.signal.aborted) return;
    tailState.textContent = "failed";
    showStatus(`tail: ${messageOf(error)}`, true);
  } finally {
    if (tail === abort) {
      tail = undefined;
      tailStart.disabled = false;
      tailStop.disabled = true;
    }
  }
}

function stopTail(): void {
  tail?.abort();
  tail = undefined;
  tailStart.disabled = false;
  tailStop.disabled = true;
  tailState.textContent = "stopped";
}

function startTail(): void {
  stopTail();
  const basin = basinSelect.value;
  const stream = streamSelect.value;
  if (basin === "" || stream === "") {
    showStatus("choose a basin and a stream first", true);
    return;
  }
  rows.replaceChildren();
  tail = new AbortController();
  tailStart.disabled = true;
  tailStop.disabled = false;
  void runTail(basin, stream, tail);
}

async function append(): Promise<void> {
  const basin = basinSelect.value;
  const stream = streamSelect.value;
  if (basin === "" || stream === "") {
    showStatus("choose a basin and a stream first", true);
    return;
  }
  try {
    const { ack } = await streams.append({
      basin,
      stream,
      input: { records: [{ body: encoder.encode(appendBody.value) }] },
    });
    appendResult.textContent = `appended at seq ${ack?.start?.seqNum ?? "?"}`;
    appendResult.className = "";
    appendBody.value = "";
  } catch (error) {
    appendResult.textContent = `append: ${messageOf(error)}`;
    appendResult.className = "error";
  }
}

function report(promise: Promise<void>): void {
  promise.catch((error: unknown) => showStatus(messageOf(error), true));
}

basinSelect.addEventListener("change", () => report(loadStreams()));
element<HTMLButtonElement>("refresh").addEventListener("click", () => report(loadBasins()));
appendForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void append();
});
tokenInput.value = storedToken();
tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (token === "") window.localStorage.removeItem(tokenStorageKey);
  else window.localStorage.setItem(tokenStorageKey, token);
  stopTail();
  report(loadBasins());
});
tailStart.addEventListener("click", startTail);
tailStop.addEventListener("click", stopTail);
report(loadBasins());
