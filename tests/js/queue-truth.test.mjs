// Delivery that tells the truth, inside workerd through Miniflare (which
// enforces Queues' limits): every queue message fits 128,000 bytes; a
// request is queued whole or refused whole, and its retry duplicates
// nothing; GA4 bodies past GA4's backdating window are dead letters, not a
// silent 2xx; sealed bodies are bound to destination, policy and key id,
// and the key rotates; a message made under another policy, endpoint or
// format is never sent; destination answers leave no key in logs or dead
// letters.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import { serialize } from "node:v8";
import { limits } from "../../www/dev/node.mjs";
import { deadLetterOf, FLOOR_BODY_BYTES, GA4_MARGIN_MS, GA4_WINDOW_MS, MESSAGE_BYTES, messageBytes } from "../../www/worker/queue.js";
import { open, seal, sealKey } from "../../www/worker/seal.js";
import { bundle, DELIVERY_QUEUE, startDestination, startWorker, until } from "./worker-harness.mjs";

const KEY = "queue-truth-masking-key-0123456789abcdef";
const WRITE_KEY = "wk_queue_truth";
const AMP_KEY = "0123456789abcdef0123456789abcdef";
const GA4_CREDENTIAL = "G-TRUTH123:truth-api-secret";
const keyOf = (seed) => Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 29 + seed) & 255)).toString("base64");
const [K1, K2, K3] = [keyOf(1), keyOf(2), keyOf(3)];
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;
const masked = (id) => createHmac("sha256", KEY).update(id).digest("hex");
const logsOf = (worker, kind) => worker.logs.filter((l) => l.includes(`"phimask":"${kind}`)).map((l) => JSON.parse(l));
const deadLetters = (worker, code) => logsOf(worker, "dead letter").filter((l) => l.reason?.code === code);

const policy = (destinations, extra = {}) => ({
  version: 1, environment: "test", hipaa: true,
  allowlists: { event_properties: { plan: "allow" } },
  destinations: Object.fromEntries(Object.entries(destinations).map(([name, d]) => [name, { connection: "server-side", ...d }])),
  ...extra,
});

async function post(worker, text, path = "/v1/batch") {
  const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, {
    method: "POST",
    headers: { Authorization: basic(WRITE_KEY), "Content-Type": "application/json" },
    body: text,
  });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: await res.json() };
}

/** A batch of `make(i)` events as large as the batch limit allows. */
function fullBatch(make) {
  const { maxBatchBytes } = limits();
  const parts = [];
  let size = '{"batch":[]}'.length;
  for (let i = 0; ; i++) {
    const text = JSON.stringify(make(i));
    if (size + text.length + 1 > maxBatchBytes) break;
    parts.push(text);
    size += text.length + 1;
  }
  return { text: `{"batch":[${parts.join(",")}]}`, count: parts.length };
}

// Events of the Segment-format bodies a destination received (answered 200).
const segmentEvents = (dest) => dest.requests.filter((r) => r.status === 200).flatMap((r) => JSON.parse(r.body).batch);
const amplitudeEvents = (dest) => dest.requests.filter((r) => r.status === 200).flatMap((r) => JSON.parse(r.body).events);
function counts(ids) {
  const seen = new Map();
  for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  return seen;
}
function assertEachOnce(ids, expected, what) {
  const seen = counts(ids);
  assert.equal(seen.size, expected.length, `${what}: distinct events`);
  for (const id of expected) assert.equal(seen.get(id), 1, `${what}: ${id} exactly once`);
}

/** A destination that answers every POST 400 with `answer` as JSON. */
async function answering(answer) {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify(answer)));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}/batch`, close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }) };
}

/** A DELIVERY message as a consumer gets it, from a spy's copy (bytes as { base64 }). */
function unspied(m) {
  const bytes = (v) => (v && typeof v === "object" && typeof v.base64 === "string" ? new Uint8Array(Buffer.from(v.base64, "base64")) : v);
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, bytes(v)]));
}
let nextId = 0;
/** Hands messages to a worker's DELIVERY consumer directly (no broker retries). */
async function consumeDirectly(worker, bodies) {
  const fetcher = await worker.mf.getWorker("phimask");
  return fetcher.queue(DELIVERY_QUEUE, bodies.map((body) => ({ id: `direct-${nextId++}`, timestamp: new Date(), attempts: 1, body })));
}
async function policyHash(worker) {
  const res = await worker.mf.dispatchFetch("http://edge.test/health");
  return (await res.json()).policy.sha256;
}

/** The dead letters a worker filed in its store (D1): each row's envelope, reason and answer. */
async function filed(worker) {
  const db = await worker.mf.getD1Database("DELIVERY_STATE");
  const { results } = await db.prepare("SELECT * FROM dead_letters").all();
  return results.map((r) => ({ ...r, ...JSON.parse(r.envelope), reason: { code: r.reason, answer: r.answer } }));
}

describe("queue messages fit Queues' limits, and a request is queued whole or refused whole", () => {
  const dest = {};
  let built;

  before(async () => {
    dest.seg = await startDestination();
    dest.baa = await startDestination();
    dest.amp = await startDestination();
    built = await bundle(policy({
      seg: { endpoint: dest.seg.url },
      baa: { endpoint: dest.baa.url, restrict_phi: false, baa: true },
      amp: { endpoint: dest.amp.url, format: "amplitude" },
    }));
  });

  after(async () => {
    await Promise.all(Object.values(dest).map((d) => d.close()));
    built?.cleanup();
  });

  const bindings = { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, QUEUE_ENCRYPTION_KEY: K1, AUTH_AMP: AMP_KEY };
  const clear = () => Object.values(dest).forEach((d) => d.requests.splice(0));

  test("a 500 KB batch of the smallest page events is taken (200) and each destination receives every event once", async () => {
    clear();
    const worker = await startWorker(built.script, bindings, { maxRetries: 3 });
    try {
      const { text, count } = fullBatch(() => ({ type: "page", anonymousId: "a1" }));
      assert.ok(text.length > 500_000 && count > 13_000, `${count} events in ${text.length} bytes`);
      const res = await post(worker, text);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      await until(() => segmentEvents(dest.seg).length >= count && segmentEvents(dest.baa).length >= count && amplitudeEvents(dest.amp).length >= count, "every event at every destination", 60_000);
      // Exact counts: nothing twice (these events have no id to count by;
      // the test below counts by masked id).
      assert.equal(segmentEvents(dest.seg).length, count);
      assert.equal(segmentEvents(dest.baa).length, count);
      assert.equal(amplitudeEvents(dest.amp).length, count);
      assert.equal(logsOf(worker, "not queued").length, 0);
    } finally {
      await worker.mf.dispose();
    }
  });

  for (const refusing of ["second", "slow-second"]) test(`the queue takes the first sendBatch call and refuses the second (${refusing === "second" ? "after 1.5 s" : "after 12 s, longer than messages are held"}): 503 with Retry-After, nothing of it sent; the retry delivers each event exactly once`, async () => {
    clear();
    const worker = await startWorker(built.script, bindings, { maxRetries: 3, refusingQueue: refusing });
    try {
      // Hostile-looking but valid: ids with quotes, an email as a property.
      const { text, count } = fullBatch((i) => ({ type: "track", event: "Visit", anonymousId: "a1", messageId: `m"${i}`, properties: { email: "jane@example.com" } }));
      const first = await post(worker, text);
      assert.equal(first.status, 503, JSON.stringify(first.body));
      assert.equal(first.body.code, "queue_unavailable");
      assert.equal(first.retryAfter, "5");
      const voided = await (await worker.mf.getD1Database("DELIVERY_STATE")).prepare("SELECT count(*) AS n FROM voided_requests").first();
      assert.equal(voided.n, 1, "the refused request's id is recorded before the answer");
      const [taken] = await worker.calls();
      assert.ok(taken > 0, "the first call was queued");

      const retry = await post(worker, text);
      assert.equal(retry.status, 200, JSON.stringify(retry.body));
      // The sentinel: every message the queue took (of both attempts) was
      // consumed, forwarded or dropped.
      const calls = await worker.calls();
      const expected = calls[0] + calls.slice(2).reduce((a, b) => a + b, 0);
      const consumed = () => logsOf(worker, "dropped").length + logsOf(worker, "forwarded").length;
      await until(() => consumed() >= expected, "every queued message consumed", 60_000);
      assert.equal(consumed(), expected);
      const ids = Array.from({ length: count }, (_, i) => `m"${i}`);
      assertEachOnce(segmentEvents(dest.seg).map((e) => e.messageId), ids.map(masked), "seg");
      assertEachOnce(segmentEvents(dest.baa).map((e) => e.messageId), ids, "baa (sealed, under a BAA)");
      assertEachOnce(amplitudeEvents(dest.amp).map((e) => e.insert_id), ids.map(masked), "amp");
      assert.equal(logsOf(worker, "dropped").length, taken, "the refused attempt's queued messages were all dropped");
      const all = worker.logs.join("\n");
      assert.ok(!all.includes("jane@example.com") && !all.includes(K1) && !all.includes(AMP_KEY), "no value, key or credential in logs");
    } finally {
      await worker.mf.dispose();
    }
  });

  // The longest `known` list a reason can hold (Amplitude's documented keys).
  const AMPLITUDE_KEYS = ["code", "error", "missing_field", "events_with_invalid_fields", "events_with_missing_fields", "events_with_invalid_id_lengths", "silenced_events", "silenced_devices", "throttled_devices", "throttled_users", "throttled_events", "exceeded_daily_quota_devices", "exceeded_daily_quota_users", "eps_threshold", "server_upload_time", "payload_size_bytes", "events_ingested"];
  test("a message's bound covers its V8 serialization, and the last-resort body limit fits any message", () => {
    const worst = (bodyBytes, firstIndex) => ({
      to: "d".repeat(64), events: Array.from({ length: Math.floor(bodyBytes / 3) }, (_, i) => firstIndex + i), body: new Uint8Array(bodyBytes),
      iv: new Uint8Array(12), kid: "0".repeat(8), policy: "0".repeat(64), format: "amplitude", endpoint: "0".repeat(64), req: crypto.randomUUID(),
      // The ledger's labels: a label index per event (the labels themselves are measured).
      ledger: { day: "2026-12-05", labels: [["track", "Appointment Booked"], ["page", null]], of: Array.from({ length: Math.floor(bodyBytes / 3) }, (_, i) => i % 2) },
    });
    for (const m of [worst(FLOOR_BODY_BYTES, 0), worst(FLOOR_BODY_BYTES, 200_000), worst(1000, 0), worst(0, 0)]) {
      const letter = deadLetterOf(m, { code: "refused", status: 400, answer: { type: "object", bytes: 262_144, keys: 1000, known: AMPLITUDE_KEYS } });
      for (const x of [m, letter]) assert.ok(serialize(x).byteLength <= messageBytes(x), `${serialize(x).byteLength} <= ${messageBytes(x)}`);
      assert.ok(messageBytes(letter) <= MESSAGE_BYTES);
    }
  });
});

describe("GA4: events older than GA4's 72-hour backdating window are dead letters", () => {
  let ga;
  let built;
  let worker;

  before(async () => {
    ga = await startDestination([500]);
    built = await bundle(policy({ ga: { endpoint: ga.url, format: "ga4" } }, { events: { Visit: "allow", "*": "drop" } }));
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, AUTH_GA: GA4_CREDENTIAL }, { maxRetries: 20 });
  });

  after(async () => {
    await worker?.mf.dispose();
    await ga?.close();
    built?.cleanup();
  });

  const visit = (id, at, device = `device-${id}`) => ({ type: "track", event: "Visit", anonymousId: device, messageId: id, timestamp: new Date(at).toISOString() });

  test("an event dated four days ago: dead-lettered outside_ga4_window, never sent; a fresh one is", async () => {
    ga.answer([200]);
    const before = ga.requests.length;
    const old = await post(worker, JSON.stringify(visit("old", Date.now() - 4 * 86_400_000)), "/v1/track");
    assert.equal(old.status, 200);
    await until(() => deadLetters(worker, "outside_ga4_window").length === 1, "the dead letter");
    const fresh = await post(worker, JSON.stringify(visit("fresh", Date.now() - 60_000)), "/v1/track");
    assert.equal(fresh.status, 200);
    await until(() => logsOf(worker, "forwarded").length === 1, "the fresh event (sentinel)");
    assert.equal(ga.requests.length - before, 1, "only the fresh event reached GA4");
  });

  test("one body, one event past the window and one inside: the old one dead-lettered, the other sent alone", async () => {
    ga.answer([200]);
    const before = ga.requests.length;
    const forwarded = logsOf(worker, "forwarded").length;
    const batch = [visit("mixed-old", Date.now() - 80 * 3_600_000, "same"), visit("mixed-fresh", Date.now() - 5_000, "same")];
    const res = await post(worker, JSON.stringify({ batch }));
    assert.equal(res.status, 200);
    await until(() => deadLetters(worker, "outside_ga4_window").length === 2 && logsOf(worker, "forwarded").length === forwarded + 1, "the dead letter and the delivery");
    assert.equal(deadLetters(worker, "outside_ga4_window").at(-1).events, 1);
    const sent = ga.requests.slice(before);
    assert.equal(sent.length, 1);
    const events = JSON.parse(sent[0].body).events;
    assert.equal(events.length, 1, "only the event inside the window");
    assert.ok(events[0].timestamp_micros > (Date.now() - 60_000) * 1000);
  });

  test("a body that waited in retries past the window: dead-lettered outside_ga4_window, not retried again", async () => {
    ga.answer([500]);
    const before = ga.requests.length;
    // Inside the window (with its margin) by 2.5 s when queued: the first
    // attempts are made and answered 500; the retry after that is outside.
    const at = Date.now() - GA4_WINDOW_MS + GA4_MARGIN_MS + 2_500;
    const res = await post(worker, JSON.stringify(visit("late", at)), "/v1/track");
    assert.equal(res.status, 200);
    await until(() => deadLetters(worker, "outside_ga4_window").length === 3, "the dead letter", 20_000);
    const tried = ga.requests.length - before;
    assert.ok(tried >= 1, "tried while inside the window");
    assert.ok(logsOf(worker, "delivery failed").length >= 1);
    assert.equal(deadLetters(worker, "retries_exhausted").length, 0);
  });
});

describe("sealing binds destination, policy and key id; the key rotates; a changed policy sends nothing", () => {
  const dest = {};
  const built = {};
  const hash = {};

  before(async () => {
    dest.one = await startDestination();
    dest.two = await startDestination();
    dest.moved = await startDestination();
    dest.refusing = await startDestination([{ status: 400 }]);
    const both = { restrict_phi: false, baa: true };
    // Policy A: two BAA destinations at the same endpoint and format.
    built.a = await bundle(policy({ one: { endpoint: dest.one.url, ...both }, two: { endpoint: dest.one.url, ...both } }));
    // Policy B: destination one moved to another endpoint.
    built.b = await bundle(policy({ one: { endpoint: dest.moved.url, ...both }, two: { endpoint: dest.one.url, ...both } }));
    // Policy C: as A, and another allowlist (so another hash).
    built.c = await bundle(policy({ one: { endpoint: dest.one.url, ...both }, two: { endpoint: dest.one.url, ...both } }, { allowlists: { event_properties: { plan: "allow", tier: "allow" } } }));
  });

  after(async () => {
    await Promise.all(Object.values(dest).map((d) => d.close()));
    Object.values(built).forEach((b) => b.cleanup());
  });

  const base = { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY };
  const event = { type: "track", event: "Visit", userId: "patient-1", messageId: "seal-1", properties: { plan: "gold" } };

  /** The DELIVERY messages a worker with `script` and `key` makes of one event. */
  async function made(script, key) {
    const spy = await startWorker(script, { ...base, QUEUE_ENCRYPTION_KEY: key }, { spy: true });
    try {
      hash[script] = await policyHash(spy);
      assert.equal((await post(spy, JSON.stringify(event), "/v1/track")).status, 200);
      let seen = [];
      await until(async () => (seen = await spy.queued()).length === 2, "both messages");
      return seen.map(unspied);
    } finally {
      await spy.mf.dispose();
    }
  }

  test("the envelope records policy, format, endpoint hash and key id; the body opens only for its destination, policy and key", async () => {
    const [m] = await made(built.a.script, K1);
    assert.match(m.policy, /^[0-9a-f]{64}$/);
    assert.match(m.endpoint, /^[0-9a-f]{64}$/);
    assert.equal(m.format, "segment");
    assert.match(m.kid, /^[0-9a-f]{8}$/);
    assert.equal(m.req, undefined, "one sendBatch call: no request id");
    const keys = [sealKey(K1)];
    const bound = { destination: m.to, policy: m.policy, kid: m.kid };
    assert.equal(JSON.parse(new TextDecoder().decode(await open(keys, bound, m.iv, m.body))).batch[0].userId, "patient-1");
    for (const other of [{ destination: m.to === "one" ? "two" : "one" }, { policy: "0".repeat(64) }, { kid: "00000000" }]) {
      await assert.rejects(open(keys, { ...bound, ...other }, m.iv, m.body), JSON.stringify(other));
    }
    await assert.rejects(open([sealKey(K2)], bound, m.iv, m.body), "another key");
    const sealed = await seal(sealKey(K2), { destination: "one", policy: "ab" }, new TextEncoder().encode("x"));
    assert.equal(sealed.kid, (await sealKey(K2)).kid);
    assert.throws(() => sealKey("too short"), { code: "invalid_queue_key" });
  });

  test("rotation: sealed under the previous key, delivered; under a third key, dead-lettered undecryptable; relabelled for another destination or policy, never opened", async () => {
    const messages = await made(built.a.script, K1);
    const rotated = await startWorker(built.a.script, { ...base, QUEUE_ENCRYPTION_KEY: K2, QUEUE_ENCRYPTION_KEY_PREVIOUS: K1 });
    try {
      const health = await (await rotated.mf.dispatchFetch("http://edge.test/health")).json();
      assert.equal(health.secrets.QUEUE_ENCRYPTION_KEY_PREVIOUS, true);
      assert.ok(!JSON.stringify(health).includes(K1) && !JSON.stringify(health).includes(K2));
      const before = dest.one.requests.length;
      await consumeDirectly(rotated, messages);
      assert.equal(dest.one.requests.length - before, 2, "both delivered after the rotation");
      assert.equal(segmentEvents(dest.one).at(-1).userId, "patient-1", "under a BAA: as sent");

      // A third key: neither current nor previous.
      const stranger = await made(built.a.script, K3);
      await consumeDirectly(rotated, stranger);
      // Relabelled: sealed for "one", handed over as "two" (same endpoint and format).
      const [m] = messages;
      await consumeDirectly(rotated, [{ ...m, to: m.to === "one" ? "two" : "one" }]);
      // Sealed under policy C's hash, handed over as policy A's.
      const [c] = await made(built.c.script, K1);
      assert.notEqual(hash[built.c.script], hash[built.a.script]);
      await consumeDirectly(rotated, [{ ...c, policy: hash[built.a.script] }]);
      assert.equal(dest.one.requests.length - before, 2, "nothing more sent");
      await until(() => deadLetters(rotated, "undecryptable").length === 4, "four undecryptable dead letters");

      // A malformed previous key: nothing accepted or sent (503), never quoted.
      const bad = "p".repeat(40);
      const broken = await startWorker(built.a.script, { ...base, QUEUE_ENCRYPTION_KEY: K2, QUEUE_ENCRYPTION_KEY_PREVIOUS: bad });
      try {
        const res = await post(broken, JSON.stringify(event), "/v1/track");
        assert.equal(res.status, 503);
        assert.equal(res.body.code, "invalid_queue_key");
        assert.match(res.body.error, /QUEUE_ENCRYPTION_KEY_PREVIOUS must be 32 bytes/);
        assert.ok(!JSON.stringify(res.body).includes(bad) && !broken.logs.join("\n").includes(bad));
      } finally {
        await broken.mf.dispose();
      }

      // Without the previous key, what K1 sealed no longer opens.
      const dropped = await startWorker(built.a.script, { ...base, QUEUE_ENCRYPTION_KEY: K2 });
      try {
        await consumeDirectly(dropped, messages);
        await until(() => deadLetters(dropped, "undecryptable").length === 2, "dead letters without the previous key");
      } finally {
        await dropped.mf.dispose();
      }
    } finally {
      await rotated.mf.dispose();
    }
  });

  test("made under policy A, consumed under policy B that moved the endpoint: dead-lettered policy_changed, the new endpoint receives nothing", async () => {
    const messages = await made(built.a.script, K1);
    const b = await startWorker(built.b.script, { ...base, QUEUE_ENCRYPTION_KEY: K1 });
    try {
      const movedBefore = dest.moved.requests.length;
      const oneBefore = dest.one.requests.length;
      await consumeDirectly(b, messages);
      // Consumed when queue() resolves: exact counts, no waiting.
      assert.equal(dest.moved.requests.length, movedBefore, "the new endpoint receives nothing");
      assert.equal(dest.one.requests.length, oneBefore, "policy B's hash differs: nothing sent, even where the endpoint is the same");
      await until(() => deadLetters(b, "policy_changed").length === 2, "two policy_changed dead letters");
      // Same policy hash, but the message names another endpoint or format.
      const [m] = await made(built.b.script, K1);
      await consumeDirectly(b, [{ ...m, endpoint: "f".repeat(64) }, { ...m, format: "amplitude" }]);
      await until(() => deadLetters(b, "policy_changed").length === 4, "four policy_changed dead letters");
      assert.equal(dest.moved.requests.length, movedBefore);
      // And unchanged, it is sent.
      await consumeDirectly(b, [m]);
      assert.equal(dest.moved.requests.length + dest.one.requests.length, movedBefore + oneBefore + 1);
      // The filed dead letter keeps the envelope (no value).
      let values = [];
      await until(async () => (values = await filed(b)).length === 4, "the filed dead letters");
      for (const v of values) {
        assert.equal(v.reason.code, "policy_changed");
        for (const k of ["policy", "format", "endpoint", "kid", "iv"]) assert.ok(v[k] !== undefined, k);
        assert.ok(!JSON.stringify(v).includes("patient-1"), "sealed: no value readable");
      }
    } finally {
      await b.mf.dispose();
    }
  });

  test("a destination's answer with PHI-like keys: no key of it in any log or dead letter", async () => {
    const phi = { "jane.doe@example.com": 1, "chest pain": { "MRN-448812": "x" }, error: "patient Jane Doe" };
    const refusing = await answering(phi);
    const amp = await answering({ code: 400, error: "Invalid field values on some events", events_with_invalid_fields: { "jane.doe@example.com": [0], user_id: [1] } });
    const b = await bundle(policy({ refusing: { endpoint: refusing.url }, amp: { endpoint: amp.url, format: "amplitude" } }));
    const w = await startWorker(b.script, { ...base, AUTH_AMP: AMP_KEY }, { maxRetries: 3 });
    try {
      const res = await post(w, JSON.stringify({ batch: [event, { ...event, messageId: "seal-2" }] }));
      assert.equal(res.status, 200);
      await until(() => logsOf(w, "dead letter").length === 2, "both dead letters");
      let values = [];
      await until(async () => (values = await filed(w)).length === 2, "filed");
      const text = w.logs.join("\n") + JSON.stringify(values);
      for (const word of ["jane.doe", "chest pain", "MRN-448812", "Jane Doe"]) assert.ok(!text.includes(word), word);
      const reasons = Object.fromEntries(logsOf(w, "dead letter").map((l) => [l.destination, l.reason]));
      assert.deepEqual(reasons.refusing, { code: "refused", status: 400, answer: { type: "object", bytes: Buffer.byteLength(JSON.stringify(phi)), keys: 3, known: [] } });
      assert.deepEqual(reasons.amp.answer.known, ["code", "error", "events_with_invalid_fields"], "only Amplitude's documented keys");
      const refused = logsOf(w, "events refused by destination")[0].events;
      assert.deepEqual(refused, [{ index: 0, fields: ["other"] }, { index: 1, fields: ["user_id"] }], "a field Amplitude documents, else other");
    } finally {
      await w.mf.dispose();
      await refusing.close();
      await amp.close();
      b.cleanup();
    }
  });
});
