/**
 * The live tail of a stream page: a `ReadSession` from `tail_offset` N that follows the tail,
 * adding a row per record (seq num, timestamp, headers as `name: value`, body rendered by
 * `render-body.ts`). At most `tailRowsMax` rows are kept; older ones are dropped. Stopping aborts
 * the session's fetch.
 */
import type { ReadBatch } from "@tributary/protocol/gen/s2/v1/s2_pb.js";
import { formatMillis, messageOf, streams } from "./api.js";
import { h, table } from "./dom.js";
import { renderBody } from "./render-body.js";

/** Records already in the stream shown when a tail starts, unless the page says otherwise. */
export const tailBacklogDefault = 10;
/** Rows kept in the table; older ones are dropped. */
export const tailRowsMax = 500;

export interface LiveTail {
  readonly element: HTMLElement;
  /** Aborts the session (leaving the page does). */
  stop(): void;
}

function bytesCell(bytes: Uint8Array): HTMLElement {
  const rendered = renderBody(bytes);
  return h("pre", { class: `body ${rendered.kind}`, "data-kind": rendered.kind }, rendered.text);
}

function headersCell(headers: ReadBatch["records"][number]["headers"]): HTMLElement {
  const list = h("ul", { class: "headers" });
  for (const header of headers) {
    const name = renderBody(header.name);
    const value = renderBody(header.value);
    list.append(h("li", {}, `${name.text}: ${value.text}`));
  }
  return list;
}

/** Builds the live tail section of the stream `basin`/`stream`. */
export function liveTail(basin: string, stream: string): LiveTail {
  let session: AbortController | undefined;
  const backlog = h("input", {
    id: "tail-backlog",
    type: "number",
    min: "0",
    value: String(tailBacklogDefault),
  });
  const start = h("button", { id: "tail-start", type: "button" }, "Start live tail");
  const stopButton = h("button", { id: "tail-stop", type: "button", disabled: true }, "Stop");
  const state = h("span", { id: "tail-state" }, "stopped");
  const records = table(["seq", "timestamp", "headers", "body"], [], { class: "records" });
  const rows = records.tBodies[0] as HTMLTableSectionElement;
  rows.id = "records";

  function addRows(batch: ReadBatch): void {
    for (const record of batch.records) {
      const row = h(
        "tr",
        { "data-seq": String(record.seqNum) },
        h("td", {}, String(record.seqNum)),
        h("td", {}, formatMillis(record.timestamp)),
        h("td", {}, headersCell(record.headers)),
        h("td", {}, bytesCell(record.body)),
      );
      rows.append(row);
    }
    while (rows.rows.length > tailRowsMax) rows.deleteRow(0);
  }

  function settle(abort: AbortController): void {
    if (session !== abort) return;
    session = undefined;
    start.disabled = false;
    stopButton.disabled = true;
  }

  async function run(abort: AbortController, backlogCount: bigint): Promise<void> {
    state.textContent = `connecting to ${basin}/${stream}…`;
    try {
      const responses = streams.readSession(
        { basin, stream, start: { case: "tailOffset", value: backlogCount } },
        { signal: abort.signal },
      );
      for await (const response of responses) {
        if (response.batch === undefined) continue;
        addRows(response.batch);
        const next = response.batch.tail?.seqNum;
        state.textContent = `live on ${basin}/${stream}${next === undefined ? "" : ` (tail ${next})`}`;
      }
      if (!abort.signal.aborted) state.textContent = "ended";
    } catch (error) {
      if (abort.signal.aborted) return;
      state.textContent = `failed: ${messageOf(error)}`;
    } finally {
      settle(abort);
    }
  }

  function stop(): void {
    session?.abort();
    session = undefined;
    start.disabled = false;
    stopButton.disabled = true;
    state.textContent = "stopped";
  }

  start.addEventListener("click", () => {
    stop();
    rows.replaceChildren();
    const abort = new AbortController();
    session = abort;
    start.disabled = true;
    stopButton.disabled = false;
    const count = Number.parseInt(backlog.value, 10);
    void run(abort, BigInt(Number.isSafeInteger(count) && count >= 0 ? count : tailBacklogDefault));
  });
  stopButton.addEventListener("click", stop);

  const element = h(
    "section",
    { id: "live-tail" },
    h("h3", {}, "Live tail"),
    h(
      "div",
      { class: "toolbar" },
      h("label", {}, "records before the tail ", backlog),
      start,
      stopButton,
      state,
    ),
    h("div", { class: "table-holder" }, records),
  );
  return { element, stop };
}
