// The Worker engine's build settings side by side (make bench-builds):
// the shipped build (opt-level 3, wasm-opt -O3, SIMD128, SHA-256
// unrolled) and each of those choices undone: SHA-256 rolled, no SIMD128,
// wasm-opt -Oz, opt-level s, and opt-level z through -Oz (the old size
// build's level, on the stable toolchain); with the wasm's size (bytes,
// gzipped) and processRequest's speed in Node: the 500-event batch for 1
// and 3 destinations (shared lists), and three corpus slices for one (a
// scanned 32 KB text; distinct masked values in 1 KB and 32 KB events),
// measured in turns, medians of 7. The old shipped build's figures
// (benches/baseline-size-build.md) are printed beside them, as measured
// then. Written to benches/builds.md.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { preparePolicy } from "../www/dev/node.mjs";
import { baselineBuild } from "./baseline.mjs";
import { corpus } from "./corpus.mjs";
import { batch500, CREDENTIALS, FORMATS, msPerCall, policyWith } from "./destinations.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const KEY = "benchmark-key-0123456789abcdefghijklmnop";
const SHIPPED = "3 -O3";
const base = JSON.parse(readFileSync(`${root}policies/production.json`, "utf8"));

const BUILDS = [
  ["3 -O3", {}],
  ["3 -O3, SHA-256 rolled", { WORKER_SHA: "compact" }],
  ["3 -O3, no SIMD128", { WORKER_SIMD: "0" }],
  ["3 -Oz", { WASM_OPT_LEVEL: "-Oz" }],
  ["s -O3", { WORKER_OPT_LEVEL: "s" }],
  ["z -Oz (the old size build's level, stable)", { WORKER_OPT_LEVEL: "z", WASM_OPT_LEVEL: "-Oz" }],
];
const slices = corpus(1).filter((s) => ["scan 32000", "masked 1024", "masked 32000"].includes(`${s.shape} ${s.bytes}`));
const cases = [
  { name: "ms, 1 destination", n: 1, body: batch500(), per: 1 },
  { name: "ms, 3 destinations", n: 3, body: batch500(), per: 1 },
  ...slices.map((s) => ({ name: `µs/event, ${s.shape} ${s.bytes}`, n: 1, body: new TextEncoder().encode(`{"batch":[${s.events.join(",")}]}`), per: 1000 / s.events.length })),
];
const variants = [];
for (const [name, env] of BUILDS) {
  const tag = name.replace(/[^a-z0-9-]+/gi, "_");
  const out = `${root}target/bench-builds/${tag}`;
  mkdirSync(out, { recursive: true });
  console.error(`building ${name} ...`);
  execFileSync(`${root}scripts/build.sh`, {
    cwd: root, stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, WORKER_ONLY: "1", WORKER_OUT: out, ...env },
  });
  const engine = await import(`${out}/phimask.js?${tag}`);
  const wasm = readFileSync(`${out}/phimask_bg.wasm`);
  engine.initSync({ module: wasm });
  const sanitizers = cases.map(({ n }) => {
    const s = engine.Sanitizer.fromPrepared(preparePolicy(policyWith(base, n, false)), KEY);
    for (let i = 0; i < n; i++) s.connect(`d${i}`, CREDENTIALS[FORMATS[i]] ?? null);
    return s;
  });
  variants.push({ name, bytes: wasm.length, gzipped: gzipSync(wasm, { level: 9 }).length, sanitizers, times: cases.map(() => []) });
}

for (let round = 0; round < 7; round++) {
  for (const v of variants) v.sanitizers.forEach((s, i) => v.times[i].push(msPerCall(() => s.processRequest(cases[i].body, "batch"), 150) * cases[i].per));
}
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
const shipped = variants.find((v) => v.name === SHIPPED);
const rows = variants.map((v) => {
  const row = { build: v.name + (v === shipped ? " (shipped)" : ""), bytes: v.bytes, gzipped: v.gzipped, "Δ gzipped": v.gzipped - shipped.gzipped };
  cases.forEach((c, i) => {
    row[c.name] = median(v.times[i]).toFixed(2);
  });
  row["speed vs shipped (3 destinations)"] = (median(shipped.times[1]) / median(v.times[1])).toFixed(2);
  return row;
});
// The old shipped build as measured then (not rebuilt: it needed a nightly
// toolchain): sizes and speeds from the baseline file, "–" where it has
// no figure.
const old = baselineBuild();
if (old) {
  const row = { build: `${old.build} (old shipped, ${old.date}, not rebuilt)`, bytes: old.bytes, gzipped: old.gzipped, "Δ gzipped": old.gzipped - shipped.gzipped };
  cases.forEach((c) => {
    row[c.name] = old[c.name] ?? "–";
  });
  row["speed vs shipped (3 destinations)"] = "–";
  rows.push(row);
}
console.table(rows);
const keys = Object.keys(rows[0]);
writeFileSync(`${root}benches/builds.md`, [
  "# The Worker engine's build settings",
  "",
  `Written by \`make bench-builds\` (${process.version}, ${new Date().toISOString().slice(0, 10)}): pkg-worker as shipped (opt-level 3, wasm-opt -O3, SIMD128, SHA-256 unrolled, the pinned stable toolchain), with each of those undone: SHA-256's rolled compression (feature \`compact-sha\`), no SIMD128, wasm-opt -Oz, opt-level s, and opt-level z through wasm-opt -Oz (the old size build's level, here on the stable toolchain: the old shipped build also rebuilt the standard library with nightly-only flags and built its hot paths at speed with \`#[optimize]\`, which are gone, so this row is not that build). The last row is the old shipped build as measured on its day (benches/baseline-size-build.md), not rebuilt.`,
  "processRequest in Node, the production policy's lists with `notes` scanned (benches/destinations.mjs): a 500-event batch for 1 and 3 destinations (ms per request), and three slices of the generated corpus for one (µs per event): a 32 KB scanned text of detector near misses, and distinct masked values (about 33 an event in 1 KB events, 1,300 in 32 KB ones). Medians of 7 rounds in turns. Figures vary by ±30% from run to run; the ratios within one run hold better.",
  "",
  `| ${keys.join(" | ")} |`, `|${keys.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${keys.map((k) => r[k]).join(" | ")} |`),
  "",
].join("\n"));
