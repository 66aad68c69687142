// The old size build's figures (benches/baseline-size-build.md), kept as
// measured: "was X" beside each new figure in make bench and make
// bench-builds.
import { readFileSync } from "node:fs";

const FILE = new URL("./baseline-size-build.md", import.meta.url);

/** Rows of the Markdown table under the heading that starts with `heading`. */
function tableUnder(heading) {
  let text;
  try {
    text = readFileSync(FILE, "utf8");
  } catch {
    return [];
  }
  const lines = text.split("\n");
  const at = lines.findIndex((l) => l.startsWith(`## ${heading}`));
  if (at < 0) return [];
  const rows = [];
  for (const line of lines.slice(at + 1)) {
    if (line.startsWith("## ")) break;
    if (line.startsWith("|") && !line.startsWith("|---")) rows.push(line.split("|").slice(1, -1).map((c) => c.trim()));
  }
  return rows;
}

const figures = new Map(tableUnder("Figures").slice(1).map(([k, v]) => [k, v]));

/** " (was X)" for a figure the baseline has, else "". */
export function was(key) {
  const v = figures.get(key);
  return v ? ` (was ${v})` : "";
}

/** The old shipped build's row of make bench-builds, by column name. */
export function baselineBuild() {
  const [head, row] = tableUnder("The old shipped build");
  if (!head || !row) return null;
  const out = Object.fromEntries(head.map((k, i) => [k, row[i]]));
  return { ...out, bytes: Number(out.bytes), gzipped: Number(out.gzipped), date: "2026-12-01" };
}
