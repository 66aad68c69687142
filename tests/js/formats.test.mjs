// Native destinations: the edge Worker inside workerd sends Amplitude,
// Mixpanel, GA4, PostHog, Segment and NDJSON bodies to local fakes of each
// API (www/dev/fakes.mjs, which check what each API documents), splits them
// within each API's limits, handles partial answers and 429s, and places
// each credential where its API wants it.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { FAKE_CREDENTIALS, startFakes } from "../../www/dev/fakes.mjs";
import { Sanitizer } from "../../www/dev/node.mjs";
import { bundle, startWorker, until } from "./worker-harness.mjs";

const KEY = "formats-test-masking-key-0123456789abcdef";
const WRITE_KEY = "wk_formats";
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;
const hmac = (value, key = KEY) => createHmac("sha256", key).update(value).digest("hex");
// A queue message holds at most 128 KB (Cloudflare Queues; Miniflare: 128,000 bytes).
const QUEUE_MESSAGE_BYTES = 128_000;
// An hour ago, whole seconds: inside GA4's 72-hour backdating window
// (older GA4 events are dead letters, not sent).
const AT = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000).toISOString();
const PHI = ["jane", "Jane", "patient-8812", "chest pain", "203.0.113.7", "555-0100", "Cookie-secret"];
const CREDENTIALS = {
  AUTH_AMP: FAKE_CREDENTIALS.amplitude,
  AUTH_MIX: FAKE_CREDENTIALS.mixpanel,
  AUTH_GA: `${FAKE_CREDENTIALS.ga4.measurement_id}:${FAKE_CREDENTIALS.ga4.api_secret}`,
  AUTH_PH: FAKE_CREDENTIALS.posthog,
};

function track(i, extra = {}) {
  return {
    type: "track", event: "Appointment Booked", userId: "patient-8812", anonymousId: `anon-${i % 3}-device`,
    messageId: `m-${i}`, timestamp: AT,
    properties: { plan: "gold", email: "jane@example.com", reason: "chest pain", i, phone: "555-0100" },
    traits: { email: "jane@example.com", name: "Jane Doe" },
    context: { ip: "203.0.113.7", traits: { email: "jane@example.com", plan: "gold" } },
    ...extra,
  };
}

function policyFor(url, extra = {}) {
  return {
    version: 1, environment: "test", hipaa: true,
    allowlists: {
      event_properties: { plan: "allow", email: "mask", i: "allow" },
      user_properties: { email: "mask", plan: "allow" },
    },
    // Names pass only as listed: a name can hold PHI too.
    events: Object.fromEntries([...["Appointment Booked", "Pricing", "E", "page_view", "firebase_evil"].map((n) => [n, "allow"]), ["*", "drop"]]),
    destinations: {
      amp: { connection: "server-side", format: "amplitude", endpoint: `${url}/amp/2/httpapi` },
      mix: { connection: "server-side", format: "mixpanel", endpoint: `${url}/mix/import` },
      ga: { connection: "server-side", format: "ga4", endpoint: `${url}/ga/mp/collect` },
      ph: { connection: "server-side", format: "posthog", endpoint: `${url}/ph/batch/`, mask_scope: "posthog" },
      seg: { connection: "server-side", endpoint: `${url}/seg` },
      lake: { connection: "server-side", format: "ndjson", endpoint: `${url}/lake`, allowlists: { event_properties: { reason: "drop" } } },
    },
    ...extra,
  };
}

describe("native destinations", () => {
  let fakes;
  let built;
  let worker;

  async function post(path, body, w = worker) {
    const res = await w.mf.dispatchFetch(`http://edge.test${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: basic(WRITE_KEY), Cookie: "session=Cookie-secret", "User-Agent": "Mozilla/5.0 jane" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  }
  const requestsOf = (name) => fakes.requests.filter((r) => r.name === name);
  const ALL = ["amp", "mix", "ga", "ph", "seg", "lake"];
  let sentinels = 0;
  /**
   * Sends an event every destination takes, after what a test sent, and
   * waits until each has it: what an earlier request would have delivered
   * has arrived by then. Resolves to its messageId.
   */
  async function sentinel(w = worker) {
    const id = `sentinel-${++sentinels}`;
    assert.equal((await post("/v1/track", { type: "track", event: "E", anonymousId: "anon-sentinel", messageId: id, timestamp: AT }, w)).status, 200);
    await until(() => ALL.every((n) => requestsOf(n).some((r) => r.status < 300 && r.body.includes(n === "mix" ? hmac(id).slice(0, 36) : n === "ga" || n === "ph" ? hmac("anon-sentinel", n === "ph" ? createHmac("sha256", KEY).update("phimask-scope:posthog").digest() : KEY) : hmac(id)))), "the sentinel at every destination");
    return id;
  }

  before(async () => {
    fakes = await startFakes(0, { quiet: true });
    built = await bundle(policyFor(fakes.url));
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, ...CREDENTIALS });
  });

  after(async () => {
    await worker?.mf.dispose();
    await fakes?.close();
    built?.cleanup();
  });

  test("each destination gets its API's body, with masked IDs and nothing the policy removed", async () => {
    const batch = [track(0), { ...track(1), type: "page", name: "Pricing", properties: { plan: "gold", path: "/p" } }, { ...track(2), type: "identify" }];
    const res = await post("/v1/batch", { batch });
    assert.deepEqual(res, { status: 200, body: { success: true } });
    // What each API accepts of the three: GA4 and Mixpanel take no identify.
    const counts = { amp: 3, mix: 2, ga: 2, ph: 3, seg: 3, lake: 3 };
    await until(() => ALL.every((n) => (fakes.received[n]?.length ?? 0) >= counts[n]), "every destination to be sent its events");
    assert.deepEqual(fakes.problems, {}, "every body follows its API's documented rules");

    const amp = JSON.parse(requestsOf("amp")[0].body);
    assert.equal(amp.api_key, FAKE_CREDENTIALS.amplitude);
    assert.deepEqual(amp.events.map((e) => e.event_type), ["Appointment Booked", "Viewed Pricing Page", "$identify"]);
    assert.equal(amp.events[0].user_id, hmac("patient-8812"));
    assert.equal(amp.events[0].device_id, hmac("anon-0-device"));
    assert.equal(amp.events[0].time, Date.parse(AT));
    assert.equal(amp.events[0].insert_id, hmac("m-0"), "the message ID, masked");
    assert.deepEqual(amp.events[0].event_properties, { plan: "gold", email: hmac("jane@example.com"), i: 0 });
    assert.deepEqual(amp.events[2].user_properties, { $set: { email: hmac("jane@example.com") } });

    const mix = JSON.parse(requestsOf("mix")[0].body);
    assert.equal(requestsOf("mix")[0].headers.authorization, `Basic ${Buffer.from(`${FAKE_CREDENTIALS.mixpanel}:`).toString("base64")}`);
    assert.match(requestsOf("mix")[0].path, /\?strict=1$/);
    assert.deepEqual(mix.map((e) => e.event), ["Appointment Booked", "Viewed Pricing Page"], "identify is not sent to Mixpanel");
    assert.equal(mix[0].properties.distinct_id, hmac("patient-8812"));
    assert.equal(mix[0].properties.time, Date.parse(AT));
    assert.equal(mix[0].properties.$insert_id, hmac("m-0").slice(0, 36), "the masked message ID's first 36 hex digits");

    const gaReq = requestsOf("ga")[0];
    assert.match(gaReq.path, new RegExp(`measurement_id=${FAKE_CREDENTIALS.ga4.measurement_id}&api_secret=${FAKE_CREDENTIALS.ga4.api_secret}$`));
    const ga = fakes.received.ga;
    assert.deepEqual(ga.map((e) => e.name), ["Appointment_Booked", "page_viewed"]);
    assert.equal(ga[0].client_id, hmac("anon-0-device"));
    assert.equal(ga[0].user_id, hmac("patient-8812"));
    assert.equal(ga[0].timestamp_micros, Date.parse(AT) * 1000);
    assert.equal(ga[1].params.page_name, "Pricing");

    const ph = JSON.parse(requestsOf("ph")[0].body);
    assert.equal(ph.api_key, FAKE_CREDENTIALS.posthog);
    assert.deepEqual(ph.batch.map((e) => e.event), ["Appointment Booked", "$pageview", "$identify"]);
    const scoped = createHmac("sha256", KEY).update("phimask-scope:posthog").digest();
    assert.equal(ph.batch[0].distinct_id, hmac("patient-8812", scoped), "its own key scope");

    assert.equal(fakes.received.seg.length, 3);
    assert.equal(requestsOf("lake")[0].headers["content-type"], "application/x-ndjson");
    assert.deepEqual(fakes.received.lake.map((e) => e.messageId), ["m-0", "m-1", "m-2"].map((id) => hmac(id)));
    assert.ok(fakes.received.lake.every((e) => e.userId === hmac("patient-8812") && !("reason" in (e.properties ?? {}))));

    for (const r of fakes.requests) {
      for (const v of PHI) assert.ok(!r.body.includes(v), `${r.name}: ${v}`);
      for (const h of ["cookie", "user-agent", "x-forwarded-for", "cf-connecting-ip", "referer"]) {
        assert.ok(!(h in r.headers) || !/jane|Cookie-secret/.test(r.headers[h]), `${r.name}: ${h}`);
      }
      assert.equal(r.headers.cookie, undefined, r.name);
      // A credential goes to its own destination only.
      for (const [secret, value] of Object.entries(CREDENTIALS)) {
        if (secret !== `AUTH_${r.name.toUpperCase()}`) assert.ok(!r.body.includes(value) && !r.path.includes(value) && !JSON.stringify(r.headers).includes(value), `${secret} sent to ${r.name}`);
      }
    }
    const logs = worker.logs.join("\n");
    for (const value of Object.values(CREDENTIALS)) assert.ok(!logs.includes(value), "no credential in logs");
    for (const v of PHI) assert.ok(!logs.includes(v), v);
    // Nothing more came of the request: a sentinel after it arrives, and each
    // destination holds its events and the sentinel's one, no other.
    await sentinel();
    for (const n of ALL) assert.equal(fakes.received[n].length, counts[n] + 1, n);
    for (const r of fakes.requests) for (const v of PHI) assert.ok(!r.body.includes(v), `${r.name}: ${v}`);
  });

  test("bodies are split within each API's limits", async () => {
    fakes.requests.length = 0;
    for (const k of Object.keys(fakes.received)) delete fakes.received[k];
    // 2100 small events in one batch (under 500 KB): Amplitude takes 2000
    // a request and under 1 MB, GA4 25 and one user a request, and a queue
    // message holds at most 128 KB.
    const batch = Array.from({ length: 2100 }, (_, i) => ({ type: "track", event: "E", anonymousId: `device-${i % 2}`, messageId: `s-${i}`, timestamp: AT, properties: { i } }));
    const res = await post("/v1/batch", { batch });
    assert.equal(res.status, 200);
    await until(() => fakes.received.amp?.length === 2100 && fakes.received.ga?.length === 2100, "all bodies", 30_000);
    const amp = requestsOf("amp").map((r) => JSON.parse(r.body).events.length);
    // The queued body fits a queue message; the api_key is added when it is sent.
    const member = Buffer.byteLength(`"api_key":"${FAKE_CREDENTIALS.amplitude}",`);
    for (const r of requestsOf("amp")) {
      const size = Buffer.byteLength(r.body);
      assert.ok(size <= 1_000_000 && size - member <= QUEUE_MESSAGE_BYTES, `a body of ${size} bytes`);
    }
    assert.ok(amp.every((n) => n <= 2000));
    assert.equal(amp.reduce((a, b) => a + b, 0), 2100);
    assert.deepEqual(fakes.received.amp.map((e) => e.insert_id).sort(), batch.map((e) => hmac(e.messageId)).sort(), "each event in one body");
    const ga = requestsOf("ga").map((r) => JSON.parse(r.body));
    assert.ok(ga.every((b) => b.events.length <= 25 && b.events.every((e) => typeof e.params.i === "number")));
    assert.equal(ga.reduce((n, b) => n + b.events.length, 0), 2100);
    assert.equal(new Set(ga.map((b) => b.client_id)).size, 2);
    assert.equal(ga.length, 2 * Math.ceil(1050 / 25));
    assert.deepEqual(fakes.problems, {});
  });

  test("a 429 is retried after its Retry-After; 5xx with backoff", async () => {
    fakes.requests.length = 0;
    fakes.throttle("amp", 1, 1);
    fakes.fail("mix", 2, 503);
    const res = await post("/v1/track", track(7));
    assert.equal(res.status, 200);
    await until(() => requestsOf("amp").length === 2 && requestsOf("mix").length === 3, "the retries", 15_000);
    const [first, second] = requestsOf("amp");
    assert.equal(first.status, 429);
    assert.equal(second.status, 200);
    assert.equal(first.body, second.body, "the same body again");
    assert.ok(second.at === undefined || second.at - first.at >= 1000);
    assert.deepEqual(requestsOf("mix").map((r) => r.status), [503, 503, 200]);
  });

  test("Amplitude's and Mixpanel's partial answers: refused events logged by index, without values; the rest delivered once", async () => {
    fakes.requests.length = 0;
    for (const k of Object.keys(fakes.received)) delete fakes.received[k];
    // Allowed IDs pass as they are: "ab" is too short for Amplitude; an
    // event dated 1965 is refused by Mixpanel.
    const p = policyFor(fakes.url, { identifiers: { userId: "allow", anonymousId: "allow" } });
    const b = await bundle(p);
    const w = await startWorker(b.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, ...CREDENTIALS });
    try {
      const batch = [track(0, { userId: "user-0001" }), track(1, { userId: "ab", anonymousId: "cd" }), track(2, { userId: "user-0002", timestamp: "1965-01-01T00:00:00Z" }), track(3, { userId: "user-0003" })];
      const res = await post("/v1/batch", { batch }, w);
      assert.equal(res.status, 200);
      await until(() => requestsOf("amp").length === 2 && requestsOf("mix").length === 1, "Amplitude's resend", 10_000);
      const [refused, resent] = requestsOf("amp");
      assert.equal(refused.status, 400);
      assert.deepEqual(JSON.parse(refused.answer).events_with_invalid_fields, { user_id: [1], device_id: [1] });
      assert.equal(resent.status, 200);
      assert.deepEqual(JSON.parse(resent.body).events.map((e) => e.user_id), ["user-0001", "user-0002", "user-0003"]);
      assert.equal(requestsOf("mix")[0].status, 400, "Mixpanel's partial success");
      assert.deepEqual(fakes.received.mix.map((e) => e.properties.distinct_id), ["user-0001", "ab", "user-0003"]);
      await until(() => w.logs.filter((l) => l.includes("events refused by destination")).length === 2, "the refusal logs");
      const logs = w.logs.filter((l) => l.includes("events refused by destination")).map((l) => JSON.parse(l));
      const byDest = Object.fromEntries(logs.map((l) => [l.destination, l.events]));
      assert.deepEqual(byDest.amp, [{ index: 1, fields: ["user_id", "device_id"] }]);
      assert.deepEqual(byDest.mix, [{ index: 2, fields: ["properties.time"] }]);
      const all = w.logs.join("\n");
      for (const v of ["ab", "1965", "jane"]) assert.ok(!all.includes(`"${v}`), v);
    } finally {
      await w.mf.dispose();
      b.cleanup();
    }
  });

  test("credentials: checked per format at startup with a clear error; nothing accepted or sent without them", async () => {
    const cases = [
      [{ AUTH_AMP: undefined }, /AUTH_AMP must be the Amplitude project's API key/],
      [{ AUTH_AMP: "not-hex-but-a-secret-value-000000" }, /AUTH_AMP must be/],
      [{ AUTH_PH: "phx_personal_secret_value" }, /AUTH_PH must be the PostHog project API key/],
      [{ AUTH_GA: "G-DEV12345" }, /AUTH_GA must be MEASUREMENT_ID:API_SECRET/],
      [{ AUTH_MIX: "user:secret with space" }, /AUTH_MIX must be/],
    ];
    for (const [change, message] of cases) {
      const env = { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, ...CREDENTIALS, ...change };
      for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
      // A spy reads its delivery queue: what the refused request queued, if anything.
      const w = await startWorker(built.script, env, { spy: true });
      try {
        const before = fakes.requests.length;
        const res = await post("/v1/track", track(9), w);
        assert.equal(res.status, 503);
        assert.equal(res.body.code, "invalid_credential");
        assert.match(res.body.error, message);
        const secret = Object.values(change)[0];
        if (secret) {
          assert.ok(!res.body.error.includes(secret), "the secret is not echoed");
          assert.ok(!w.logs.join("\n").includes(secret), "nor logged");
        }
        // A sentinel put on the queue after the request: once the spy has read
        // it, anything the request queued would have been read before it.
        await (await w.mf.getQueueProducer("DELIVERY", "phimask")).send({ sentinel: true });
        await until(async () => (await w.queued()).some((m) => m.sentinel === true), "the queue's sentinel");
        assert.deepEqual(await w.queued(), [{ sentinel: true }], "nothing queued");
        assert.equal(fakes.requests.length, before, "nothing sent");
      } finally {
        await w.mf.dispose();
      }
    }
  });

  test("hostile events: reserved and odd names are renamed for GA4, nothing refused leaks", async () => {
    fakes.requests.length = 0;
    for (const k of Object.keys(fakes.received)) delete fakes.received[k];
    const batch = [
      { ...track(0), event: "page_view" },
      { ...track(1), event: "firebase_evil", properties: { "_x": "a", "a b": "b", plan: "x".repeat(101), i: 1 } },
      { ...track(2), event: "jane@example.com visit" },
      { type: "track", event: "E", properties: { i: 3 } }, // no ID: Segment/NDJSON only
      "not an event",
    ];
    const res = await post("/v1/batch", { batch });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.accepted, 3, JSON.stringify(res.body));
    assert.deepEqual(res.body.rejected.map((r) => r.index), [3, 4]);
    // Everything the request delivers has arrived once a sentinel sent after it has.
    const id = await sentinel();
    assert.deepEqual(fakes.problems, {});
    const names = fakes.received.ga.filter((e) => e.client_id !== hmac("anon-sentinel")).map((e) => e.name);
    assert.deepEqual(names.sort(), ["e_firebase_evil", "e_page_view"], "the name the events map drops goes nowhere");
    assert.deepEqual(fakes.received.seg.map((e) => e.messageId).sort(), ["m-0", "m-1", id].map((m) => hmac(m)).sort());
    // GA4's bodies (one per user) arrive in any order: find the event by its name.
    const evil = fakes.received.ga.find((e) => e.name === "e_firebase_evil");
    assert.equal(evil.params.i, 1);
    assert.ok(!("plan" in evil.params), "a value over 100 characters is dropped");
    for (const r of fakes.requests) for (const v of PHI) assert.ok(!r.body.includes(v), `${r.name}: ${v}`);
  });
});

test("the Node engine's processRequest equals its sanitizeJson, per destination", () => {
  const s = new Sanitizer(policyFor("https://x.example"), KEY);
  for (const [d, secret] of [["amp", CREDENTIALS.AUTH_AMP], ["ph", CREDENTIALS.AUTH_PH]]) s.connect(d, secret);
  const batch = [track(0), track(1)];
  const done = s.processRequest(new TextEncoder().encode(JSON.stringify({ batch })), "batch");
  assert.equal(done.accepted, 2);
  const seg = batch.map((e) => s.sanitizeJson(JSON.stringify(e), "seg"));
  assert.deepEqual(done.bodies.seg, [`{"batch":[${seg.join(",")}]}`]);
  assert.deepEqual(done.events.seg, [[0, 1]]);
  assert.deepEqual(Object.keys(done.report), ["amp", "mix", "ga", "ph", "seg", "lake"]);
  assert.equal(done.report.amp.events, 2);
  assert.ok(done.report.amp.masked > 0);
  assert.throws(() => s.processRequest(new Uint8Array([0xff]), "batch"), (e) => e.code === "invalid_json");
  assert.throws(() => s.processRequest(new Uint8Array(), "purchase"), (e) => e.code === "unknown_type");
});
