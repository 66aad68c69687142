// What a refused request costs: the bundled Worker (`wrangler deploy
// --dry-run`, the development policy, its six destinations) inside workerd
// (Miniflare), µs per request for each refusal on the order of work
// (route → method → rate limit → key and origin → body size → body key →
// engine) beside the same batch accepted. Timers do not advance inside
// workerd, so the time is taken here: the wall time of a request that
// hands the Worker's fetch K requests in turn, less one that builds the
// same K requests and hands them to nobody, per request; medians of 7
// rounds taken in turns. The bundled engine counts its own calls
// (processRequest, requestWriteKey), and the Worker's one log line per
// request it took ("phimask":"request") is counted too: a refusal shows
// neither, so it never reached the engine.
//   node benches/refusals.mjs
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FAKE_CREDENTIALS } from "../www/dev/fakes.mjs";
import { preparedModule } from "../www/dev/prepared-module.mjs";
import { root, runWrangler, sleep, startWorker } from "../tests/js/worker-harness.mjs";

const MASKING_KEY = "benchmark-key-0123456789abcdefghijklmnop";
const OPEN = "wk_bench_open";
const BOUND = "wk_bench_site";
const SITE = "https://clinic.example";

// Builds the K requests of a run from the one it was sent (bytes, headers,
// a fresh client IP each unless the case keeps one) and hands each to the
// Worker's fetch, or, with X-Bench-Mode: build, to nobody: the difference
// is the Worker's own cost. Answers the statuses and the engine's calls.
const ENTRY = `import policy from "./policy.js";
import { createWorker } from ${JSON.stringify(join(root, "www/worker/worker.js"))};
const worker = createWorker(policy);
let client = 0;
export default {
  async fetch(request, env, ctx) {
    const times = Number(request.headers.get("X-Bench-Times"));
    const build = request.headers.get("X-Bench-Mode") === "build";
    const keepIp = request.headers.get("X-Bench-Ip");
    const method = request.headers.get("X-Bench-Method");
    const headers = new Headers(request.headers);
    for (const h of ["X-Bench-Times", "X-Bench-Mode", "X-Bench-Ip", "X-Bench-Method"]) headers.delete(h);
    const bytes = new Uint8Array(await request.arrayBuffer());
    const before = { ...globalThis.phimaskBenchCalls };
    const statuses = {};
    for (let i = 0; i < times; i++) {
      const h = new Headers(headers);
      // A fresh /64 each time: the limiter counts an IPv6 client by its /64.
      client += 1;
      h.set("CF-Connecting-IP", keepIp ?? "2001:db8:" + ((client >>> 16) & 0xffff).toString(16) + ":" + (client & 0xffff).toString(16) + "::1");
      const one = new Request(request.url, { method, headers: h, body: bytes.length ? bytes : null });
      const res = build ? new Response(null, { status: 204 }) : await worker.fetch(one, env, ctx);
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    }
    const after = globalThis.phimaskBenchCalls ?? {};
    const calls = Object.fromEntries(["processRequest", "requestWriteKey"].map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)]));
    return Response.json({ statuses, calls });
  },
  queue: (batch, env, ctx) => worker.queue(batch, env, ctx),
};
`;

/** The bundle, with the engine counting its own calls (a counter, no log). */
async function bundleBench(policy) {
  const dir = mkdtempSync(join(tmpdir(), "phimask-refusals-"));
  writeFileSync(join(dir, "policy.js"), preparedModule(JSON.stringify(policy), "the benchmark's policy"));
  writeFileSync(join(dir, "entry.js"), ENTRY);
  writeFileSync(join(dir, "wrangler.toml"), 'name = "phimask-refusals"\nmain = "entry.js"\ncompatibility_date = "2026-04-26"\nsend_metrics = false\n');
  const { code, output } = await runWrangler(["deploy", "--dry-run", "--outdir", "dist"], dir);
  if (code !== 0) throw new Error(`wrangler failed:\n${output}`);
  const script = join(dir, "dist/entry.js");
  let text = readFileSync(script, "utf8");
  const count = (name) => `(globalThis.phimaskBenchCalls ??= {}).${name} = (globalThis.phimaskBenchCalls.${name} ?? 0) + 1;\n`;
  for (const [name, at] of [["processRequest", /processRequest\(body, call, maxBodyBytes, signals\) \{\n/], ["requestWriteKey", /function requestWriteKey\(body, call\) \{\n/]]) {
    const m = at.exec(text);
    if (!m) throw new Error(`the bundle has no ${name} to count`);
    text = text.slice(0, m.index + m[0].length) + count(name) + text.slice(m.index + m[0].length);
  }
  writeFileSync(script, text);
  return { script, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A batch of `n` realistic events (the examples in turn), each with its own IDs. */
export function exampleBatch(n, extra = {}) {
  const examples = ["track-appointment", "track-order", "identify-patient", "page-condition", "group-practice"]
    .map((name) => JSON.parse(readFileSync(`${root}examples/events/${name}.json`, "utf8")));
  const batch = Array.from({ length: n }, (_, i) => {
    const e = structuredClone(examples[i % examples.length]);
    e.messageId = `bench-${i}`;
    if (e.userId) e.userId = `patient-${i}`;
    e.anonymousId = `anon-${i}`;
    return e;
  });
  return JSON.stringify({ batch, ...extra });
}

const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;

/** The cases, cheapest refusal first, each with the step that refuses it. */
function cases(events) {
  const body = exampleBatch(events);
  const json = { "Content-Type": "application/json" };
  const big = exampleBatch(Math.ceil((events * 600_000) / body.length));
  return [
    { name: "404 not_found (no such route)", step: "route", path: "/v1/nope", headers: { ...json, Authorization: basic(OPEN) }, body, status: 404 },
    { name: "405 method_not_allowed (PUT)", step: "method", method: "PUT", headers: { ...json, Authorization: basic(OPEN) }, body, status: 405 },
    { name: "429 rate_limited (the client's limit)", step: "rate limit", ip: "203.0.113.9", headers: { ...json, Authorization: basic(OPEN) }, body, status: 429 },
    { name: "401 invalid_authorization (malformed header)", step: "key", headers: { ...json, Authorization: "Bearer not-basic" }, body, status: 401 },
    { name: "401 invalid_write_key (unknown header key)", step: "key", headers: { ...json, Authorization: basic("wk_bench_unknown") }, body, status: 401 },
    { name: "403 origin_not_allowed (bound key, other Origin)", step: "origin", headers: { ...json, Authorization: basic(BOUND), Origin: "https://elsewhere.example" }, body, status: 403 },
    { name: `413 batch_too_large (Content-Length ${big.length})`, step: "body size", headers: { ...json, Authorization: basic(OPEN) }, body: big, status: 413 },
    { name: "401 invalid_write_key (unknown key in the body)", step: "body key", headers: json, body: exampleBatch(events, { writeKey: "wk_bench_unknown" }), status: 401 },
    { name: `200 accepted (${events} events, 6 destinations)`, step: "engine, queue", headers: { ...json, Authorization: basic(OPEN) }, body, status: 200 },
  ];
}

/** Rows: µs per request inside workerd for each refusal and the accepted batch, with the engine's calls. */
export async function refusalRows({ events = 20, rounds = 7 } = {}) {
  const policy = JSON.parse(readFileSync(`${root}policies/development.json`, "utf8"));
  const built = await bundleBench(policy);
  // RATE_LIMIT_CLIENT allows one request per client IP a minute: the 429
  // case keeps its IP (used up before), every other request comes from a
  // fresh one. RATE_LIMIT_KEY never refuses here.
  const worker = await startWorker(built.script, {
    PHI_MASKING_KEY: MASKING_KEY,
    WRITE_KEYS: `${OPEN},${BOUND}@${SITE}`,
    QUEUE_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString("base64"),
    AUTH_AMPLITUDE: FAKE_CREDENTIALS.amplitude,
    AUTH_MIXPANEL: FAKE_CREDENTIALS.mixpanel,
    AUTH_GA4: `${FAKE_CREDENTIALS.ga4.measurement_id}:${FAKE_CREDENTIALS.ga4.api_secret}`,
    AUTH_POSTHOG: FAKE_CREDENTIALS.posthog,
  }, { spy: true, ratelimits: { RATE_LIMIT_CLIENT: { limit: 1, period: 60 }, RATE_LIMIT_KEY: { limit: 1_000_000_000, period: 60 } } });
  const list = cases(events);
  const requestLines = () => worker.logs.filter((l) => l.includes('"phimask":"request"')).length;
  const run = async (c, times, mode = "fetch") => {
    // The 429 case's client: its one request a minute used up before each
    // run, and no run straddles a new minute (the limiter counts fixed windows).
    if (c.ip && mode === "fetch") {
      const into = Date.now() % 60_000;
      if (into > 57_000) await sleep(60_000 - into + 50);
      await worker.mf.dispatchFetch(`http://edge.test${c.path ?? "/v1/batch"}`, { method: "POST", body: c.body, headers: { ...c.headers, "X-Bench-Times": "1", "X-Bench-Ip": c.ip, "X-Bench-Method": "POST" } }).then((r) => r.arrayBuffer());
    }
    const lines = requestLines();
    const t = process.hrtime.bigint();
    const res = await worker.mf.dispatchFetch(`http://edge.test${c.path ?? "/v1/batch"}`, {
      method: "POST", body: c.body,
      headers: { ...c.headers, "X-Bench-Times": String(times), "X-Bench-Mode": mode, "X-Bench-Method": c.method ?? "POST", ...(c.ip && { "X-Bench-Ip": c.ip }) },
    });
    const answer = await res.json();
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (mode === "fetch" && answer.statuses[c.status] !== times) throw new Error(`${c.name}: answered ${JSON.stringify(answer.statuses)}`);
    return { ms, calls: answer.calls, lines: requestLines() - lines };
  };
  try {
    // K per case: as many requests as take about 150 ms, found on the warm-up.
    const K = [];
    for (const c of list) {
      await run(c, 3);
      await run(c, 3, "build");
      const once = Math.max(((await run(c, 10)).ms - (await run(c, 10, "build")).ms) / 10, 0.005);
      K.push(Math.max(10, Math.min(2000, Math.round(150 / once))));
    }
    const us = list.map(() => []);
    const seen = list.map(() => ({ processRequest: 0, requestWriteKey: 0, lines: 0, requests: 0 }));
    for (let r = 0; r < rounds; r++) {
      for (const [i, c] of list.entries()) {
        const took = await run(c, K[i]);
        const built = await run(c, K[i], "build");
        us[i].push(((took.ms - built.ms) * 1000) / K[i]);
        seen[i].processRequest += took.calls.processRequest;
        seen[i].requestWriteKey += took.calls.requestWriteKey;
        seen[i].lines += took.lines;
        seen[i].requests += K[i];
      }
    }
    const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
    const accepted = median([...us.at(-1)]);
    return list.map((c, i) => {
      const m = median(us[i]);
      return {
        request: c.name, "refused at": c.step, bytes: Buffer.byteLength(c.body),
        "µs per request (workerd)": m.toFixed(1), "of the accepted": `${((m / accepted) * 100).toFixed(1)}%`,
        "processRequest calls": `${seen[i].processRequest} / ${seen[i].requests}`,
        "requestWriteKey calls": `${seen[i].requestWriteKey} / ${seen[i].requests}`,
        "request log lines": `${seen[i].lines} / ${seen[i].requests}`,
      };
    });
  } finally {
    await worker.mf.dispose();
    built.cleanup();
  }
}

/** Whether every refusal stayed out of the engine and every accepted request went through it once. */
export function refusalsCheck(rows) {
  const none = (s) => s.startsWith("0 / ");
  const each = (s) => { const [a, b] = s.split(" / "); return a === b; };
  return rows.every((r) => (r["refused at"] === "engine, queue"
    ? each(r["processRequest calls"]) && each(r["request log lines"])
    : none(r["processRequest calls"]) && none(r["request log lines"]) && (r["refused at"] === "body key" || none(r["requestWriteKey calls"]))));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await refusalRows();
  console.table(rows);
  console.log(refusalsCheck(rows) ? "no refused request reached the engine" : "A REFUSED REQUEST REACHED THE ENGINE");
  if (!refusalsCheck(rows)) process.exitCode = 1;
}
