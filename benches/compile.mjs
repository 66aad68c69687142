// The first request's cost, in a fresh Node process each, for a policy of
// N rules: from its prepared bytes (the Worker's way): compiling and
// instantiating the Worker's engine (pkg-worker/), then
// Sanitizer.fromPrepared; from JSON (the npm package's way): compiling
// and instantiating pkg/, then `new Sanitizer(json, key)`, which validates
// and compiles; the prepared compile after the Worker's start-up run
// (www/worker/warm-up.js, which the Worker does at module scope, before
// any request); and each compile again once warm. Medians of 5 processes
// each, for N = 100, 500, 1000 and 2000, to see whether compile time
// grows linearly with the rules.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { preparePolicy } from "../www/dev/node.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const ACTIONS = ["allow", "mask", { action: "mask", normalize: "email" }, "zip3", "year", "url", "ip", { action: "allow", scan: true }];

/** A policy with `n` rules: event, user and context properties, some nested, every action. */
export function policyOf(n) {
  const lists = { event_properties: {}, user_properties: {}, context: {} };
  const kinds = Object.keys(lists);
  for (let i = 0; i < n; i++) {
    const path = i % 5 === 0 ? `group${i % 17}.field_${i}` : `field_${i}`;
    lists[kinds[i % 3]][path] = ACTIONS[i % ACTIONS.length];
  }
  return {
    version: 1, environment: "bench", hipaa: true, allowlists: lists,
    destinations: {
      amplitude: { connection: "server-side", format: "amplitude", endpoint: "https://api2.amplitude.com/2/httpapi" },
      warehouse: { connection: "server-side", endpoint: "https://warehouse.example/in", restrict_phi: false, baa: true },
    },
  };
}

// Run in the child: the timings of one fresh process, as JSON.
const CHILD = `
const { readFileSync } = await import("node:fs");
const t0 = performance.now();
const engine = await import(${JSON.stringify(`${root}pkg-worker/phimask.js`)});
const bytes = readFileSync(${JSON.stringify(`${root}pkg-worker/phimask_bg.wasm`)});
const t1 = performance.now();
engine.initSync({ module: new WebAssembly.Module(bytes) });
const t2 = performance.now();
const prepared = Buffer.from(process.argv[1], "base64");
const s = engine.Sanitizer.fromPrepared(prepared, "k".repeat(40));
const t3 = performance.now();
s.free();
const w = [];
for (let i = 0; i < 5; i++) { const a = performance.now(); engine.Sanitizer.fromPrepared(prepared, "k".repeat(40)).free(); w.push(performance.now() - a); }
w.sort((a, b) => a - b);
console.log(JSON.stringify({ load: t1 - t0, instantiate: t2 - t1, compile: t3 - t2, warm: w[2] }));
`;

// The npm package's way: a policy as JSON, validated and compiled.
const JSON_CHILD = `
const { readFileSync } = await import("node:fs");
const engine = await import(${JSON.stringify(`${root}pkg/phimask.js`)});
const bytes = readFileSync(${JSON.stringify(`${root}pkg/phimask_bg.wasm`)});
const t1 = performance.now();
engine.initSync({ module: new WebAssembly.Module(bytes) });
const t2 = performance.now();
const json = Buffer.from(process.argv[1], "base64").toString("utf8");
new engine.Sanitizer(json, "k".repeat(40)).free();
const t3 = performance.now();
const w = [];
for (let i = 0; i < 5; i++) { const a = performance.now(); new engine.Sanitizer(json, "k".repeat(40)).free(); w.push(performance.now() - a); }
w.sort((a, b) => a - b);
console.log(JSON.stringify({ jsonInstantiate: t2 - t1, jsonCompile: t3 - t2, jsonWarm: w[2] }));
`;

// The Worker's way: the start-up run, then the first request's compile.
const STARTED = `
const { readFileSync } = await import("node:fs");
const engine = await import(${JSON.stringify(`${root}pkg-worker/phimask.js`)});
const { warmUp } = await import(${JSON.stringify(`${root}www/worker/warm-up.js`)});
engine.initSync({ module: new WebAssembly.Module(readFileSync(${JSON.stringify(`${root}pkg-worker/phimask_bg.wasm`)})) });
const prepared = Buffer.from(process.argv[1], "base64");
warmUp(engine.Sanitizer, prepared);
const t0 = performance.now();
engine.Sanitizer.fromPrepared(prepared, "k".repeat(40)).free();
console.log(JSON.stringify({ started: performance.now() - t0 }));
`;

export function compileRows(counts = [100, 500, 1000, 2000]) {
  const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
  return counts.map((n) => {
    const policy = policyOf(n);
    const prepared = Buffer.from(preparePolicy(policy)).toString("base64");
    const json = Buffer.from(JSON.stringify(policy)).toString("base64");
    const child = (script, arg) => JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script, arg], { encoding: "utf8" }));
    const runs = Array.from({ length: 5 }, () => ({ ...child(CHILD, prepared), ...child(STARTED, prepared), ...child(JSON_CHILD, json) }));
    const m = Object.fromEntries(["instantiate", "compile", "started", "warm", "jsonInstantiate", "jsonCompile", "jsonWarm"].map((k) => [k, median(runs.map((r) => r[k]))]));
    return {
      rules: n, "instantiate ms": m.instantiate.toFixed(2), "first compile ms": m.compile.toFixed(2),
      "first request ms (prepared)": (m.instantiate + m.compile).toFixed(2),
      "instantiate pkg/ ms": m.jsonInstantiate.toFixed(2), "first validate + compile ms": m.jsonCompile.toFixed(2),
      "first request ms (JSON)": (m.jsonInstantiate + m.jsonCompile).toFixed(2),
      "first compile after start-up ms": m.started.toFixed(2),
      "warm compile ms": m.warm.toFixed(2), "warm validate + compile ms": m.jsonWarm.toFixed(2), "µs per rule (warm)": ((m.warm * 1000) / n).toFixed(2),
    };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) console.table(compileRows());
