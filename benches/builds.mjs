// The Worker engine's build settings side by side (make bench-builds):
// the shipped build (opt-level z, its hot paths at speed, SIMD128, SHA-256
// rolled) and each of those choices undone, then opt-level z, s and 3
// through wasm-opt -Oz and -O3; with the wasm's size (bytes, gzipped) and
// processRequest's speed in Node: the 500-event batch for 1 and 3
// destinations (shared lists), and two corpus slices for one (a scanned
// 32 KB text; distinct masked values), measured in turns, medians of 7.
// Written to benches/builds.md.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { preparePolicy } from "../www/dev/node.mjs";
import { corpus } from "./corpus.mjs";
import { batch500, CREDENTIALS, FORMATS, msPerCall, policyWith } from "./destinations.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const KEY = "benchmark-key-0123456789abcdefghijklmnop";
const SHIPPED = "z -Oz";
const base = JSON.parse(readFileSync(`${root}policies/production.json`, "utf8"));

const BUILDS = [
  ["z -Oz", {}],
  ["z -Oz, SHA-256 unrolled", { WORKER_SHA: "unrolled" }],
  ["z -Oz, no SIMD128", { WORKER_SIMD: "0" }],
  ["z -Oz, hot paths for size", { WORKER_SPEED: "0" }],
  ["z -Oz, core and alloc at z", { WORKER_STD: "z" }],
  ["z -O3", { WASM_OPT_LEVEL: "-O3" }],
  ...["s", "3"].flatMap((level) => ["-Oz", "-O3"].map((o) => [`${level} ${o}`, { WORKER_OPT_LEVEL: level, WASM_OPT_LEVEL: o }])),
];
const slices = corpus(1).filter((s) => ["scan 32000", "masked 32000"].includes(`${s.shape} ${s.bytes}`));
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
console.table(rows);
const keys = Object.keys(rows[0]);
writeFileSync(`${root}benches/builds.md`, [
  "# The Worker engine's build settings",
  "",
  `Written by \`make bench-builds\` (${process.version}, ${new Date().toISOString().slice(0, 10)}): pkg-worker as shipped (opt-level z, wasm-opt -Oz, its hot paths at speed, core and alloc at 3, SIMD128, SHA-256 rolled), with each of those undone, and at opt-level s and 3 through wasm-opt -Oz and -O3.`,
  "processRequest in Node, the production policy's lists: a 500-event batch for 1 and 3 destinations (ms per request), and two slices of the generated corpus for one (µs per event): a 32 KB scanned text of detector near misses, and about a thousand distinct masked values an event. Medians of 7 rounds in turns. Figures vary by ±30% from run to run; the ratios hold better.",
  "",
  `| ${keys.join(" | ")} |`, `|${keys.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${keys.map((k) => r[k]).join(" | ")} |`),
  "",
].join("\n"));
