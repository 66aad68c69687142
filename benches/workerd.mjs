// The Worker's engine inside workerd (Miniflare), where the edge runs it:
// processRequest on a 500-event batch for N destinations (shared lists),
// timed from outside as the wall time of a request that runs it K times
// minus one that runs it 0 times (the same body either way), per call.
// Timers inside workerd do not advance during computation, so the time is
// taken here. Medians of 7 rounds.
import { readFileSync } from "node:fs";
import { Miniflare } from "miniflare";
import { preparePolicy } from "../www/dev/node.mjs";
import { batch500, CREDENTIALS, FORMATS, policyWith } from "./destinations.mjs";

const BENCH = `
import wasm from "./phimask_bg.wasm";
import { initSync, Sanitizer } from "./phimask.js";
initSync({ module: wasm });
const sanitizers = new Map();
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const id = url.searchParams.get("id");
    let s = sanitizers.get(id);
    if (!s) {
      const { prepared, key, credentials } = JSON.parse(env["POLICY_" + id]);
      s = Sanitizer.fromPrepared(Uint8Array.from(atob(prepared), (c) => c.charCodeAt(0)), key);
      credentials.forEach((c, i) => s.connect("d" + i, c));
      sanitizers.set(id, s);
    }
    const body = new Uint8Array(await request.arrayBuffer());
    const times = Number(url.searchParams.get("times"));
    let accepted = 0;
    for (let i = 0; i < times; i++) accepted += s.processRequest(body, "batch").accepted;
    return Response.json({ accepted });
  },
};`;

/** Milliseconds per processRequest call inside workerd, per case
 * ({ policy, key, body, events }; the policy's destinations d0 … dN-1 in
 * the benchmark's formats): medians of 7 rounds taken in turns. */
export async function workerdPerCall(cases, key) {
  const root = new URL("../pkg-worker/", import.meta.url);
  const bindings = {};
  cases.forEach((c, id) => {
    const prepared = Buffer.from(preparePolicy(c.policy)).toString("base64");
    const n = Object.keys(c.policy.destinations).length;
    bindings[`POLICY_${id}`] = JSON.stringify({ prepared, key, credentials: FORMATS.slice(0, n).map((f) => CREDENTIALS[f] ?? null) });
  });
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
    const run = async (id, times) => {
      const t = process.hrtime.bigint();
      const res = await mf.dispatchFetch(`http://bench/?id=${id}&times=${times}`, { method: "POST", body: cases[id].body });
      const { accepted } = await res.json();
      if (accepted !== cases[id].events * times) throw new Error(`workerd: ${accepted} events accepted`);
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    // As many calls per request as take about 200 ms, found on the warm-up.
    const K = [];
    for (const id of cases.keys()) {
      await run(id, 3);
      const once = Math.max(((await run(id, 5)) - (await run(id, 0))) / 5, 0.01);
      K[id] = Math.max(5, Math.min(100, Math.round(200 / once)));
    }
    const rounds = cases.map(() => []);
    for (let r = 0; r < 7; r++) {
      for (const id of cases.keys()) rounds[id].push(((await run(id, K[id])) - (await run(id, 0))) / K[id]);
    }
    return rounds.map((times) => times.sort((a, b) => a - b)[3]);
  } finally {
    await mf.dispose();
  }
}

/** Rows: ms per processRequest in workerd for N destinations (shared lists). */
export async function workerdRows(base, key, counts = [1, 3, 8]) {
  const body = batch500();
  const ms = await workerdPerCall(counts.map((n) => ({ policy: policyWith(base, n, false), body, events: 500 })), key);
  return counts.map((n, i) => ({ destinations: n, lists: "shared", "ms per request (workerd)": ms[i].toFixed(2), "µs per event": ((ms[i] * 1000) / 500).toFixed(2) }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const policy = JSON.parse(readFileSync(new URL("../policies/production.json", import.meta.url), "utf8"));
  console.table(await workerdRows(policy, "benchmark-key-0123456789abcdefghijklmnop"));
}
