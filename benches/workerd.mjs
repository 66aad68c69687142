// The Worker's engine inside workerd (Miniflare), where the edge runs it:
// processRequest on a 500-event batch for N destinations (shared lists),
// timed from outside as the wall time of a request that runs it K times
// minus one that runs it 0 times (the same body either way), per call.
// Timers inside workerd do not advance during computation, so the time is
// taken here. Medians of 7 rounds.
import { readFileSync } from "node:fs";
import { Miniflare } from "miniflare";
import { preparePolicy } from "../www/node.mjs";
import { batch500, CREDENTIALS, FORMATS, policyWith } from "./destinations.mjs";

const BENCH = `
import wasm from "./phimask_bg.wasm";
import { initSync, Sanitizer } from "./phimask.js";
initSync({ module: wasm });
const sanitizers = new Map();
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("destinations"));
    let s = sanitizers.get(n);
    if (!s) {
      const { prepared, key, credentials } = JSON.parse(env["POLICY_" + n]);
      s = Sanitizer.fromPrepared(Uint8Array.from(atob(prepared), (c) => c.charCodeAt(0)), key);
      credentials.forEach((c, i) => s.connect("d" + i, c));
      sanitizers.set(n, s);
    }
    const body = new Uint8Array(await request.arrayBuffer());
    const times = Number(url.searchParams.get("times"));
    let accepted = 0;
    for (let i = 0; i < times; i++) accepted += s.processRequest(body, "batch").accepted;
    return Response.json({ accepted });
  },
};`;

/** Rows: ms per processRequest in workerd for N destinations (shared lists). */
export async function workerdRows(base, key, counts = [1, 3, 8]) {
  const root = new URL("../pkg-worker/", import.meta.url);
  const bindings = {};
  for (const n of counts) {
    const prepared = Buffer.from(preparePolicy(policyWith(base, n, false))).toString("base64");
    bindings[`POLICY_${n}`] = JSON.stringify({ prepared, key, credentials: FORMATS.slice(0, n).map((f) => CREDENTIALS[f] ?? null) });
  }
  const mf = new Miniflare({
    modules: [
      { type: "ESModule", path: "bench.js", contents: BENCH },
      { type: "ESModule", path: "phimask.js", contents: readFileSync(new URL("phimask.js", root), "utf8") },
      { type: "CompiledWasm", path: "phimask_bg.wasm", contents: readFileSync(new URL("phimask_bg.wasm", root)) },
    ],
    compatibilityDate: "2026-04-26",
    bindings,
  });
  try {
    const body = batch500();
    const run = async (n, times) => {
      const t = process.hrtime.bigint();
      const res = await mf.dispatchFetch(`http://bench/?destinations=${n}&times=${times}`, { method: "POST", body });
      const { accepted } = await res.json();
      if (accepted !== 500 * times) throw new Error(`workerd: ${accepted} events accepted`);
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    const K = 20;
    const rounds = Object.fromEntries(counts.map((n) => [n, []]));
    for (const n of counts) await run(n, 3); // compile and warm up
    for (let r = 0; r < 7; r++) {
      for (const n of counts) rounds[n].push(((await run(n, K)) - (await run(n, 0))) / K);
    }
    return counts.map((n) => {
      const ms = rounds[n].sort((a, b) => a - b)[3];
      return { destinations: n, lists: "shared", "ms per request (workerd)": ms.toFixed(2), "µs per event": ((ms * 1000) / 500).toFixed(2) };
    });
  } finally {
    await mf.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const policy = JSON.parse(readFileSync(new URL("../policies/production.json", import.meta.url), "utf8"));
  console.table(await workerdRows(policy, "benchmark-key-0123456789abcdefghijklmnop"));
}
