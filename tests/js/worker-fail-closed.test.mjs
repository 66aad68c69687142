// The edge Worker inside workerd fails closed on every field and reads the
// bodies real SDKs send: names, structural fields, integrations (routing
// and values) and context defaults; incomplete calls refused; gzip and
// deflate bodies inflated within the limits (a bomb refused without the
// Worker's memory growing); other encodings 415; outgoing bodies within
// Segment's 500 KB and a queue message's 128 KB. "Nothing arrived" is
// proven by a sentinel event sent after, never by a pause.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { deflateSync, gzipSync } from "node:zlib";
import { bundle, startDestination, startWorker, until, workerdPeakMemory } from "./worker-harness.mjs";

const KEY = "worker-fail-closed-key-0123456789abcdef";
const WRITE_KEY = "wk_fail_closed";
const basic = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`;
const hmac = (v) => createHmac("sha256", KEY).update(v).digest("hex");
const PHI = ["jane", "Jane", "123-45-6789", "HIV", "dx"];
// The limits the destinations' APIs document, and the queue's: a Segment
// batch of at most 500 KB, events of at most 32 KB; a queue message of at
// most 128 KB (Cloudflare Queues; Miniflare enforces the same).
const SEGMENT_BATCH_BYTES = 500 * 1024;
const SEGMENT_EVENT_BYTES = 32 * 1024;
const QUEUE_MESSAGE_BYTES = 128_000;
// Restricted destinations' bodies always go through the queue.
const QUEUED = ["amplitude", "mixpanel"];

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
  let sentinels = 0;
  /**
   * Sends a valid event every destination takes, after what a test sent,
   * and waits until each destination has it: what an earlier request
   * would have delivered has arrived by then.
   */
  async function sentinel() {
    const userId = `u-sentinel-${++sentinels}`;
    assert.equal((await post("/v1/track", { event: "Appointment Booked", userId })).status, 200);
    for (const d of Object.keys(dest)) await until(() => got(d, userId).length === 1, `the sentinel at ${d}`);
  }

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
      // Two queue messages (amplitude, mixpanel); the BAA warehouse without a queue key: direct.
      phimask: "request", call: "track", accepted: 1, rejected: 0, messages: 2, direct: 1,
      destinations: {
        amplitude: { events: 1, dropped: 7, masked: 2, transformed: 1, unmapped: 0, consent: 0 },
        mixpanel: { events: 1, dropped: 7, masked: 2, transformed: 1, unmapped: 0, consent: 0 },
        warehouse: { events: 1, dropped: 0, masked: 0, transformed: 0, unmapped: 0, consent: 0 },
      },
    });
    for (const phi of PHI) assert.ok(!line.includes(phi), phi);
  });

  test("an event name the map does not list goes to no restricted destination", async () => {
    const res = await post("/v1/track", { event: "Viewed HIV Test Results for jane@x.com", userId: "u-unlisted" });
    assert.equal(res.status, 200);
    await until(() => got("warehouse", "u-unlisted").length === 1, "warehouse");
    await sentinel();
    assert.equal(got("warehouse", "u-unlisted").length, 1);
    assert.equal(got("amplitude", "u-unlisted").length, 0);
    assert.equal(got("mixpanel", "u-unlisted").length, 0);
    for (const d of ["amplitude", "mixpanel"]) assert.ok(!dest[d].requests.some((r) => r.body.includes("Viewed HIV")), `${d} got the name`);
  });

  test("integrations routing (All, per destination) and a destination's calls", async () => {
    const sends = [
      ["/v1/track", { event: "Appointment Booked", userId: "u-only-amp", integrations: { All: false, Amplitude: true } }],
      ["/v1/track", { event: "Appointment Booked", userId: "u-not-mix", integrations: { Mixpanel: false } }],
      ["/v1/page", { name: "Appointment Booked", userId: "u-page" }],
    ];
    for (const [path, body] of sends) assert.equal((await post(path, body)).status, 200);
    await until(() => got("amplitude", "u-page").length === 1 && got("warehouse", "u-not-mix").length === 1, "deliveries");
    await sentinel();
    assert.equal(got("amplitude", "u-only-amp").length, 1);
    assert.equal(got("mixpanel", "u-only-amp").length, 0);
    assert.equal(got("warehouse", "u-only-amp").length, 0, "routing binds the BAA destination too");
    assert.equal(got("amplitude", "u-not-mix").length, 1);
    assert.equal(got("mixpanel", "u-not-mix").length, 0);
    assert.equal(got("mixpanel", "u-page").length, 0, "mixpanel takes track and identify only");
    assert.equal(got("warehouse", "u-page").length, 1);
    assert.equal(got("warehouse", "u-not-mix").length, 1);
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
    await sentinel();
    for (const d of Object.keys(dest)) {
      assert.equal(got(d, "u-batch-ok").length, 1, d);
      assert.equal(got(d, "u-batch-group").length + got(d, "u-batch-alias").length, 0, d);
      assert.ok(!dest[d].delivered().some((e) => e.userId === undefined && e.anonymousId === undefined), `${d} got the identify without an ID`);
    }
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
    await sentinel();
    for (const [name, d] of Object.entries(dest)) {
      for (const user of ["jane@x.com", "u-enc-big", "u-enc-batch"]) assert.deepEqual(got(name, user), [], `${name} got ${user}`);
      for (const user of ["u-enc-big", "u-enc-batch"]) assert.ok(!d.requests.some((r) => r.body.includes(hmac(user)) || r.body.includes(user)), `${name} got a body of ${user}`);
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

  test("5,000 small events in one request under 500 KB reach each destination once each, in bodies within Segment's 500 KB and a queue message's 128 KB", async () => {
    // Masked values are longer than the clear ones: ~440 KB in, ~1.3 MB out
    // to each restricted destination, more than one body or message holds.
    const batch = Array.from({ length: 5000 }, (_, i) => ({ type: "identify", userId: "u-split", messageId: `split-${i}`, traits: { a: `${i}`, b: "y" } }));
    const text = JSON.stringify({ batch });
    assert.ok(text.length > 400_000 && text.length < 500 * 1024, `${text.length} bytes`);
    const before = Object.fromEntries(Object.entries(dest).map(([d, x]) => [d, x.requests.length]));
    assert.equal((await post("/v1/batch", text)).status, 200);
    for (const d of Object.keys(dest)) await until(() => got(d, "u-split").length >= 5000, `all 5,000 events at ${d}`, 60_000);
    await sentinel();
    for (const d of Object.keys(dest)) {
      // Every body since the request that carries an event of this batch.
      const bodies = dest[d].requests.slice(before[d])
        .map((r) => ({ bytes: Buffer.byteLength(r.body), events: JSON.parse(r.body).batch.filter((e) => e.userId === hmac("u-split") || e.userId === "u-split") }))
        .filter((b) => b.events.length > 0);
      const bytes = bodies.reduce((n, b) => n + b.bytes, 0);
      console.log(`${d}: ${bodies.length} bodies, ${bytes} bytes, events per body: ${bodies.map((b) => b.events.length).join(" ")}`);
      for (const b of bodies) {
        assert.ok(b.bytes <= SEGMENT_BATCH_BYTES, `${d}: a body of ${b.bytes} bytes`);
        if (QUEUED.includes(d)) assert.ok(b.bytes <= QUEUE_MESSAGE_BYTES, `${d}: a queued body of ${b.bytes} bytes`);
        for (const e of b.events) assert.ok(Buffer.byteLength(JSON.stringify(e)) <= SEGMENT_EVENT_BYTES);
      }
      assert.equal(bodies.reduce((n, b) => n + b.events.length, 0), 5000, `${d}: events over all bodies`);
      // Bodies are filled, not one event each: on average at least half a message.
      assert.ok(bodies.length <= Math.ceil(bytes / (QUEUE_MESSAGE_BYTES / 2)), `${d}: ${bodies.length} bodies for ${bytes} bytes`);
      const ids = bodies.flatMap((b) => b.events.map((e) => e.messageId));
      const expected = batch.map((e) => (QUEUED.includes(d) ? hmac(e.messageId) : e.messageId));
      assert.equal(new Set(ids).size, 5000, `${d}: each event once`);
      assert.deepEqual(ids.sort(), expected.sort(), `${d}: each message ID${QUEUED.includes(d) ? ", masked" : ""}`);
      assert.equal(got(d, "u-split").length, 5000, `${d}: no event of the batch twice`);
    }
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
