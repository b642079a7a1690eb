/**
 * A list that stays usable at 10,000 entries: one page at a time (`pageSize` rows, fetched with
 * the list APIs' `start_after` + `limit`) and a name-prefix filter (their `prefix`). Previous pages
 * are reached through a stack of the `start_after` cursors that led to them, so nothing but the
 * shown page is ever held.
 */
import { outcome, h, table } from "./dom.js";
import { messageOf } from "./api.js";

/** Rows per page (the APIs allow up to 1000; 100 keeps the page light). */
export const pageSize = 100;
/** How long typing in the filter waits before it fetches. */
const filterDebounceMs = 250;

/** One page as the list APIs return it. */
export interface ListPage<T> {
  readonly items: readonly T[];
  readonly hasMore: boolean;
}

export interface PagedListOptions<T> {
  /**
   * Prefix of the element ids: `${id}-filter`, `${id}-table`, `${id}-next`, `${id}-prev` (and
   * their `-below` twins under the table), `${id}-position`, `${id}-status`.
   */
  readonly id: string;
  readonly headings: readonly string[];
  /** What the filter field says it filters. */
  readonly filterLabel: string;
  /** Fetches one page. */
  fetchPage(query: { prefix: string; startAfter: string; limit: number }): Promise<ListPage<T>>;
  /** The item's name: the cursor for the next page. */
  keyOf(item: T): string;
  rowOf(item: T): HTMLTableRowElement;
}

export interface PagedList {
  readonly element: HTMLElement;
  /** Fetches the current page again (after a create or delete). */
  reload(): Promise<void>;
}

/** Builds the list; call `reload()` to fetch its first page. */
export function pagedList<T>(options: PagedListOptions<T>): PagedList {
  const { id } = options;
  let prefix = "";
  const cursors: string[] = [""];
  let lastKey = "";
  let hasMore = false;
  let generation = 0;

  const filter = h("input", {
    id: `${id}-filter`,
    type: "search",
    placeholder: options.filterLabel,
    "aria-label": options.filterLabel,
    autocomplete: "off",
  });
  const tableHolder = h(
    "div",
    { class: "table-holder" },
    table(options.headings, [], { id: `${id}-table` }),
  );
  const previous = h("button", { id: `${id}-prev`, type: "button", disabled: true }, "← Previous");
  const next = h("button", { id: `${id}-next`, type: "button", disabled: true }, "Next →");
  // The same two buttons under the table, so that a long page need not be scrolled back up.
  const previousBelow = h(
    "button",
    { id: `${id}-prev-below`, type: "button", onclick: () => previous.click() },
    "← Previous",
  );
  const nextBelow = h(
    "button",
    { id: `${id}-next-below`, type: "button", onclick: () => next.click() },
    "Next →",
  );
  const toolbarBelow = h("div", { class: "toolbar" }, previousBelow, nextBelow);

  const pageLabel = h("span", { id: `${id}-position`, class: "page-label" });
  const status = outcome(`${id}-status`);

  async function load(): Promise<void> {
    generation += 1;
    const mine = generation;
    const startAfter = cursors.at(-1) ?? "";
    let page: ListPage<T>;
    try {
      page = await options.fetchPage({ prefix, startAfter, limit: pageSize });
    } catch (error) {
      if (mine === generation) status.show(messageOf(error), true);
      return;
    }
    if (mine !== generation) return; // A newer fetch (typing in the filter) replaced this one.
    status.show("");
    const last = page.items.at(-1);
    lastKey = last === undefined ? "" : options.keyOf(last);
    hasMore = page.hasMore && page.items.length > 0;
    const first = (cursors.length - 1) * pageSize + 1;
    pageLabel.textContent =
      page.items.length === 0
        ? prefix === ""
          ? "none"
          : `none matching “${prefix}”`
        : `page ${cursors.length}: ${first}–${first + page.items.length - 1}${hasMore ? " (more)" : ""}`;
    tableHolder.replaceChildren(
      table(options.headings, page.items.map(options.rowOf), {
        id: `${id}-table`,
        "data-count": String(page.items.length),
      }),
    );
    previous.disabled = cursors.length <= 1;
    next.disabled = !hasMore;
    previousBelow.disabled = previous.disabled;
    nextBelow.disabled = next.disabled;
    toolbarBelow.hidden = previous.disabled && next.disabled;
  }

  let debounce: ReturnType<typeof setTimeout> | undefined;
  filter.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      prefix = filter.value;
      cursors.splice(1);
      void load();
    }, filterDebounceMs);
  });
  next.addEventListener("click", () => {
    if (!hasMore) return;
    cursors.push(lastKey);
    hasMore = false; // Until the page arrives: a second click must not skip a page.
    void load();
  });
  previous.addEventListener("click", () => {
    if (cursors.length <= 1) return;
    cursors.pop();
    void load();
  });

  const element = h(
    "div",
    { class: "paged-list" },
    h("div", { class: "toolbar" }, filter, previous, next, pageLabel),
    status.element,
    tableHolder,
    toolbarBelow,
  );
  return { element, reload: load };
}
