// The Worker engine's build settings side by side (make bench-builds):
// opt-level z, s and 3, each through wasm-opt -Oz and -O3, with the wasm's
// size (bytes, gzipped) and processRequest's speed in Node on the 500-event
// batch for 1 and 3 destinations (shared lists), measured in turns,
// medians of 7. Written to benches/builds.md.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { preparePolicy } from "../www/node.mjs";
import { batch500, CREDENTIALS, FORMATS, policyWith } from "./destinations.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const KEY = "benchmark-key-0123456789abcdefghijklmnop";
const SHIPPED = "z -Oz";
const base = JSON.parse(readFileSync(`${root}policies/production.json`, "utf8"));

const variants = [];
for (const level of ["z", "s", "3"]) {
  for (const wasmOpt of ["-Oz", "-O3"]) {
    const out = `${root}target/bench-builds/${level}${wasmOpt}`;
    mkdirSync(out, { recursive: true });
    console.error(`building opt-level ${level}, wasm-opt ${wasmOpt} ...`);
    execFileSync(`${root}scripts/build.sh`, {
      cwd: root, stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, WORKER_ONLY: "1", WORKER_OPT_LEVEL: level, WORKER_OUT: out, WASM_OPT_LEVEL: wasmOpt },
    });
    const engine = await import(`${out}/phimask.js?${level}${wasmOpt}`);
    const wasm = readFileSync(`${out}/phimask_bg.wasm`);
    engine.initSync({ module: wasm });
    const sanitizers = [1, 3].map((n) => {
      const s = engine.Sanitizer.fromPrepared(preparePolicy(policyWith(base, n, false)), KEY);
      for (let i = 0; i < n; i++) s.connect(`d${i}`, CREDENTIALS[FORMATS[i]] ?? null);
      return s;
    });
    variants.push({ name: `${level} ${wasmOpt}`, bytes: wasm.length, gzipped: gzipSync(wasm, { level: 9 }).length, sanitizers, times: [[], []] });
  }
}

const body = batch500();
const msPerCall = (s) => {
  for (let i = 0; i < 3; i++) s.processRequest(body, "batch");
  const start = process.hrtime.bigint();
  let n = 0;
  while (process.hrtime.bigint() - start < 200_000_000n) {
    s.processRequest(body, "batch");
    n += 1;
  }
  return Number(process.hrtime.bigint() - start) / 1e6 / n;
};
for (let round = 0; round < 7; round++) {
  for (const v of variants) v.sanitizers.forEach((s, i) => v.times[i].push(msPerCall(s)));
}
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
const shipped = variants.find((v) => v.name === SHIPPED);
const rows = variants.map((v) => {
  const [one, three] = v.times.map(median);
  return {
    "opt-level, wasm-opt": v.name + (v === shipped ? " (shipped)" : ""), bytes: v.bytes, gzipped: v.gzipped,
    "Δ gzipped": v.gzipped - shipped.gzipped, "ms, 1 destination": one.toFixed(2), "ms, 3 destinations": three.toFixed(2),
    "speed vs shipped (3)": (median(shipped.times[1]) / three).toFixed(2),
  };
});
console.table(rows);
const keys = Object.keys(rows[0]);
writeFileSync(`${root}benches/builds.md`, [
  "# The Worker engine's build settings",
  "",
  `Written by \`make bench-builds\` (${process.version}, ${new Date().toISOString().slice(0, 10)}): pkg-worker built at each opt-level and wasm-opt level;`,
  "processRequest on a 500-event batch (the production policy's lists) in Node, medians of 7 rounds in turns. Figures vary by ±30% from run to run; the ratios hold better.",
  "",
  `| ${keys.join(" | ")} |`, `|${keys.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${keys.map((k) => r[k]).join(" | ")} |`),
  "",
].join("\n"));
