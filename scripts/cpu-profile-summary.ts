/**
 * Summarises a V8 `.cpuprofile` (node --cpu-prof): the top functions by self time and by
 * inclusive time (a function counted once per sample however deep it recurses), and self time by
 * file, each as ms and % of all sampled time (idle and GC included, so the table says what the
 * process spent its time on).
 *
 *   node --import tsx scripts/cpu-profile-summary.ts FILE.cpuprofile [--top 30]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
  readonly children?: readonly number[];
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: "string", default: "30" } },
  allowPositionals: true,
});
const top = Number(values.top);
const file = positionals[0];
if (file === undefined) {
  console.error("usage: cpu-profile-summary.ts FILE.cpuprofile [--top N]");
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;

const byId = new Map<number, ProfileNode>();
const parentOf = new Map<number, number>();
for (const node of profile.nodes) {
  byId.set(node.id, node);
  for (const child of node.children ?? []) parentOf.set(child, node.id);
}

function shortUrl(url: string): string {
  const at = url.search(/\/(server|client|protocol|node_modules)\//);
  return at >= 0 ? url.slice(at + 1) : url.replace(/^file:\/\//, "");
}

function frameKey(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url === "" ? "" : ` ${shortUrl(url)}:${lineNumber + 1}`;
  return `${functionName === "" ? "(anonymous)" : functionName}${where}`;
}

const selfUs = new Map<string, number>();
const totalUs = new Map<string, number>();
const fileSelfUs = new Map<string, number>();
let allUs = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const deltaUs = profile.timeDeltas[i] ?? 0;
  const leaf = byId.get(profile.samples[i]!);
  if (leaf === undefined) continue;
  allUs += deltaUs;
  const leafKey = frameKey(leaf);
  selfUs.set(leafKey, (selfUs.get(leafKey) ?? 0) + deltaUs);
  const leafFile = leaf.callFrame.url === "" ? "(native/vm)" : shortUrl(leaf.callFrame.url);
  fileSelfUs.set(leafFile, (fileSelfUs.get(leafFile) ?? 0) + deltaUs);
  const seen = new Set<string>();
  for (let id: number | undefined = leaf.id; id !== undefined; id = parentOf.get(id)) {
    const key = frameKey(byId.get(id)!);
    if (seen.has(key)) continue;
    seen.add(key);
    totalUs.set(key, (totalUs.get(key) ?? 0) + deltaUs);
  }
}

function print(title: string, table: Map<string, number>): void {
  console.log(`\n${title}`);
  const rows = [...table].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [key, us] of rows) {
    const ms = (us / 1000).toFixed(0).padStart(7);
    const pct = ((100 * us) / allUs).toFixed(1).padStart(5);
    console.log(`${ms} ms ${pct}%  ${key}`);
  }
}

console.log(`${file}: ${(allUs / 1000).toFixed(0)} ms sampled, ${profile.samples.length} samples`);
print("self time by function", selfUs);
print("inclusive time by function", totalUs);
print("self time by file", fileSelfUs);
