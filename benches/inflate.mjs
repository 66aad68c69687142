// Inflating request bodies (www/worker/body.js) at several slice sizes:
// the compressed bytes written to the decompressor at a time. Small
// slices bound how much one write can inflate (deflate inflates at most
// ~1032:1) but cost CPU on every compressed body; large ones the reverse.
// For each slice: µs per body in Node and inside workerd (Miniflare; the
// wall time of a request inflating the body K times less one inflating it
// 0 times, per body: timers do not advance inside workerd) for a normal
// gzip batch, a 500 KB stored-deflate body (level 0: every byte costs a
// write) and a gzip bomb (100 KB inflating to 100 MB, refused at the
// limit); and workerd's peak memory growth for the bomb sent whole as a
// request (a fresh workerd per slice).
//   node benches/inflate.mjs
// Also the Worker's whole path for a gzip batch inside workerd (gzipPathRows).
import { readFileSync } from "node:fs";
import { deflateSync, gzipSync } from "node:zlib";
import { Miniflare } from "miniflare";
import { readBody, SLICE } from "../www/worker/body.js";
import { workerdPeakMemory } from "../tests/js/worker-harness.mjs";

export const SLICES = process.env.SLICES ? process.env.SLICES.split(",").map(Number) : [64, 1024, 4096, 16384, 65536];
const LIMIT = 512_000;
const MB = 1024 * 1024;

/** The bodies: name, Content-Encoding, compressed bytes, what readBody gives. */
export function inflateBodies() {
  const batch = JSON.stringify({
    batch: Array.from({ length: 500 }, (_, i) => ({
      type: "track", event: "Appointment Booked", userId: `u-${i}`, messageId: `m-${i}`,
      properties: { plan: "gold", value: i, note: `visit ${i} of the cardiology clinic` },
      context: { library: { name: "analytics-node", version: "2.1.0" }, locale: "en-US", page: { url: `https://clinic.example/book?step=${i}` } },
    })),
  });
  let text = "";
  for (let i = 0; text.length < 505_000; i++) text += `{"type":"page","name":"p${i}","anonymousId":"a${i % 97}"},`;
  const stored = `{"batch":[${text.slice(0, 505_000 - 13).replace(/,[^,]*$/, "")}]}`;
  return [
    { name: `gzip batch (${batch.length} bytes of JSON)`, encoding: "gzip", bytes: gzipSync(batch), ok: true },
    { name: `stored deflate (${stored.length} bytes)`, encoding: "deflate", bytes: deflateSync(stored, { level: 0 }), ok: true },
    { name: "gzip bomb (100 MB of spaces)", encoding: "gzip", bytes: gzipSync(Buffer.alloc(100 * MB, 0x20), { level: 9 }), ok: false },
  ];
}

async function inflateOnce(body, slice) {
  const request = new Request("http://bench/", { method: "POST", body: body.bytes, headers: { "Content-Encoding": body.encoding }, duplex: "half" });
  const out = await readBody(request, LIMIT, { slice });
  if (!!out.bytes !== body.ok) throw new Error(`${body.name}: ${out.error ?? "inflated"} at slice ${slice}`);
}

/** µs per body in Node: median of 5 rounds of `n` bodies. */
async function nodeMicros(body, slice, n = 20) {
  const rounds = [];
  for (let r = 0; r < 5; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await inflateOnce(body, slice);
    rounds.push(Number(process.hrtime.bigint() - t) / 1000 / n);
  }
  return rounds.sort((a, b) => a - b)[2];
}

const WORKER = `
import { readBody } from "./body.js";
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const slice = Number(url.searchParams.get("slice"));
    const times = Number(url.searchParams.get("times"));
    const encoding = request.headers.get("Content-Encoding");
    if (url.searchParams.has("whole")) {
      const out = await readBody(request, ${LIMIT}, { slice });
      return Response.json({ inflated: !!out.bytes });
    }
    const bytes = new Uint8Array(await request.arrayBuffer());
    let inflated = 0;
    for (let i = 0; i < times; i++) {
      const r = new Request("http://bench/", { method: "POST", body: bytes, headers: { "Content-Encoding": encoding } });
      if ((await readBody(r, ${LIMIT}, { slice })).bytes) inflated += 1;
    }
    return Response.json({ inflated });
  },
};`;

function workerd() {
  return new Miniflare({
    modules: [
      { type: "ESModule", path: "bench.js", contents: WORKER },
      { type: "ESModule", path: "body.js", contents: readFileSync(new URL("../www/worker/body.js", import.meta.url), "utf8") },
    ],
    compatibilityDate: "2026-04-26",
    cf: false,
  });
}

/** µs per body inside workerd: medians of 5 rounds of (K bodies − 0 bodies) / K. */
async function workerdMicros(mf, body, slice, times = 10) {
  const run = async (k) => {
    const t = process.hrtime.bigint();
    const res = await mf.dispatchFetch(`http://bench/?slice=${slice}&times=${k}`, { method: "POST", body: body.bytes, headers: { "Content-Encoding": "identity", "X-Encoding": body.encoding } });
    await res.json();
    return Number(process.hrtime.bigint() - t) / 1000;
  };
  const rounds = [];
  await run(1);
  for (let r = 0; r < 5; r++) rounds.push(((await run(times)) - (await run(0))) / times);
  return Math.max(rounds.sort((a, b) => a - b)[2], 0);
}

/** workerd's peak memory growth (MB) for the bomb sent as a request, in a fresh workerd. */
async function bombPeak(body, slice) {
  const mf = workerd();
  try {
    await mf.ready;
    await (await mf.dispatchFetch(`http://bench/?slice=${slice}&times=0`, { method: "POST", body: "{}" })).json();
    const before = Math.max(...workerdPeakMemory().values());
    for (let i = 0; i < 3; i++) {
      const res = await mf.dispatchFetch(`http://bench/?slice=${slice}&whole=1`, { method: "POST", body: body.bytes, headers: { "Content-Encoding": body.encoding } });
      if ((await res.json()).inflated) throw new Error("the bomb was inflated");
    }
    return (Math.max(...workerdPeakMemory().values()) - before) / MB;
  } finally {
    await mf.dispose();
  }
}

/** Rows: per slice size, µs per body in Node and workerd, and the bomb's peak memory in workerd. */
export async function inflateRows() {
  const bodies = inflateBodies();
  const rows = SLICES.map((slice) => ({ slice: `${slice}${slice === SLICE ? " (shipped)" : ""}` }));
  for (const [i, slice] of SLICES.entries()) {
    for (const body of bodies) rows[i][`Node µs: ${body.name}`] = (await nodeMicros(body, slice)).toFixed(0);
  }
  // The workerd worker reads Content-Encoding from the request it
  // makes; the body is sent identity, the encoding named here.
  const mf = new Miniflare({
    modules: [
      { type: "ESModule", path: "bench.js", contents: WORKER.replace('request.headers.get("Content-Encoding")', 'request.headers.get("X-Encoding")') },
      { type: "ESModule", path: "body.js", contents: readFileSync(new URL("../www/worker/body.js", import.meta.url), "utf8") },
    ],
    compatibilityDate: "2026-04-26",
    cf: false,
  });
  try {
    for (const [i, slice] of SLICES.entries()) {
      for (const body of bodies) rows[i][`workerd µs: ${body.name}`] = (await workerdMicros(mf, body, slice)).toFixed(0);
    }
  } finally {
    await mf.dispose();
  }
  const bomb = bodies.find((b) => !b.ok);
  for (const [i, slice] of SLICES.entries()) rows[i]["workerd peak MB: bomb"] = (await bombPeak(bomb, slice)).toFixed(1);
  return rows;
}


// The Worker's whole path for a gzip batch inside workerd: the body
// inflated by the Worker's reader (www/worker/body.js, shipped slice size),
// then processRequest on the Worker's engine (pkg-worker/) for N
// destinations; against the same batch sent uncompressed, and inflating
// alone. Timed from outside like benches/workerd.mjs: a request doing it
// K times less one doing it 0 times, per body; medians of 7 rounds.
const PATH = `
import wasm from "./phimask_bg.wasm";
import { initSync, Sanitizer } from "./phimask.js";
import { readBody } from "./body.js";
initSync({ module: wasm });
let s;
export default {
  async fetch(request, env) {
    if (!s) {
      const { prepared, key, credentials } = JSON.parse(env.POLICY);
      s = Sanitizer.fromPrepared(Uint8Array.from(atob(prepared), (c) => c.charCodeAt(0)), key);
      credentials.forEach((c, i) => s.connect("d" + i, c));
    }
    const url = new URL(request.url);
    const times = Number(url.searchParams.get("times"));
    const what = url.searchParams.get("what");
    const encoding = request.headers.get("X-Encoding");
    const bytes = new Uint8Array(await request.arrayBuffer());
    let accepted = 0;
    for (let i = 0; i < times; i++) {
      let body = bytes;
      if (encoding !== "identity") {
        const r = new Request("http://bench/", { method: "POST", body: bytes, headers: { "Content-Encoding": encoding } });
        const out = await readBody(r, ${LIMIT});
        if (!out.bytes) throw new Error("not inflated: " + out.error);
        body = out.bytes;
      }
      if (what !== "inflate") accepted += s.processRequest(body, "batch").accepted;
    }
    return Response.json({ accepted });
  },
};`;

/** Rows: ms per request inside workerd for a 500-event batch sent gzipped
 * (inflate + processRequest, and inflating alone) and uncompressed
 * (processRequest alone), for 3 destinations (shared lists). */
export async function gzipPathRows(base, key, n = 3) {
  const { preparePolicy } = await import("../www/dev/node.mjs");
  const { batch500, CREDENTIALS, FORMATS, policyWith } = await import("./destinations.mjs");
  const plain = batch500();
  const gz = gzipSync(plain);
  const root = new URL("../pkg-worker/", import.meta.url);
  const prepared = Buffer.from(preparePolicy(policyWith(base, n, false))).toString("base64");
  const mf = new Miniflare({
    modules: [
      { type: "ESModule", path: "bench.js", contents: PATH },
      { type: "ESModule", path: "body.js", contents: readFileSync(new URL("../www/worker/body.js", import.meta.url), "utf8") },
      { type: "ESModule", path: "phimask.js", contents: readFileSync(new URL("phimask.js", root), "utf8") },
      { type: "CompiledWasm", path: "phimask_bg.wasm", contents: readFileSync(new URL("phimask_bg.wasm", root)) },
    ],
    compatibilityDate: "2026-04-26",
    cf: false,
    bindings: { POLICY: JSON.stringify({ prepared, key, credentials: FORMATS.slice(0, n).map((f) => CREDENTIALS[f] ?? null) }) },
  });
  const cases = [
    { name: `gzip (${gz.length} bytes, ${plain.length} inflated): inflate + processRequest`, body: gz, encoding: "gzip", what: "both" },
    { name: "gzip: inflate alone", body: gz, encoding: "gzip", what: "inflate" },
    { name: `uncompressed (${plain.length} bytes): processRequest alone`, body: plain, encoding: "identity", what: "both" },
  ];
  try {
    const run = async (c, times) => {
      const t = process.hrtime.bigint();
      const res = await mf.dispatchFetch(`http://bench/?times=${times}&what=${c.what}`, { method: "POST", body: c.body, headers: { "X-Encoding": c.encoding } });
      if (!res.ok) throw new Error(`workerd: ${res.status} ${await res.text()}`);
      const { accepted } = await res.json();
      if (c.what !== "inflate" && accepted !== 500 * times) throw new Error(`workerd: ${accepted} events accepted`);
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    const K = 20;
    for (const c of cases) await run(c, 3);
    const rounds = cases.map(() => []);
    for (let r = 0; r < 7; r++) {
      for (const [i, c] of cases.entries()) rounds[i].push(((await run(c, K)) - (await run(c, 0))) / K);
    }
    return cases.map((c, i) => ({ body: c.name, destinations: n, "ms per request (workerd)": rounds[i].sort((a, b) => a - b)[3].toFixed(2) }));
  } finally {
    await mf.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const policy = JSON.parse(readFileSync(new URL("../policies/production.json", import.meta.url), "utf8"));
  console.table(await gzipPathRows(policy, "benchmark-key-0123456789abcdefghijklmnop"));
  if (!process.env.PATH_ONLY) console.table(await inflateRows());
}
