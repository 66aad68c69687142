// Delivery tells the truth, through the Worker as it ships (workerd):
// - an event that fits no body of one destination (a masked array grows
//   30-fold) is refused for every destination: listed in `rejected`, 413
//   for a single call, nothing of it delivered anywhere, the batch's other
//   events delivered exactly once to each;
// - queue messages and dead letters hold no credential: Amplitude's and
//   PostHog's api_key is added when the body is sent, and the APIs (the
//   fakes, which check it as documented) still get it and accept;
// - a destination named __proto__ is refused by validation, and the
//   engine's objects keyed by destination names hold any name as their own.
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { FAKE_CREDENTIALS, startFakes } from "../../www/dev/fakes.mjs";
import { preparePolicy, Sanitizer, validatePolicy } from "../../www/dev/node.mjs";
import { withCredential } from "../../www/worker/forward.js";
import { bundle, startDestination, startWorker, until } from "./worker-harness.mjs";

const KEY = "engine-truth-test-masking-key-0123456789";
const WRITE_KEY = "wk_engine_truth";
const basic = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`;
const hmac = (value) => createHmac("sha256", KEY).update(value).digest("hex");

/** A track whose `readings` holds `n` one-digit numbers (2 bytes each as sent, 67 once masked). */
const reading = (id, n, extra = {}) => ({
  type: "track", event: "Reading", userId: "patient-8812", messageId: id, timestamp: "2026-11-23T10:00:00Z",
  properties: { plan: "pro", readings: Array(n).fill(7), note: "chest pain" }, ...extra,
});

async function post(worker, path, body) {
  const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: basic },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

describe("an event too large for one destination goes to none", () => {
  let masks;
  let drops;
  let built;
  let worker;
  const ids = (dest) => dest.delivered().map((e) => e.messageId);

  before(async () => {
    [masks, drops] = await Promise.all([startDestination(), startDestination()]);
    built = await bundle({
      version: 1, environment: "test", hipaa: true,
      allowlists: { event_properties: { plan: "allow" } },
      events: { Reading: "allow", Sentinel: "allow", "*": "drop" },
      destinations: {
        drops: { connection: "server-side", endpoint: drops.url },
        masks: { connection: "server-side", endpoint: masks.url, allowlists: { event_properties: { readings: "mask" } } },
      },
    });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
  });

  after(async () => {
    await worker?.mf.dispose();
    await Promise.all([masks?.close(), drops?.close()]);
    built?.cleanup();
  });

  test("a batch: the event is listed in rejected, the others arrive exactly once at each destination", async () => {
    // 3,000 numbers: 6 KB as sent, ~200 KB masked, over a queue message's
    // 120,000-byte body for `masks`; `drops` alone would have taken it.
    const batch = [reading("m-0", 3), reading("m-big", 3000), reading("m-2", 3), "not an event", reading("m-4", 2)];
    assert.ok(JSON.stringify(batch[1]).length < 32 * 1024);
    const res = await post(worker, "/v1/batch", { batch });
    assert.equal(res.status, 200);
    assert.equal(res.body.accepted, 3);
    assert.deepEqual(res.body.rejected.map((r) => [r.index, r.code]), [[1, "event_too_large"], [3, "event_not_object"]]);
    const { error } = res.body.rejected[0];
    assert.match(error, /"masks"/);
    assert.match(error, /120000/);
    for (const v of ["m-big", "chest pain", "patient-8812", "Reading", "7,7"]) assert.ok(!error.includes(v), `no value in the error: ${v}`);

    const expected = ["m-0", "m-2", "m-4"].map(hmac).sort();
    await until(() => ids(masks).length >= 3 && ids(drops).length >= 3, "the accepted events at both destinations");
    // A sentinel after: once it is in, anything of the batch would be too.
    assert.equal((await post(worker, "/v1/track", reading("sentinel-1", 1, { event: "Sentinel" }))).status, 200);
    await until(() => ids(masks).includes(hmac("sentinel-1")) && ids(drops).includes(hmac("sentinel-1")), "the sentinel at both");
    for (const dest of [masks, drops]) {
      assert.deepEqual(ids(dest).filter((id) => id !== hmac("sentinel-1")).sort(), expected, "each accepted event exactly once");
      assert.ok(!dest.requests.some((r) => r.body.includes(hmac("m-big"))), "nothing of the refused event");
    }
    assert.equal(masks.delivered().find((e) => e.messageId === hmac("m-0")).properties.readings.length, 3, "masked, as the policy says");
  });

  test("a single call: 413 event_too_large, and nothing of it reaches any destination", async () => {
    const res = await post(worker, "/v1/track", reading("m-single", 3000));
    assert.equal(res.status, 413);
    assert.equal(res.body.code, "event_too_large");
    assert.match(res.body.error, /"masks"/);
    assert.equal((await post(worker, "/v1/track", reading("sentinel-2", 1, { event: "Sentinel" }))).status, 200);
    await until(() => ids(masks).includes(hmac("sentinel-2")) && ids(drops).includes(hmac("sentinel-2")), "the sentinel at both");
    for (const dest of [masks, drops]) {
      assert.ok(!ids(dest).includes(hmac("m-single")));
      assert.equal(ids(dest).length, 5, "three of the batch and two sentinels, nothing more");
    }
  });
});

describe("credentials stay out of queue messages and dead letters", () => {
  let fakes;
  let built;
  const policy = (url) => ({
    version: 1, environment: "test", hipaa: true,
    identifiers: { userId: "allow" },
    allowlists: { event_properties: { plan: "allow", i: "allow" } },
    events: { E: "allow", "*": "drop" },
    destinations: {
      amp: { connection: "server-side", format: "amplitude", endpoint: `${url}/amp/2/httpapi` },
      ph: { connection: "server-side", format: "posthog", endpoint: `${url}/ph/batch/` },
    },
  });
  const CREDENTIALS = { AUTH_AMP: FAKE_CREDENTIALS.amplitude, AUTH_PH: FAKE_CREDENTIALS.posthog };
  const events = (n) => Array.from({ length: n }, (_, i) => ({ type: "track", event: "E", userId: `user-${i}`, messageId: `c-${i}`, properties: { plan: "pro", i } }));

  before(async () => {
    fakes = await startFakes(0, { quiet: true });
    built = await bundle(policy(fakes.url));
  });

  after(async () => {
    await fakes?.close();
    built?.cleanup();
  });

  test("no queue message holds the credential text", async () => {
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, ...CREDENTIALS }, { spy: true });
    try {
      assert.equal((await post(worker, "/v1/batch", { batch: events(3) })).status, 200);
      let messages = [];
      await until(async () => (messages = await worker.queued()).length >= 2, "a message per destination");
      assert.deepEqual(messages.map((m) => m.to).sort(), ["amp", "ph"]);
      for (const m of messages) {
        const text = Buffer.from(m.body.base64, "base64").toString("utf8");
        const all = JSON.stringify(m) + text;
        for (const secret of Object.values(CREDENTIALS)) assert.ok(!all.includes(secret), `${m.to}: no credential in its message`);
        assert.ok(!text.includes("api_key"), m.to);
        assert.ok(text.startsWith(m.to === "amp" ? '{"events":[' : '{"batch":['), text.slice(0, 40));
      }
    } finally {
      await worker.mf.dispose();
    }
  });

  test("the APIs get the credential and accept; the body is as before; dead letters and re-queued rests hold none", async () => {
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, ...CREDENTIALS });
    try {
      fakes.requests.length = 0;
      const batch = events(3);
      assert.equal((await post(worker, "/v1/batch", { batch })).status, 200);
      await until(() => ["amp", "ph"].every((n) => fakes.requests.some((r) => r.name === n && r.status === 200)), "both accepted");
      assert.deepEqual(fakes.problems, {});
      // Byte for byte what the engine makes, with the credential first (as
      // bodies were laid out when the engine wrote it in).
      const node = new Sanitizer(policy(fakes.url), KEY);
      const made = node.processRequest(Buffer.from(JSON.stringify({ batch })), "batch").bodies;
      for (const [name, key] of [["amp", FAKE_CREDENTIALS.amplitude], ["ph", FAKE_CREDENTIALS.posthog]]) {
        const got = fakes.requests.find((r) => r.name === name).body;
        assert.equal(got, `{"api_key":${JSON.stringify(key)},${made[name][0].slice(1)}`, name);
      }

      // Amplitude refuses one event of a body (a user ID under 5
      // characters): the rest is queued again, and sent with the key.
      fakes.requests.length = 0;
      const mixed = [...events(2), { type: "track", event: "E", userId: "abc", messageId: "c-short" }];
      assert.equal((await post(worker, "/v1/batch", { batch: mixed })).status, 200);
      await until(() => fakes.requests.filter((r) => r.name === "amp").length >= 2, "the rest sent again");
      const [first, rest] = fakes.requests.filter((r) => r.name === "amp");
      assert.equal(first.status, 400);
      assert.equal(rest.status, 200);
      assert.deepEqual(JSON.parse(rest.body).events.map((e) => e.user_id), ["user-0", "user-1"]);
      assert.equal(JSON.parse(rest.body).api_key, FAKE_CREDENTIALS.amplitude);
      assert.equal(rest.body.match(/"api_key"/g).length, 1, "the re-queued rest held no credential of its own");

      // A refused body becomes a dead letter: filed without the credential.
      fakes.fail("ph", 1, 400);
      assert.equal((await post(worker, "/v1/batch", { batch: events(1) })).status, 200);
      const db = await worker.mf.getD1Database("DELIVERY_STATE");
      let letters = [];
      await until(async () => (letters = (await db.prepare("SELECT envelope FROM dead_letters").all()).results).length > 0, "a dead letter filed");
      for (const { envelope } of letters) {
        const body = Buffer.from(JSON.parse(envelope).body.$bytes, "base64").toString("utf8");
        assert.match(body, /^\{"batch":\[/);
        for (const secret of Object.values(CREDENTIALS)) assert.ok(!(envelope + body).includes(secret), "no credential in a dead letter");
      }
      const logs = worker.logs.join("\n");
      for (const secret of Object.values(CREDENTIALS)) assert.ok(!logs.includes(secret), "no credential in the logs");
    } finally {
      await worker.mf.dispose();
    }
  });

  test("withCredential inserts the member after '{', in text and in bytes; hostile bodies are left as they are", () => {
    const member = '"api_key":"k",';
    assert.equal(withCredential('{"events":[1]}', member), '{"api_key":"k","events":[1]}');
    const bytes = withCredential(new TextEncoder().encode('{"batch":["é"]}'), member);
    assert.ok(bytes instanceof Uint8Array);
    assert.equal(new TextDecoder().decode(bytes), '{"api_key":"k","batch":["é"]}');
    assert.equal(withCredential('{"a":1}', undefined), '{"a":1}');
    // Not an object: nothing added (the API refuses it, no credential leaks into it elsewhere).
    assert.equal(withCredential('["x"]', member), '["x"]');
    assert.deepEqual(withCredential(new Uint8Array([0x5b, 0x5d]), member), new Uint8Array([0x5b, 0x5d]));
  });
});

test("a destination named __proto__ is refused by validation, with its path", () => {
  const policy = JSON.parse('{"version":1,"environment":"t","hipaa":true,"destinations":{"__proto__":{"connection":"server-side","endpoint":"https://p.example/in"},"ok":{"connection":"server-side","endpoint":"https://ok.example/in"}}}');
  assert.ok(Object.hasOwn(policy.destinations, "__proto__"));
  const report = validatePolicy(JSON.stringify(policy));
  assert.equal(report.valid, false);
  const problem = report.errors.find((e) => e.path === "destinations.__proto__");
  assert.ok(problem, JSON.stringify(report.errors));
  assert.match(problem.message, /reserved/);
  assert.throws(() => new Sanitizer(JSON.stringify(policy), KEY), (e) => e.code === "invalid_policy");
});

test("the engine's JS objects keep any destination name as an own data member, even one validation refuses", () => {
  // A prepared policy whose destination name was changed to __proto__
  // after validation (its checksum made again): the binding must not
  // lose it in a prototype setter.
  const policy = {
    version: 1, environment: "t", hipaa: true,
    destinations: { xxproto__: { connection: "server-side", endpoint: "https://p.example/in", integration: "P" } },
  };
  const bytes = Buffer.from(preparePolicy(policy));
  const body = bytes.subarray(0, bytes.length - 32);
  const from = Buffer.from("xxproto__");
  const at = body.indexOf(from);
  assert.ok(at > 0 && body.indexOf(from, at + 1) === -1, "the name once");
  Buffer.from("__proto__").copy(body, at);
  createHash("sha256").update(body).digest().copy(bytes, body.length);
  const s = Sanitizer.fromPrepared(bytes, KEY);
  assert.deepEqual(s.destinations(), ["__proto__"]);
  const done = s.processRequest(Buffer.from('{"batch":[{"type":"track","event":"E","userId":"u1"}]}'), "batch");
  for (const part of ["bodies", "events", "report"]) {
    assert.equal(Object.getPrototypeOf(done[part]), Object.prototype, part);
    assert.ok(Object.hasOwn(done[part], "__proto__"), `${part} holds it as its own`);
    assert.deepEqual(Object.keys(done[part]), ["__proto__"], part);
  }
  assert.equal(done.bodies.__proto__.length, 1);
  assert.deepEqual(done.events.__proto__, [[0]]);
  assert.equal(done.report.__proto__.events, 1);
  const explained = s.explain('{"type":"track","event":"E","userId":"u1"}');
  assert.ok(Object.hasOwn(explained, "__proto__") && explained.__proto__.sent === true);
});
