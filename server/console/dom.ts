/**
 * The console's DOM helpers: `h()` builds an element from a tag, attributes and children (text is
 * always set as text, never parsed as HTML, so record bodies and names cannot inject markup), and
 * a few small builders every page uses (tables, forms, status lines). Plain DOM, no framework.
 */

/** Attributes of `h()`: strings set as attributes, `on*` functions added as listeners. */
export type Attributes = Readonly<
  Record<string, string | boolean | undefined | ((event: Event) => void)>
>;
/** A child of `h()`: an element, text, or nothing. */
export type Child = Node | string | undefined | false;

/** Builds `<tag …attributes>children</tag>`. A `false`/`undefined` attribute is left out. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: readonly Child[]
): HTMLElementTagNameMap[K] {
  const created = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") created.addEventListener(name.slice(2), value);
    else created.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === undefined || child === false) continue;
    created.append(child);
  }
  return created;
}

/** A table with a header row and the given body rows. */
export function table(
  headings: readonly string[],
  rows: readonly HTMLTableRowElement[],
  attributes: Attributes = {},
): HTMLTableElement {
  return h(
    "table",
    attributes,
    h("thead", {}, h("tr", {}, ...headings.map((heading) => h("th", {}, heading)))),
    h("tbody", {}, ...rows),
  );
}

/** A row of cells; strings become text cells. */
export function row(
  cells: readonly (Node | string)[],
  attributes: Attributes = {},
): HTMLTableRowElement {
  return h("tr", attributes, ...cells.map((cell) => h("td", {}, cell)));
}

/** A labelled form field. */
export function field(label: string, control: HTMLElement): HTMLLabelElement {
  return h("label", {}, `${label} `, control);
}

/** A paragraph that shows the outcome of an action, in red when it failed. */
export interface Outcome {
  readonly element: HTMLParagraphElement;
  show(text: string, isError?: boolean): void;
}

export function outcome(id: string): Outcome {
  const element = h("p", { id, class: "outcome", role: "status" });
  return {
    element,
    show(text, isError = false) {
      element.textContent = text;
      element.className = isError ? "outcome error" : "outcome";
    },
  };
}

/** The value of a form control found by name in `form`. */
export function formValue(form: HTMLFormElement, name: string): string {
  const control = form.elements.namedItem(name);
  if (control instanceof HTMLInputElement && control.type === "checkbox") {
    return control.checked ? "on" : "";
  }
  if (
    control instanceof HTMLInputElement ||
    control instanceof HTMLSelectElement ||
    control instanceof HTMLTextAreaElement
  ) {
    return control.value;
  }
  throw new Error(`form has no control named ${name}`);
}

/** A `<select>` of `[value, label]` options with `selected` chosen. */
export function select(
  name: string,
  options: readonly (readonly [string, string])[],
  selected: string,
): HTMLSelectElement {
  const created = h("select", { name });
  for (const [value, label] of options) {
    created.append(h("option", { value, selected: value === selected }, label));
  }
  return created;
}

/** Whether the notice was set since the last page change (so it survives the next one). */
let isNoticeFresh = false;

/**
 * Shows `text` in the header's notice line (`#notice`), which outlives one page change: a delete
 * on a detail page says so on the list page it leads back to.
 */
export function notify(text: string, isError = false): void {
  const notice = document.getElementById("notice");
  if (notice === null) return;
  notice.textContent = text;
  notice.className = isError ? "error" : "";
  isNoticeFresh = true;
}

/** Called on every page change: clears a notice that was shown on an earlier page. */
export function ageNotice(): void {
  if (!isNoticeFresh) notify("");
  isNoticeFresh = false;
}
