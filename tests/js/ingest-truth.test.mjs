// The request path of the edge Worker tells the truth, inside workerd
// (Miniflare on the bundle `wrangler deploy --dry-run` produces), sending
// to a real HTTP server on 127.0.0.1:
// - /health answers 503 whenever events would be refused, saying why;
// - an engine trap is answered 500 and the next request runs on a fresh
//   engine instance;
// - refusals are cheap: the write key is checked before the engine
//   sanitizes anything, a malformed Authorization header is refused,
//   over-limit bodies (plain or compressed) are answered 413 at once;
// - a batch's materialized size is bounded before anything is built;
// - the `rejected` list of an answer is capped.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { bundle, startDestination, startWorker, until, workerdPeakMemory } from "./worker-harness.mjs";

const KEY = "ingest-truth-masking-key-0123456789abcdef";
const WRITE_KEY = "wk_ingest_truth";
const basic = (user, password = "") => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const hmac = (v) => createHmac("sha256", KEY).update(v).digest("hex");
const MB = 1024 * 1024;
/** The most any one workerd process's peak memory grew since `before` (a workerdPeakMemory() map). */
const peakGrowth = (before) => Math.max(0, ...[...workerdPeakMemory()].map(([pid, peak]) => peak - (before.get(pid) ?? peak)));

/** The red team's request: a 100 KB shared context and 137,000 empty events (511 KB). */
const redTeam = (extra = "") => `{${extra}"context":{"pad":"${"x".repeat(100_000)}"},"batch":[${Array(137_000).fill("{}").join(",")}]}`;

let dest;
let policy;
let built;

before(async () => {
  dest = await startDestination();
  policy = {
    version: 1, environment: "test", hipaa: true,
    allowlists: { event_properties: { plan: "allow" } },
    destinations: { analytics: { connection: "server-side", endpoint: dest.url } },
  };
  built = await bundle(policy);
});

after(async () => {
  await dest?.close();
  built?.cleanup();
});

/** POSTs to the Worker; a hang fails after `ms` (a limit, not a measurement). */
async function send(worker, path, body, headers = { Authorization: basic(WRITE_KEY) }, ms = 20_000) {
  const started = Date.now();
  const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" || body instanceof Uint8Array || body instanceof ReadableStream ? body : JSON.stringify(body),
    ...(body instanceof ReadableStream && { duplex: "half" }),
    signal: AbortSignal.timeout(ms),
  });
  const text = await res.text();
  return { status: res.status, text, body: text ? JSON.parse(text) : null, ms: Date.now() - started };
}

const track = (userId) => ({ type: "track", event: "Booked", userId, properties: { plan: "gold" } });
/** The events the destination received for `userId`. */
const got = (userId) => dest.delivered().filter((e) => e.userId === hmac(userId));

describe("/health answers 503 whenever events would be refused", () => {
  const GOOD = { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY };
  // Each case: the bindings, startWorker's options, the problem codes /health gives.
  const cases = [
    ["no WRITE_KEYS", { PHI_MASKING_KEY: KEY }, {}, ["no_write_keys"]],
    ["WRITE_KEYS of blanks only", { ...GOOD, WRITE_KEYS: " , ,  " }, {}, ["no_write_keys"]],
    ["no PHI_MASKING_KEY", { WRITE_KEYS: WRITE_KEY }, {}, ["missing_key"]],
    ["a short PHI_MASKING_KEY", { ...GOOD, PHI_MASKING_KEY: "short-key-value" }, {}, ["key_too_short"]],
    ["no DELIVERY queue binding", GOOD, { without: ["DELIVERY"] }, ["no_delivery_queue"]],
    ["no DELIVERY_STATE database binding", GOOD, { without: ["DELIVERY_STATE"] }, ["no_delivery_state"]],
    ["no queues and no databases, no write keys", { PHI_MASKING_KEY: KEY }, { queues: false }, ["no_delivery_queue", "no_delivery_state", "no_ledger", "no_write_keys"]],
  ];
  for (const [name, bindings, options, codes] of cases) {
    test(`${name}: 503 with ${codes.join(", ")}; a track call is refused`, async () => {
      const w = await startWorker(built.script, bindings, options);
      try {
        const res = await w.mf.dispatchFetch("http://edge.test/health");
        assert.equal(res.status, 503);
        const text = await res.text();
        const health = JSON.parse(text);
        assert.equal(health.ok, false);
        assert.deepEqual(health.problems.map((p) => p.code), codes);
        for (const p of health.problems) assert.equal(typeof p.message, "string");
        assert.deepEqual(health.error, health.problems[0]);
        for (const secret of [KEY, WRITE_KEY, "short-key-value"]) assert.ok(!text.includes(secret), "never a secret's value");
        // The tracking routes refuse for the first of the same reasons.
        const post = await send(w, "/v1/track", track("u-health"));
        assert.equal(post.status, 503);
        assert.equal(post.body.code, codes[0]);
        // HEAD: the same status, no body.
        const head = await w.mf.dispatchFetch("http://edge.test/health", { method: "HEAD" });
        assert.equal(head.status, 503);
        assert.equal(await head.text(), "");
      } finally {
        await w.mf.dispose();
      }
    });
  }

  test("an invalid prepared policy: 503 invalid_policy", async () => {
    const damaged = await bundle(policy, (text) => text.replace(/prepared: "(.)/, (_, c) => `prepared: "${c === "A" ? "B" : "A"}`));
    const w = await startWorker(damaged.script, GOOD);
    try {
      const res = await w.mf.dispatchFetch("http://edge.test/health");
      assert.equal(res.status, 503);
      const health = await res.json();
      assert.deepEqual(health.problems.map((p) => p.code), ["invalid_policy"]);
      assert.equal((await send(w, "/v1/track", track("u-health"))).status, 503);
    } finally {
      await w.mf.dispose();
      damaged.cleanup();
    }
  });

  test("configured: 200, and HEAD answers as GET without a body (not 405)", async () => {
    const w = await startWorker(built.script, GOOD);
    try {
      const res = await w.mf.dispatchFetch("http://edge.test/health");
      assert.equal(res.status, 200);
      const health = await res.json();
      assert.equal(health.ok, true);
      assert.equal(health.problems, undefined);
      assert.deepEqual(health.databases, { DELIVERY_STATE: true, LEDGER: true });
      const head = await w.mf.dispatchFetch("http://edge.test/health", { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-type"), "application/json");
      assert.equal(await head.text(), "");
      const put = await w.mf.dispatchFetch("http://edge.test/health", { method: "PUT", body: "{}" });
      assert.equal(put.status, 405);
      assert.equal(put.headers.get("allow"), "GET, HEAD");
    } finally {
      await w.mf.dispose();
    }
  });
});

describe("an engine trap is answered 500 and the next request gets a fresh instance", () => {
  let trapping;
  let worker;

  before(async () => {
    // The bundled engine traps on a body carrying "phimask-test-trap":
    // it scribbles over the instance's memory (as a trap may leave it)
    // and throws the RuntimeError a wasm trap throws.
    trapping = await bundle(policy, undefined, (text) => {
      const at = /processRequest\(body, call, maxBodyBytes, signals\) \{\n/.exec(text);
      const wasm = /passArray8ToWasm0\(body, (\w+)\.__wbindgen_malloc\)/.exec(text.slice(at.index))[1];
      const trap = `if (new TextDecoder().decode(body).includes("phimask-test-trap")) { new Uint8Array(${wasm}.memory.buffer).fill(0xa5, 1 << 20); throw new WebAssembly.RuntimeError("unreachable"); }\n`;
      return text.slice(0, at.index + at[0].length) + trap + text.slice(at.index + at[0].length);
    });
    worker = await startWorker(trapping.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
  });

  after(async () => {
    await worker?.mf.dispose();
    trapping?.cleanup();
  });

  test("500 engine_error (SDKs retry), logged without values; the next batch is 200 and arrives", async () => {
    assert.equal((await send(worker, "/v1/track", track("u-before-trap"))).status, 200);
    for (let round = 1; round <= 2; round++) {
      const trapped = await send(worker, "/v1/batch", { batch: [{ type: "track", event: "phimask-test-trap", userId: "jane@x.com" }] });
      assert.equal(trapped.status, 500, trapped.text);
      assert.equal(trapped.body.success, false);
      assert.equal(trapped.body.code, "engine_error");
      assert.ok(!trapped.text.includes("jane"));
      const next = await send(worker, "/v1/batch", { batch: [track(`u-after-trap-${round}`), { ...track(`u-after-trap-${round}`), type: "identify" }] });
      assert.equal(next.status, 200, next.text);
      assert.deepEqual(next.body, { success: true });
      await until(() => got(`u-after-trap-${round}`).length === 2, `round ${round}'s events`);
    }
    const said = worker.logs.filter((l) => l.includes("engine trapped"));
    assert.equal(said.length, 2, worker.logs.join("\n"));
    for (const line of said) {
      assert.deepEqual(JSON.parse(line), { phimask: "engine trapped: a fresh instance was made", call: "batch", error: "RuntimeError: unreachable" });
    }
    // The policy was compiled again on each fresh instance.
    assert.equal(worker.logs.filter((l) => l.includes('"phimask":"policy compiled"')).length, 3);
    assert.ok(!worker.logs.join("\n").includes("jane"));
    assert.equal(got("jane@x.com").length, 0);
  });
});

test("a trap while compiling the policy: 503 engine_error, and the next request compiles it on a fresh instance", async () => {
  // The second compile traps (the first is the start-up run's).
  const trapping = await bundle(policy, undefined, (text) => {
    const at = /static fromPrepared\(prepared, key\) \{\n/.exec(text);
    // It scribbles over the instance's memory first, as a trap may leave it.
    const wasm = /passArray8ToWasm0\(prepared, (\w+)\.__wbindgen_malloc\)/.exec(text.slice(at.index))[1];
    const trap = `globalThis.phimaskTestCompiles = (globalThis.phimaskTestCompiles ?? 0) + 1; if (globalThis.phimaskTestCompiles === 2) { new Uint8Array(${wasm}.memory.buffer).fill(0xa5, 1 << 20); throw new WebAssembly.RuntimeError("unreachable"); }\n`;
    return text.slice(0, at.index + at[0].length) + trap + text.slice(at.index + at[0].length);
  });
  const worker = await startWorker(trapping.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
  try {
    const first = await send(worker, "/v1/track", track("u-compile-trap"));
    assert.equal(first.status, 503, first.text);
    assert.equal(first.body.code, "engine_error");
    const next = await send(worker, "/v1/track", track("u-after-compile-trap"));
    assert.equal(next.status, 200, next.text);
    await until(() => got("u-after-compile-trap").length === 1, "the next request's event");
    assert.equal(got("u-compile-trap").length, 0);
    assert.equal(worker.logs.filter((l) => l.includes('"call":"compile"') && l.includes("engine trapped: a fresh instance was made")).length, 1);
  } finally {
    await worker.mf.dispose();
    trapping.cleanup();
  }
});

describe("cheap refusals, a bounded materialized size, a capped rejected list", () => {
  let worker;

  before(async () => {
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: `other-key,${WRITE_KEY}` });
    assert.equal((await send(worker, "/v1/track", track("u-warm"))).status, 200);
  });

  after(async () => {
    await worker?.mf.dispose();
  });

  test("a body's write key is checked before the engine reads any event", async () => {
    // Each body would be refused by the engine (413, 400) if it got that
    // far: a 401 shows the key was checked first.
    const cases = [
      ["/v1/batch", redTeam('"writeKey":"wrong",'), 401, "invalid_write_key"],
      ["/v1/batch", redTeam(), 401, "missing_write_key"],
      ["/v1/batch", { writeKey: "wrong", batch: [{ type: "track", userId: "jane@x.com" }] }, 401, "invalid_write_key"],
      ["/v1/track", { writeKey: "wrong", userId: "jane@x.com", properties: { deep: JSON.parse("[".repeat(80) + "]".repeat(80)) } }, 401, "invalid_write_key"],
      ["/v1/batch", { batch: [{ type: "nonsense", writeKey: "wrong" }] }, 401, "invalid_write_key"],
      ["/v1/identify", { writeKey: "", userId: "jane@x.com" }, 401, "missing_write_key"],
    ];
    for (const [path, body, status, code] of cases) {
      const res = await send(worker, path, body, {});
      assert.equal(res.status, status, `${code}: ${res.text.slice(0, 200)}`);
      assert.equal(res.body.code, code);
      assert.ok(!res.text.includes("jane"));
    }
    // A body that is not JSON is still refused as such (nothing to read a key from).
    assert.equal((await send(worker, "/v1/batch", '{"writeKey":"wk', {})).body.code, "invalid_json");
    // The body's key, right: the same request is read (here: refused whole).
    const sized = await send(worker, "/v1/batch", redTeam(`"writeKey":"${WRITE_KEY}",`), {});
    assert.equal(sized.status, 413);
    assert.equal(sized.body.code, "batch_too_large");
  });

  test("the red team's batch (100 KB context × 137,000 events): 401 without a key, 413 with one, workerd's memory bounded, the engine still usable", async () => {
    // A Worker of its own: the peak it measures is not one an earlier test set.
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
    try {
      assert.equal((await send(worker, "/v1/track", track("u-before-red-team"))).status, 200);
      const peakBefore = workerdPeakMemory();
      const body = redTeam();
      assert.ok(body.length > 510_000 && body.length < 512_000, `${body.length} bytes`);
      const anonymous = await send(worker, "/v1/batch", body, {});
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.body.code, "missing_write_key");
      const keyed = await send(worker, "/v1/batch", body);
      assert.equal(keyed.status, 413);
      assert.equal(keyed.body.code, "batch_too_large");
      assert.match(keyed.body.error, /shared "context"/);
      const growth = peakGrowth(peakBefore);
      console.log(`red team batch: 401 in ${anonymous.ms} ms, 413 in ${keyed.ms} ms; workerd peak memory grew ${(growth / MB).toFixed(1)} MB`);
      // Materialized, it would be 13.7 GB; the bound docs/worker.md states.
      assert.ok(growth < 32 * MB, `workerd's peak memory grew ${growth} bytes`);
      // Nothing of it was delivered; the next ordinary batch is.
      const next = await send(worker, "/v1/batch", { batch: [track("u-after-red-team")] });
      assert.equal(next.status, 200);
      await until(() => got("u-after-red-team").length === 1, "the next batch");
      assert.ok(!dest.requests.some((r) => r.body.includes('"pad"')), "nothing of the refused batch");
    } finally {
      await worker.mf.dispose();
    }
  });

  test("a malformed Authorization header is refused 401 invalid_authorization, never passed over for the body's key", async () => {
    const headers = [
      "Basic !!!not-base64!!!",
      "Basic " + Buffer.from(`${WRITE_KEY}:`).toString("base64").slice(1),
      basic("", "password"),
      "Basic",
      `Bearer ${WRITE_KEY}`,
      WRITE_KEY,
      "Basic " + Buffer.from([0xff, 0xfe, 0x3a]).toString("base64"),
    ];
    for (const authorization of headers) {
      const res = await send(worker, "/v1/track", { ...track("u-bad-auth"), writeKey: WRITE_KEY }, { Authorization: authorization });
      assert.equal(res.status, 401, `${authorization}: ${res.text}`);
      assert.equal(res.body.code, "invalid_authorization");
      assert.ok(!res.text.includes(WRITE_KEY), "the answer never quotes the header");
    }
    // A well-formed header with an unknown key: invalid_write_key, the body's key unused.
    const unknown = await send(worker, "/v1/track", { ...track("u-bad-auth"), writeKey: WRITE_KEY }, { Authorization: basic("wk_unknown") });
    assert.equal(unknown.body.code, "invalid_write_key");
    // A sentinel after them: nothing of the refused ones arrived.
    assert.equal((await send(worker, "/v1/track", track("u-auth-sentinel"))).status, 200);
    await until(() => got("u-auth-sentinel").length === 1, "the sentinel");
    assert.equal(got("u-bad-auth").length, 0);
  });

  /** A body stream: `bytes`, then nothing more, never closed (a client still sending). */
  const stalling = (bytes) => new ReadableStream({
    start(controller) {
      for (let at = 0; at < bytes.length; at += 64 * 1024) controller.enqueue(bytes.subarray(at, at + 64 * 1024));
    },
  });

  test("a body over the limit is answered 413 at once: reading stops at the limit", async () => {
    const over = new TextEncoder().encode(JSON.stringify({ batch: [track("u-over")], pad: "x".repeat(600_000) }));
    // Still sending: a Worker that read to the end would never answer.
    const streamed = await send(worker, "/v1/batch", stalling(over), undefined, 10_000);
    assert.equal(streamed.status, 413);
    assert.equal(streamed.body.code, "batch_too_large");
    const single = await send(worker, "/v1/track", stalling(new TextEncoder().encode(JSON.stringify({ ...track("u-over"), pad: "x".repeat(40_000) }))), undefined, 10_000);
    assert.equal(single.status, 413);
    assert.equal(single.body.code, "event_too_large");
    // A declared length over the limit: refused before a byte is read.
    const declared = await send(worker, "/v1/batch", over);
    assert.equal(declared.status, 413);
  });

  test("compressed bodies over the limit are answered 413 at once (no hang)", async () => {
    const gz = gzipSync(JSON.stringify({ batch: [track("u-gzip-comment")] }));
    // A gzip header may carry a comment (FLG.FCOMMENT): 513 KB of it.
    const comment = Buffer.concat([gz.subarray(0, 3), Buffer.from([gz[3] | 0x10]), gz.subarray(4, 10), Buffer.alloc(513 * 1024, 0x61), Buffer.from([0]), gz.subarray(10)]);
    const cases = [
      ["/v1/batch", comment, "batch_too_large"],
      // 40,000 spaces, stored (level 0): more compressed bytes than an event may have.
      ["/v1/track", gzipSync(Buffer.alloc(40_000, 0x20), { level: 0 }), "event_too_large"],
    ];
    for (const [path, bytes, code] of cases) {
      const whole = await send(worker, path, new Uint8Array(bytes), { Authorization: basic(WRITE_KEY), "Content-Encoding": "gzip" }, 10_000);
      assert.equal(whole.status, 413, whole.text);
      assert.equal(whole.body.code, code);
      // The same, streamed without an end or a declared length.
      const streamed = await send(worker, path, stalling(new Uint8Array(bytes)), { Authorization: basic(WRITE_KEY), "Content-Encoding": "gzip" }, 10_000);
      assert.equal(streamed.status, 413, streamed.text);
      assert.equal(streamed.body.code, code);
    }
    // A bomb whose output passes the limit while the client is still sending.
    const bomb = gzipSync(Buffer.alloc(20 * MB, 0x20), { level: 9 });
    const res = await send(worker, "/v1/batch", stalling(new Uint8Array(bomb)), { Authorization: basic(WRITE_KEY), "Content-Encoding": "gzip" }, 10_000);
    assert.equal(res.status, 413);
    assert.equal(res.body.code, "batch_too_large");
    // The sentinel, sent after: once it arrives, anything of the refused bodies would have.
    assert.equal((await send(worker, "/v1/track", track("u-after-compressed"))).status, 200);
    await until(() => got("u-after-compressed").length === 1, "the sentinel");
    assert.equal(got("u-gzip-comment").length, 0);
  });

  test("150,000 rejected events: the answer lists the first 100 and the count, a few KB", async () => {
    const empty = `{"batch":[${Array(150_000).fill("{}").join(",")}]}`;
    const none = await send(worker, "/v1/batch", empty);
    assert.equal(none.status, 400);
    assert.equal(none.body.code, "no_event_accepted");
    assert.equal(none.body.rejectedCount, 150_000);
    assert.equal(none.body.rejected.length, 100);
    assert.deepEqual(none.body.rejected.map((r) => r.index), [...Array(100).keys()]);
    assert.ok(none.text.length < 16 * 1024, `an answer of ${none.text.length} bytes`);
    // Some accepted: 200 with the same cap; the good event arrives.
    const mixed = `{"batch":[${JSON.stringify(track("u-mixed"))},${Array(150).fill('{"type":"track","userId":"jane@x.com"}').join(",")}]}`;
    const res = await send(worker, "/v1/batch", mixed);
    assert.equal(res.status, 200);
    assert.equal(res.body.accepted, 1);
    assert.equal(res.body.rejectedCount, 150);
    assert.equal(res.body.rejected.length, 100);
    assert.deepEqual(res.body.rejected[0], { index: 1, code: "incomplete_event", error: res.body.rejected[0].error });
    assert.ok(!res.text.includes("jane"));
    await until(() => got("u-mixed").length === 1, "the accepted event");
    await until(() => worker.logs.some((l) => l.includes('"phimask":"request"') && l.includes('"rejected":150')), "the request log");
  });
});

describe("a request's sanitized output is bounded", () => {
  test("a 500 KB batch whose masked arrays grow 33-fold for three destinations: 413 before it fills memory; a smaller one goes to all three", async () => {
    const dests = await Promise.all([0, 1, 2].map(() => startDestination()));
    const masks = { version: 1, environment: "test", hipaa: true, allowlists: { event_properties: { plan: "allow" } }, destinations: {} };
    dests.forEach((d, i) => (masks.destinations[`masks${i}`] = { connection: "server-side", endpoint: d.url, allowlists: { event_properties: { n: "mask" } } }));
    const b = await bundle(masks);
    const worker = await startWorker(b.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
    try {
      const event = (i) => ({ type: "track", event: "E", anonymousId: "a", messageId: `m${i}`, properties: { n: Array(1700).fill(1), note: "Jane Doe, HIV positive" } });
      const big = JSON.stringify({ batch: Array.from({ length: 140 }, (_, i) => event(i)) });
      assert.ok(big.length > 490_000 && big.length < 512_000, `${big.length} bytes`);
      assert.equal((await send(worker, "/v1/batch", { batch: [track("u-warm-output")] })).status, 200);
      const peakBefore = workerdPeakMemory();
      const refused = await send(worker, "/v1/batch", big);
      assert.equal(refused.status, 413, refused.text.slice(0, 200));
      assert.equal(refused.body.code, "batch_too_large");
      assert.match(refused.body.error, /once sanitized/);
      assert.ok(!refused.text.includes("Jane"));
      const growth = peakGrowth(peakBefore);
      console.log(`masked-array batch: 413 in ${refused.ms} ms; workerd peak memory grew ${(growth / MB).toFixed(1)} MB`);
      // Unbounded, the engine's memory alone reached 153 MB (past a Worker's 128 MB).
      assert.ok(growth < 64 * MB, `workerd's peak memory grew ${growth} bytes`);
      // A tenth of it: sent to every destination, each event once.
      const small = await send(worker, "/v1/batch", { batch: Array.from({ length: 14 }, (_, i) => event(1000 + i)) });
      assert.equal(small.status, 200, small.text.slice(0, 200));
      for (const d of dests) {
        await until(() => d.delivered().filter((e) => /^[0-9a-f]{64}$/.test(e.messageId) && Array.isArray(e.properties?.n)).length === 14, "the smaller batch at every destination");
        assert.ok(!d.requests.some((r) => r.body.includes("Jane")), "no unlisted value");
      }
    } finally {
      await worker.mf.dispose();
      b.cleanup();
      await Promise.all(dests.map((d) => d.close()));
    }
  });
});
