/**
 * S2 URIs as the S2 CLI takes them: `s2://basin/stream` names a stream (the stream name may
 * contain `/`), `s2://basin` (or a bare basin name) a basin, and `s2://basin/prefix` a listing.
 * Names are checked only for shape here; the server applies its naming rules.
 */
import { UsageError } from "./args.js";

const scheme = "s2://";

/** A basin and the rest of the path (empty when the URI names only the basin). */
function splitUri(text: string, what: string): { basin: string; rest: string } {
  let path: string;
  if (text.startsWith(scheme)) {
    path = text.slice(scheme.length);
  } else if (text.includes("://")) {
    throw new UsageError(`bad ${what} URI \`${text}\`: the scheme must be s2://`);
  } else {
    path = text;
  }
  const slash = path.indexOf("/");
  const basin = slash === -1 ? path : path.slice(0, slash);
  const rest = slash === -1 ? "" : path.slice(slash + 1);
  if (basin === "") throw new UsageError(`bad ${what} URI \`${text}\`: no basin name`);
  return { basin, rest };
}

/** The basin of `s2://basin`, `s2://basin/` or `basin`. */
export function parseBasinUri(text: string): string {
  const { basin, rest } = splitUri(text, "basin");
  if (rest !== "") {
    throw new UsageError(`bad basin URI \`${text}\`: expected s2://basin without a stream`);
  }
  return basin;
}

/** The basin and stream of `s2://basin/stream`. */
export function parseStreamUri(text: string): { basin: string; stream: string } {
  if (!text.startsWith(scheme)) {
    throw new UsageError(`bad stream URI \`${text}\`: expected s2://basin/stream`);
  }
  const { basin, rest } = splitUri(text, "stream");
  if (rest === "") throw new UsageError(`bad stream URI \`${text}\`: no stream name`);
  return { basin, stream: rest };
}

/** The basin and stream-name prefix of `s2://basin[/prefix]` or `basin`. */
export function parseListUri(text: string): { basin: string; prefix: string } {
  const { basin, rest } = splitUri(text, "basin");
  return { basin, prefix: rest };
}

/** The URI of a stream, for messages. */
export function streamUri(basin: string, stream: string): string {
  return `${scheme}${basin}/${stream}`;
}
