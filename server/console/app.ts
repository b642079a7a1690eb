/**
 * The web console (`/console`, docs/design/api.md "Web console"): the entry of the browser bundle.
 * It routes the URL hash to a page (`#/basins`, `#/basins/B`, `#/basins/B/streams/S`, `#/tokens`,
 * `#/metrics?…`) and keeps the access-token field of the header. Pages are in `pages/`, and every
 * call goes through the Connect-web clients of `api.ts`.
 * Bundled by `scripts/build-console.mjs`; browser code, so outside the server's tsconfig.
 */
import { storedToken, storeToken } from "./api.js";
import { ageNotice, h } from "./dom.js";
import { basinPage } from "./pages/basin.js";
import { basinsPage } from "./pages/basins.js";
import { metricsPage } from "./pages/metrics.js";
import { streamPage } from "./pages/stream.js";
import { tokensPage } from "./pages/tokens.js";

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`missing #${id}`);
  return found as T;
}

const main = element<HTMLElement>("main");
const tokenForm = element<HTMLFormElement>("token-form");
const tokenInput = element<HTMLInputElement>("token");

/** A path segment of the hash; a malformed escape is kept as typed rather than thrown. */
function decodePart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** What to do when the current page is left (stop its live tail). */
let leaveCurrent: () => void = () => {};

/** Shows the page the hash names; an unknown hash shows the basins. */
function route(): void {
  leaveCurrent();
  leaveCurrent = () => {};
  const hash = window.location.hash.replace(/^#/, "");
  const queryAt = hash.indexOf("?");
  const path = queryAt === -1 ? hash : hash.slice(0, queryAt);
  const query = new URLSearchParams(queryAt === -1 ? "" : hash.slice(queryAt + 1));
  const parts = path
    .split("/")
    .filter((part) => part !== "")
    .map(decodePart);
  let page: HTMLElement;
  let section = "basins";
  if (parts[0] === "tokens") {
    page = tokensPage();
    section = "tokens";
  } else if (parts[0] === "metrics") {
    page = metricsPage(query);
    section = "metrics";
  } else if (
    parts[0] === "basins" &&
    parts[1] !== undefined &&
    parts[2] === "streams" &&
    parts[3] !== undefined
  ) {
    const shown = streamPage(parts[1], parts[3]);
    leaveCurrent = shown.leave;
    page = shown.element;
  } else if (parts[0] === "basins" && parts[1] !== undefined) {
    page = basinPage(parts[1]);
  } else {
    page = basinsPage();
  }
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    link.classList.toggle("current", link.dataset["section"] === section);
  }
  main.replaceChildren(page);
  ageNotice();
}

tokenInput.value = storedToken();
tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  storeToken(tokenInput.value.trim());
  route();
});
window.addEventListener("hashchange", route);
route();
// The page is usable from here on; tests wait for this mark.
document.body.append(h("span", { id: "console-ready", hidden: true }));
