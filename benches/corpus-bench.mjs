// The generated corpus (benches/corpus.mjs) on every engine in one run:
// native (cargo bench), wasm in Node (pkg/ sanitizeJson; pkg-worker/
// processRequest), wasm inside workerd (processRequest), and the
// JavaScript reference; per slice µs per event for one destination, µs
// per KB, and the ratios of the performance targets (per event: wasm's
// sanitizeJson; per request: processRequest, in Node and inside workerd;
// the JavaScript reference runs in Node). The native engine is the
// release profile (opt-level 3), once with the CPU's SHA instructions and
// once with the Worker's SHA-256 (feature soft-sha: sha2's unrolled
// software compression, the one wasm runs).
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { preparePolicy, Sanitizer } from "../www/dev/node.mjs";
import * as edge from "../pkg-worker/phimask.js";
import { corpus } from "./corpus.mjs";
import { CREDENTIALS, msPerCall, policyWith } from "./destinations.mjs";
import { was } from "./baseline.mjs";
import { referenceSanitizer } from "./reference.mjs";
import { workerdPerCall } from "./workerd.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Median of 5 rounds of µs per call of `fn` (each round ≥ minMs). */
function usPerCall(fn, minMs = 40) {
  const rounds = Array.from({ length: 5 }, () => msPerCall(fn, minMs) * 1000);
  return rounds.sort((a, b) => a - b)[2];
}

const batchOf = (events) => `{"batch":[${events.join(",")}]}`;

/** The native engine's figures per slice: { name: { sanitize, process } };
 * with `features`, built with them (soft-sha: the Worker's SHA-256, sha2's
 * unrolled software compression, where the default build uses the CPU's
 * SHA instructions). */
function native(file, features = []) {
  const out = execFileSync("cargo", ["bench", "--quiet", "--bench", "native", ...features], {
    cwd: root, encoding: "utf8", env: { ...process.env, CORPUS: file }, stdio: ["ignore", "pipe", "inherit"],
  });
  return Object.fromEntries(out.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => {
    const r = JSON.parse(l);
    return [r.name, r];
  }));
}

export async function corpusRows(base, key) {
  const policy = policyWith(base, 1, false); // d0: Amplitude's format, the production lists
  const slices = corpus(1).map((s) => ({ ...s, name: `${s.shape} ${s.bytes}`, batch: batchOf(s.events) }));
  mkdirSync(`${root}dist/bench`, { recursive: true });
  const file = `${root}dist/bench/corpus.json`;
  writeFileSync(file, JSON.stringify({ policy: JSON.stringify(policy), destination: "d0", secret: CREDENTIALS.amplitude, slices }));
  const nat = native(file);
  const soft = native(file, ["--features", "soft-sha"]);

  const full = new Sanitizer(policy, key);
  const worker = edge.Sanitizer.fromPrepared(preparePolicy(policy), key);
  worker.connect("d0", CREDENTIALS.amplitude);
  const reference = referenceSanitizer(policy, "d0", key);
  const bodies = slices.map((s) => new TextEncoder().encode(s.batch));
  const inWorkerd = await workerdPerCall(slices.map((s, i) => ({ policy, body: bodies[i], events: s.events.length })), key);

  const rows = slices.map((s, i) => {
    const n = s.events.length;
    const kb = s.events.reduce((sum, e) => sum + e.length, 0) / n / 1024;
    const done = worker.processRequest(bodies[i], "batch");
    if (done.accepted !== n) throw new Error(`${s.name}: not every event accepted`);
    const json = usPerCall(() => s.events.forEach((e) => full.sanitizeJson(e, "d0"))) / n;
    const ref = usPerCall(() => s.events.forEach((e) => reference(e))) / n;
    const proc = usPerCall(() => worker.processRequest(bodies[i], "batch")) / n;
    const workerd = (inWorkerd[i] * 1000) / n;
    const { sanitize, process: nativeProc } = nat[s.name];
    return {
      slice: s.name, kind: s.kind, events: n, "bytes/event": Math.round(kb * 1024), "masked/event": Math.round(done.report.d0.masked / n),
      "native µs": sanitize.toFixed(2), "wasm µs": json.toFixed(2), "JS µs": ref.toFixed(2),
      "wasm/JS": (json / ref).toFixed(2), "wasm/native": (json / sanitize).toFixed(2),
      "native batch µs": nativeProc.toFixed(2), "Node batch µs": proc.toFixed(2), "workerd batch µs": workerd.toFixed(2),
      "native batch µs, Worker's SHA-256": soft[s.name].process.toFixed(2),
      "batch/JS": (proc / ref).toFixed(2), "workerd/JS": (workerd / ref).toFixed(2),
      "batch/native": (proc / nativeProc).toFixed(2), "batch/native, same SHA-256": (proc / soft[s.name].process).toFixed(2),
      "workerd/native": (workerd / nativeProc).toFixed(2), "workerd/native, same SHA-256": (workerd / soft[s.name].process).toFixed(2),
      "µs/KB (Node batch)": (proc / kb).toFixed(2), "µs/KB (workerd)": (workerd / kb).toFixed(2),
    };
  });
  return { rows, masking: nat.masking, softMasking: soft.masking };
}

/** Masking per value: native's HMAC alone, and the masking-heavy slice
 * per masked value in each engine. */
export function maskingLine({ rows, masking, softMasking }) {
  const r = rows.find((x) => x.slice === "masked 32000");
  const per = (k) => (Number(r[k]) / r["masked/event"]).toFixed(3);
  const one = (m) => `${m.write_hex.toFixed(3)} µs (HMAC-SHA256 with its keyed state precomputed, two compressions: ${m.digest.toFixed(3)} µs; hex: ${Math.max(0, m.write_hex - m.digest).toFixed(3)} µs)`;
  return `Masking one value natively: ${one(masking)} with the CPU's SHA instructions, ${one(softMasking)} with the Worker's SHA-256 (sha2's unrolled software compression). The masked 32000 slice (${r["masked/event"]} distinct values masked per event) per masked value, parsing included: native ${per("native batch µs")} µs${was("masked value, native")} (${per("native batch µs, Worker's SHA-256")} µs with the Worker's SHA-256), wasm in Node ${per("Node batch µs")} µs${was("masked value, wasm Node")}, in workerd ${per("workerd batch µs")} µs${was("masked value, workerd")}.`;
}

/** The corpus targets: each line says the figure, the target, met or by
 * how much it is missed, and the old size build's figure. Per event is
 * sanitizeJson (pkg/, Node); per request is processRequest (pkg-worker/)
 * in Node and inside workerd. */
export function corpusTargets({ rows }) {
  const num = (r, k) => Number(r[k]);
  const worst = (k) => rows.reduce((a, r) => (num(r, k) > num(a, k) ? r : a));
  const line = (what, value, target, at, key) => `${what}: ${value.toFixed(2)}${at ? ` (${at})` : ""}, target ≤ ${target} — ${value <= target ? "met" : `missed by ${((value / target - 1) * 100).toFixed(0)}%`}${was(key)}`;
  const lines = [];
  const ratios = [
    ["wasm/JS", "wasm vs the JS reference per event (sanitizeJson in Node, worst slice)", 0.33, "wasm/JS"],
    ["batch/JS", "wasm vs the JS reference per request (processRequest in Node, worst slice)", 0.33, "batch/JS"],
    ["workerd/JS", "wasm vs the JS reference per request (processRequest inside workerd, worst slice)", 0.33, "workerd batch/JS"],
    ["wasm/native", "wasm vs native per event (sanitizeJson in Node, worst slice)", 1.5, "wasm/native"],
    ["batch/native", "wasm vs native per request (processRequest in Node, worst slice)", 1.5, "batch/native"],
    ["workerd/native", "wasm vs native per request (processRequest inside workerd, worst slice)", 1.5, "workerd batch/native"],
    ["batch/native, same SHA-256", "wasm vs native with the same SHA-256 per request (Node, worst slice)", 1.5, "batch/native, same SHA-256"],
    ["workerd/native, same SHA-256", "wasm vs native with the same SHA-256 per request (inside workerd, worst slice)", 1.5, "workerd batch/native, same SHA-256"],
  ];
  for (const [k, what, target, key] of ratios) lines.push(line(what, num(worst(k), k), target, worst(k).slice, key));
  const perKb = (name) => num(rows.find((r) => r.slice === name), "µs/KB (Node batch)");
  lines.push(line("per-KB cost, realistic 32 KB vs 1 KB (Node batch)", perKb("realistic 32000") / perKb("realistic 1024"), 1.2, "", "per-KB realistic"));
  const adversarial = rows.filter((r) => r.kind === "adversarial");
  const ratio = (r) => num(r, "µs/KB (Node batch)") / perKb(`realistic ${r.slice.split(" ")[1]}`);
  const hardest = adversarial.reduce((a, r) => (ratio(r) > ratio(a) ? r : a));
  lines.push(line("per-KB cost, adversarial vs realistic of the same size (worst)", ratio(hardest), 3, hardest.slice, "per-KB adversarial"));
  return lines;
}
