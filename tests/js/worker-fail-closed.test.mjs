// The edge Worker inside workerd fails closed on every field and reads the
// bodies real SDKs send: names, structural fields, integrations (routing
// and values) and context defaults; incomplete calls refused; gzip and
// deflate bodies inflated within the limits (a bomb refused without the
// Worker's memory growing); other encodings 415; outgoing bodies split at
// 500 KB.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { deflateSync, gzipSync } from "node:zlib";
import { bundle, sleep, startDestination, startWorker, until, workerdPeakMemory } from "./worker-harness.mjs";

const KEY = "worker-fail-closed-key-0123456789abcdef";
const WRITE_KEY = "wk_fail_closed";
const basic = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`;
const hmac = (v) => createHmac("sha256", KEY).update(v).digest("hex");
const PHI = ["jane", "Jane", "123-45-6789", "HIV", "dx"];

describe("edge worker: every field fails closed", () => {
  const dest = {};
  let built;
  let worker;

  async function post(path, body, headers = {}) {
    const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: basic, ...headers },
      body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  }
  /** The events `d` received whose (masked) userId is that of `userId`. */
  const got = (d, userId) => dest[d].delivered().filter((e) => e.userId === hmac(userId) || e.userId === userId);

  before(async () => {
    for (const name of ["amplitude", "mixpanel", "warehouse"]) dest[name] = await startDestination();
    built = await bundle({
      version: 1, environment: "test", hipaa: true,
      allowlists: {
        event_properties: { plan: "allow", a: "mask" },
        user_properties: { a: "mask", b: "mask" },
        integrations: { "Amplitude.session_id": "allow" },
      },
      events: { "Appointment Booked": "allow", "Viewed HIV Testing": { rename: "Viewed Service Page" }, "*": "drop" },
      destinations: {
        amplitude: { connection: "server-side", endpoint: dest.amplitude.url },
        mixpanel: { connection: "server-side", endpoint: dest.mixpanel.url, calls: ["track", "identify"] },
        warehouse: { connection: "server-side", endpoint: dest.warehouse.url, restrict_phi: false, baa: true },
      },
    });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
  });

  after(async () => {
    await worker?.mf.dispose();
    await Promise.all(Object.values(dest).map((d) => d.close()));
    built?.cleanup();
  });

  test("PHI in integrations, messageId, timestamps, channel, context.library and the event name does not reach restricted destinations", async () => {
    const hostile = {
      event: "Viewed HIV Testing",
      userId: "u-repro",
      messageId: "jane@x.com",
      timestamp: "SSN 123-45-6789",
      receivedAt: "jane@x.com",
      sentAt: "2026-11-23T14:05:11.000Z",
      channel: "jane@x.com",
      integrations: { A: { user_email: "jane@x.com", n: { dx: "HIV" } }, Amplitude: { session_id: 1732270000 }, "jane@x.com": true },
      context: { library: { name: "analytics-node", email: "jane@x.com" }, ip: "203.0.113.7" },
    };
    assert.equal((await post("/v1/track", hostile)).status, 200);
    for (const d of ["amplitude", "mixpanel", "warehouse"]) await until(() => got(d, "u-repro").length === 1, d);
    const expected = {
      type: "track",
      event: "Viewed Service Page",
      userId: hmac("u-repro"),
      messageId: hmac("jane@x.com"),
      sentAt: "2026-11-23T14:05:11.000Z",
      integrations: { Amplitude: { session_id: 1732270000 } },
      context: { library: { name: "analytics-node" } },
    };
    for (const d of ["amplitude", "mixpanel"]) {
      const [event] = got(d, "u-repro");
      assert.deepEqual(event, expected, d);
      for (const phi of PHI) assert.ok(!JSON.stringify(event).includes(phi), `${d} got ${phi}`);
    }
    assert.deepEqual(got("warehouse", "u-repro")[0], { type: "track", ...hostile }, "the BAA destination gets it unchanged");
    // One log line for the request: what each destination got, as counts.
    await until(() => worker.logs.some((l) => l.includes('"phimask":"request"') && l.includes('"transformed":1')), "the request log");
    const line = worker.logs.find((l) => l.includes('"phimask":"request"') && l.includes('"transformed":1'));
    assert.deepEqual(JSON.parse(line), {
      phimask: "request", call: "track", accepted: 1, rejected: 0,
      destinations: {
        amplitude: { events: 1, dropped: 7, masked: 2, transformed: 1, unmapped: 0 },
        mixpanel: { events: 1, dropped: 7, masked: 2, transformed: 1, unmapped: 0 },
        warehouse: { events: 1, dropped: 0, masked: 0, transformed: 0, unmapped: 0 },
      },
    });
    for (const phi of PHI) assert.ok(!line.includes(phi), phi);
  });

  test("an event name the map does not list goes to no restricted destination", async () => {
    const res = await post("/v1/track", { event: "Viewed HIV Test Results for jane@x.com", userId: "u-unlisted" });
    assert.equal(res.status, 200);
    await until(() => got("warehouse", "u-unlisted").length === 1, "warehouse");
    await sleep(300);
    assert.equal(got("amplitude", "u-unlisted").length, 0);
    assert.equal(got("mixpanel", "u-unlisted").length, 0);
  });

  test("integrations routing (All, per destination) and a destination's calls", async () => {
    const sends = [
      ["/v1/track", { event: "Appointment Booked", userId: "u-only-amp", integrations: { All: false, Amplitude: true } }],
      ["/v1/track", { event: "Appointment Booked", userId: "u-not-mix", integrations: { Mixpanel: false } }],
      ["/v1/page", { name: "Appointment Booked", userId: "u-page" }],
    ];
    for (const [path, body] of sends) assert.equal((await post(path, body)).status, 200);
    await until(() => got("amplitude", "u-page").length === 1 && got("warehouse", "u-not-mix").length === 1, "deliveries");
    await sleep(300);
    assert.equal(got("amplitude", "u-only-amp").length, 1);
    assert.equal(got("mixpanel", "u-only-amp").length, 0);
    assert.equal(got("warehouse", "u-only-amp").length, 0, "routing binds the BAA destination too");
    assert.equal(got("amplitude", "u-not-mix").length, 1);
    assert.equal(got("mixpanel", "u-not-mix").length, 0);
    assert.equal(got("mixpanel", "u-page").length, 0, "mixpanel takes track and identify only");
  });

  test("incomplete calls are refused with a clear error; a batch keeps its good events", async () => {
    const single = await post("/v1/track", { userId: "jane@x.com", properties: { plan: "gold" } });
    assert.equal(single.status, 400);
    assert.equal(single.body.code, "incomplete_event");
    assert.equal(single.body.error, 'track event has no "event" name (a non-empty string)');
    const batch = await post("/v1/batch", {
      batch: [
        { type: "track", event: "Appointment Booked", userId: "u-batch-ok" },
        { type: "identify", traits: { email: "jane@x.com" } },
        { type: "group", userId: "u-batch-group" },
        { type: "alias", userId: "u-batch-alias" },
      ],
    });
    assert.equal(batch.status, 200);
    assert.deepEqual(batch.body.rejected.map((r) => [r.index, r.code]), [[1, "incomplete_event"], [2, "incomplete_event"], [3, "incomplete_event"]]);
    assert.ok(!JSON.stringify(batch.body).includes("jane"));
    await until(() => got("amplitude", "u-batch-ok").length === 1, "the good event");
    await sleep(200);
    assert.equal(got("warehouse", "u-batch-group").length + got("warehouse", "u-batch-alias").length, 0);
  });

  test("gzip and deflate bodies are inflated; the same events arrive as from a plain body", async () => {
    const cases = [
      ["/v1/track", "gzip", { event: "Appointment Booked", userId: "u-gzip-track", properties: { plan: "gold", a: "x" } }],
      ["/v1/track", "deflate", { event: "Appointment Booked", userId: "u-deflate-track", properties: { plan: "gold" } }],
      ["/v1/batch", "gzip", { batch: [{ type: "identify", userId: "u-gzip-batch" }, { type: "track", event: "Appointment Booked", userId: "u-gzip-batch" }] }],
      ["/v1/batch", "x-gzip", { batch: [{ type: "identify", userId: "u-xgzip-batch" }] }],
    ];
    for (const [path, encoding, body] of cases) {
      const bytes = (encoding === "deflate" ? deflateSync : gzipSync)(JSON.stringify(body));
      const res = await post(path, new Uint8Array(bytes), { "Content-Encoding": encoding });
      assert.equal(res.status, 200, `${encoding} ${path}: ${JSON.stringify(res.body)}`);
    }
    await until(() => got("amplitude", "u-gzip-batch").length === 2, "the gzip batch");
    await until(() => got("amplitude", "u-xgzip-batch").length === 1, "the x-gzip batch");
    await until(() => got("amplitude", "u-deflate-track").length === 1, "the deflate track");
    const [track] = got("amplitude", "u-gzip-track");
    assert.deepEqual(track.properties, { plan: "gold", a: hmac("x") });
  });

  test("bad encodings: 415 for unknown, 400 for corrupt or cut, 413 when the inflated body is over the limit", async () => {
    // Each refused body carries its own user; none may reach a destination. (Counting requests
    // would race with the previous test's deliveries to other destinations.)
    const body = JSON.stringify({ event: "Appointment Booked", userId: "jane@x.com" });
    const gz = gzipSync(body);
    const corrupt = Buffer.from(gz);
    corrupt[12] ^= 0xff;
    corrupt[20] ^= 0xff;
    const cases = [
      ["/v1/track", { "Content-Encoding": "br" }, body, 415, "unsupported_encoding"],
      ["/v1/track", { "Content-Encoding": "gzip, gzip" }, gzipSync(gz), 415, "unsupported_encoding"],
      ["/v1/track", { "Content-Encoding": "gzip" }, body, 400, "invalid_encoding"],
      ["/v1/track", { "Content-Encoding": "gzip" }, corrupt, 400, "invalid_encoding"],
      ["/v1/track", { "Content-Encoding": "gzip" }, gz.subarray(0, gz.length - 9), 400, "invalid_encoding"],
      ["/v1/track", { "Content-Encoding": "gzip" }, gzipSync(JSON.stringify({ event: "Appointment Booked", userId: "u-enc-big", note: "jane ".repeat(7000) })), 413, "event_too_large"],
      ["/v1/batch", { "Content-Encoding": "deflate" }, deflateSync(JSON.stringify({ batch: [{ type: "track", event: "Appointment Booked", userId: "u-enc-batch", note: "jane ".repeat(110_000) }] })), 413, "batch_too_large"],
    ];
    for (const [path, headers, bytes, status, code] of cases) {
      const res = await post(path, new Uint8Array(Buffer.from(bytes)), headers);
      assert.equal(res.status, status, `${code}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.code, code);
      assert.ok(!JSON.stringify(res.body).includes("jane"));
    }
    await sleep(300);
    for (const [name, d] of Object.entries(dest)) {
      for (const user of ["jane@x.com", "u-enc-big", "u-enc-batch"]) assert.deepEqual(got(name, user), [], `${name} got ${user}`);
      for (const r of d.requests) assert.ok(!r.body.includes("jane jane"), `${name} got a refused body`);
    }
  });

  test("a gzip bomb (100 KB inflating to 100 MB) is refused with 413 without inflating it", async () => {
    // Warm up, then note workerd's peak memory so far.
    assert.equal((await post("/v1/track", { event: "Appointment Booked", userId: "u-warm" })).status, 200);
    const peakBefore = Math.max(...workerdPeakMemory().values());
    const bomb = gzipSync(Buffer.alloc(100 * 1024 * 1024, 0x20), { level: 9 });
    assert.ok(bomb.length < 200 * 1024, `bomb is ${bomb.length} bytes`);
    const started = Date.now();
    const res = await post("/v1/batch", new Uint8Array(bomb), { "Content-Encoding": "gzip" });
    const elapsed = Date.now() - started;
    assert.equal(res.status, 413);
    assert.equal(res.body.code, "batch_too_large");
    const growth = Math.max(...workerdPeakMemory().values()) - peakBefore;
    console.log(`bomb of ${bomb.length} bytes refused in ${elapsed} ms; workerd peak memory grew ${(growth / 1048576).toFixed(1)} MB`);
    // Inflating it whole would take over 100 MB.
    assert.ok(growth < 48 * 1024 * 1024, `workerd's peak memory grew ${growth} bytes`);
    // The Worker still serves.
    assert.equal((await post("/v1/track", { event: "Appointment Booked", userId: "u-after-bomb" })).status, 200);
  });

  test("5,000 small events in one request under 500 KB reach each destination in bodies of at most 500 KB, each event once", async () => {
    // Masked values are longer than the clear ones: ~440 KB in, ~1.3 MB out.
    const batch = Array.from({ length: 5000 }, (_, i) => ({ type: "identify", userId: "u-split", messageId: `split-${i}`, traits: { a: `${i}`, b: "y" } }));
    const text = JSON.stringify({ batch });
    assert.ok(text.length > 400_000 && text.length < 500 * 1024, `${text.length} bytes`);
    const requestsBefore = dest.amplitude.requests.length;
    assert.equal((await post("/v1/batch", text)).status, 200);
    await until(() => got("amplitude", "u-split").length === 5000, "all 5,000 events", 30_000);
    // Message IDs arrive masked: a body of this batch carries u-split's masked ID.
    const bodies = dest.amplitude.requests.slice(requestsBefore).filter((r) => r.body.includes(hmac("u-split")));
    assert.ok(bodies.length >= 3, `${bodies.length} bodies`);
    for (const r of bodies) assert.ok(Buffer.byteLength(r.body) <= 512_000, `a body of ${Buffer.byteLength(r.body)} bytes`);
    const ids = got("amplitude", "u-split").map((e) => e.messageId);
    assert.equal(new Set(ids).size, 5000, "each event once");
    assert.deepEqual(ids.sort(), batch.map((e) => hmac(e.messageId)).sort(), "each message ID, masked");
  });

  test("the CORS preflight allows X-Retry-Count (analytics.js retries)", async () => {
    const pre = await worker.mf.dispatchFetch("http://edge.test/v1/t", {
      method: "OPTIONS",
      headers: { Origin: "https://clinic.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, x-retry-count" },
    });
    assert.equal(pre.status, 204);
    assert.ok(pre.headers.get("access-control-allow-headers").toLowerCase().split(/,\s*/).includes("x-retry-count"));
  });
});
