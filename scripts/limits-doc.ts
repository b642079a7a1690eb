// Writes docs/limits.md: every exported numeric constant of the modules that hold the server's
// limits, timeouts and defaults, with its value, the flag that overrides it (if any) and its doc
// comment (the reason for the value). `server/test/docs/limits-doc.test.ts` fails when the file is
// stale, so the list cannot drift from the code. Run: `node --import tsx scripts/limits-doc.ts`.
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The modules whose exported numeric constants are limits, in the order the doc lists them. */
export const limitModules = [
  "server/src/core/limits.ts",
  "server/src/storage/cache/segment-cache.ts",
  "server/src/storage/cache/segment-files.ts",
  "server/src/storage/maintenance.ts",
  "server/src/storage/compaction.ts",
  "server/src/storage/gc.ts",
  "server/src/storage/bucket-usage.ts",
  "server/src/storage/kv/switchable.ts",
  "server/src/node-flags.ts",
] as const;

/** The `tributary serve` flag that sets (or bounds) a constant's value. */
const flags: Readonly<Record<string, string>> = {
  flushIntervalMsDefault: "--flush-interval-ms",
  flushIntervalMsMax: "--flush-interval-ms (bound)",
  metricsFlushIntervalMs: "--metrics-flush-interval-ms",
  cacheBytesMaxDefault: "--cache-size",
  gcGraceMsDefault: "--gc-grace-ms",
  gcGraceMsMax: "--gc-grace-ms (bound)",
  checkpointIntervalMsDefault: "--checkpoint-interval-ms",
  checkpointIntervalMsMax: "--checkpoint-interval-ms (bound)",
  checkpointWalBytesDefault: "--checkpoint-wal-bytes",
  checkpointWalBytesMax: "--checkpoint-wal-bytes (bound)",
  sessionsMax: "--max-sessions",
  sessionsMaxBound: "--max-sessions (bound)",
  connectionsMax: "--max-connections",
  connectionsMaxBound: "--max-connections (bound)",
  s2sFrameBufferBytesMax: "--max-frame-buffer",
  s2sFrameBufferBytesMaxBound: "--max-frame-buffer (bound)",
  semiSpaceMiBMax: "NODE_OPTIONS=--max-semi-space-size=N",
};

interface Limit {
  readonly name: string;
  readonly value: number;
  readonly comment: string;
}

/** A value as a reader wants it: bytes in KiB/MiB/GiB, durations in s/min/h/days. */
function formatValue(name: string, value: number): string {
  const plain = Number.isInteger(value) ? value.toLocaleString("en-US") : String(value);
  const isBytes = /Bytes/.test(name) && Number.isInteger(value);
  const perSecond = /PerSecond/.test(name) ? "/s" : "";
  if (isBytes && value >= 1024) {
    for (const [unit, size] of [
      ["GiB", 2 ** 30],
      ["MiB", 2 ** 20],
      ["KiB", 2 ** 10],
    ] as const) {
      if (value >= size && value % size === 0) return `${value / size} ${unit}${perSecond}`;
    }
  }
  const isMs = /Ms($|[A-Z])/.test(name) && !isBytes;
  if (isMs && value >= 1000) {
    for (const [unit, size] of [
      ["days", 86_400_000],
      ["h", 3_600_000],
      ["min", 60_000],
      ["s", 1000],
    ] as const) {
      if (value % size === 0) return `${value / size} ${unit}`;
    }
  }
  if (isMs) return `${plain} ms`;
  if (/Secs$|Secs(Max|Min)$/.test(name) && value % 86_400 === 0 && value >= 86_400) {
    return `${value / 86_400} days`;
  }
  return plain;
}

/**
 * The comment of each exported `const`: its own doc comment (`/** … *\/`), else the section it
 * stands in (the last `//` line comment above it, e.g. "Names and tokens (…)").
 */
function commentsOf(source: string, file: string): Map<string, string> {
  const sourceFile = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true);
  const comments = new Map<string, string>();
  let section = "";
  for (const statement of sourceFile.statements) {
    const texts = (ts.getLeadingCommentRanges(source, statement.getFullStart()) ?? []).map(
      (range) => source.slice(range.pos, range.end),
    );
    const lineComments = texts.filter((text) => text.startsWith("//"));
    if (lineComments.length > 0) section = lineComments.map(cleanComment).join(" ");
    // The doc comment just above it (a module's header comment also leads its first statement).
    const docComment = texts.filter((text) => text.startsWith("/**")).at(-1);
    const own = docComment === undefined ? "" : cleanComment(docComment);
    const isExported = ts
      .getModifiers(statement as ts.HasModifiers)
      ?.some((modifier) => modifier.kind === ts.SyntaxKind.ExportKeyword);
    if (!ts.isVariableStatement(statement) || isExported !== true) continue;
    for (const declaration of statement.declarationList.declarations) {
      if (ts.isIdentifier(declaration.name)) {
        comments.set(declaration.name.text, own !== "" ? own : section);
      }
    }
  }
  return comments;
}

function cleanComment(text: string): string {
  return text
    .replace(/^\/\*\*|\*\/$/g, "")
    .split("\n")
    .map((line) => line.replace(/^\s*(\*|\/\/)\s?/, "").trim())
    .filter((line) => line !== "")
    .join(" ")
    .replaceAll("|", "\\|");
}

async function limitsOf(file: string): Promise<Limit[]> {
  const source = await readFile(path.join(root, file), "utf8");
  const comments = commentsOf(source, file);
  const module = (await import(path.join(root, file))) as Record<string, unknown>;
  const limits: Limit[] = [];
  for (const [name, comment] of comments) {
    const value = module[name];
    if (typeof value !== "number") continue;
    limits.push({ name, value, comment });
  }
  return limits;
}

export async function renderLimitsDoc(): Promise<string> {
  const lines = [
    "# Limits, timeouts and defaults",
    "",
    "Generated by `scripts/limits-doc.ts` from the code (`node --import tsx scripts/limits-doc.ts`;",
    "a test fails when this file is stale). Each is a named constant; the flag column names the",
    "`tributary serve` flag that overrides it, where there is one.",
  ];
  for (const file of limitModules) {
    lines.push(
      "",
      `## \`${file}\``,
      "",
      "| constant | value | flag | why |",
      "| --- | --- | --- | --- |",
    );
    for (const { name, value, comment } of await limitsOf(file)) {
      lines.push(
        `| \`${name}\` | ${formatValue(name, value)} | ${flags[name] ?? ""} | ${comment} |`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

export const limitsDocPath = path.join(root, "docs/limits.md");

if (
  process.argv[1] !== undefined &&
  fileURLToPath(import.meta.url) === path.resolve(process.argv[1])
) {
  await writeFile(limitsDocPath, await renderLimitsDoc());
  console.log(`wrote ${path.relative(root, limitsDocPath)}`);
}
