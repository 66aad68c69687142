// Durable delivery inside workerd: the Worker's local queues (Miniflare,
// as under `wrangler dev`) between the client's 200 and real HTTP
// destinations on 127.0.0.1 that fail, stay down, refuse, or come back.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHmac, webcrypto } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { serialize } from "node:v8";
import { Sanitizer } from "../../www/dev/node.mjs";
import { endpointId } from "../../www/worker/queue.js";
import { sealKey } from "../../www/worker/seal.js";
import { bundle, closedUrl, freePort, root, sleep, startDestination, startWorker, until } from "./worker-harness.mjs";

const KEY = "delivery-test-masking-key-0123456789abcdef";
const WRITE_KEY = "wk_delivery";
// At least 32 bytes, or the operator routes stay closed.
const OPERATOR_KEY = "operator-key-5d1e9c7a-0123456789abcdef";
const QUEUE_KEY = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 255)).toString("base64");
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;
const run = promisify(execFile);

const track = (id, extra = {}) => ({ type: "track", event: "Visit", userId: `patient-${id}`, messageId: `msg-${id}`, properties: { plan: "gold", email: `jane${id}@example.com` }, ...extra });

async function send(worker, batch) {
  const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
    method: "POST",
    headers: { Authorization: basic(WRITE_KEY), "Content-Type": "application/json" },
    body: JSON.stringify({ batch }),
  });
  return { status: res.status, body: await res.json() };
}

async function operator(worker, path, method = "GET", key = OPERATOR_KEY) {
  const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, { method, headers: key ? { Authorization: `Bearer ${key}` } : {} });
  return { status: res.status, body: await res.json() };
}

const policy = (destinations) => ({
  version: 1, environment: "test", hipaa: true,
  allowlists: { event_properties: { plan: "allow" } },
  destinations: Object.fromEntries(Object.entries(destinations).map(([name, d]) => [name, { connection: "server-side", ...d }])),
});

const ids = (dest) => dest.delivered().map((e) => e.messageId);
// Restricted destinations receive each messageId masked (HMAC-SHA256 hex).
const masked = (id) => createHmac("sha256", KEY).update(id).digest("hex");
const SENT_IDS = ["msg-1", "msg-2"].map(masked);
const logsOf = (worker, kind) => worker.logs.filter((l) => l.includes(`"phimask":"${kind}"`)).map((l) => JSON.parse(l));
// Cloudflare Queues take messages of at most 128 KB (Miniflare: 128,000 bytes).
const QUEUE_MESSAGE_BYTES = 128_000;

/**
 * Sends `event` (a valid one, after what a test sent) and waits until each
 * of `dests` has delivered it: what an earlier request or replay would
 * have delivered has arrived by then.
 */
async function sentinel(worker, dests, event) {
  assert.equal((await send(worker, [event])).status, 200);
  const id = (d) => (d.restricted === false ? event.messageId : masked(event.messageId));
  for (const d of dests) await until(() => ids(d.dest).includes(id(d)), `the sentinel ${event.messageId}`, 20_000);
}

/**
 * For a Worker whose delivery queue a spy reads: a sentinel message put on
 * the queue after what a test sent; resolves, once the spy has read it, to
 * every message the spy read.
 */
async function queueSentinel(worker) {
  const queue = await worker.mf.getQueueProducer("DELIVERY", "phimask");
  await queue.send({ sentinel: true });
  await until(async () => (await worker.queued()).some((m) => m.sentinel === true), "the queue's sentinel");
  return worker.queued();
}

/** A message as the spy read it (bytes as base64), back to what was queued. */
const revive = (v) => (v && typeof v === "object" ? (typeof v.base64 === "string" ? new Uint8Array(Buffer.from(v.base64, "base64")) : Array.isArray(v) ? v.map(revive) : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]))) : v);

describe("durable delivery: retries, dead letters and replay", () => {
  const dest = {};
  let down;
  let built;
  let worker;

  before(async () => {
    dest.flaky = await startDestination([500, 500, 200]);
    dest.throttled = await startDestination([{ status: 429, headers: { "retry-after": "3" } }, 200]);
    dest.refusing = await startDestination([{ status: 400, headers: {} }]);
    dest.broken = await startDestination([503]);
    dest.good = await startDestination();
    down = await closedUrl();
    built = await bundle(policy({
      flaky: { endpoint: dest.flaky.url },
      throttled: { endpoint: dest.throttled.url },
      refusing: { endpoint: dest.refusing.url },
      broken: { endpoint: dest.broken.url },
      good: { endpoint: dest.good.url },
      down: { endpoint: down },
    }));
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY }, { maxRetries: 3 });
  });

  after(async () => {
    await worker?.mf.dispose();
    await Promise.all(Object.values(dest).map((d) => d.close()));
    built?.cleanup();
  });

  test("each failure as the queue consumer handles it: backoff, Retry-After, 4xx at once, retries exhausted; the good destination once", async () => {
    const started = Date.now();
    const res = await send(worker, [track(1), track(2)]);
    assert.equal(res.status, 200, "answered once queued");
    // The flaky destination: 500, 500, then delivered, after 1 s and 2 s.
    await until(() => ids(dest.flaky).length === 2, "the flaky destination's third attempt", 20_000);
    assert.deepEqual(dest.flaky.requests.map((r) => r.status), [500, 500, 200]);
    const [a, b, c] = dest.flaky.requests.map((r) => r.at);
    assert.ok(b - a >= 950, `first backoff ${b - a} ms`);
    assert.ok(c - b >= 1950, `second backoff ${c - b} ms`);
    assert.ok(dest.flaky.requests.every((r) => r.body === dest.flaky.requests[0].body), "the same body each time");
    // 429 with Retry-After: 3 waits 3 s, not the 1 s backoff.
    await until(() => ids(dest.throttled).length === 2, "the throttled destination's second attempt", 20_000);
    const [t1, t2] = dest.throttled.requests.map((r) => r.at);
    assert.ok(t2 - t1 >= 2950, `Retry-After honoured: ${t2 - t1} ms`);
    // 503 forever, and a closed port: four attempts (max_retries 3), then dead letters with the reason.
    await until(() => logsOf(worker, "dead letter").length === 3, "three dead letters", 30_000);
    const reasons = Object.fromEntries(logsOf(worker, "dead letter").map((l) => [l.destination, l.reason]));
    assert.deepEqual(reasons, {
      // Counts of the answer ("{}"), never its keys or values.
      refusing: { code: "refused", status: 400, answer: { type: "object", bytes: 2, keys: 0, known: [] } },
      broken: { code: "retries_exhausted", status: 503, attempts: 4 },
      down: { code: "retries_exhausted", status: "network error", attempts: 4 },
    });
    assert.equal(dest.refusing.requests.length, 1, "a 400 is not retried");
    assert.equal(dest.broken.requests.length, 4);
    // Nothing sent twice anywhere else.
    assert.deepEqual(ids(dest.good), SENT_IDS);
    assert.equal(dest.good.requests.length, 1);
    assert.ok(Date.now() - started < 60_000);
  });

  test("dead letters: listed for the operator with their reasons, no values; replay delivers them, and only them", async () => {
    // The operator endpoints need OPERATOR_KEY as a bearer token.
    assert.equal((await operator(worker, "/dead-letters", "GET", null)).status, 401);
    assert.equal((await operator(worker, "/dead-letters", "GET", "wrong")).status, 401);
    assert.equal((await operator(worker, "/dead-letters/replay", "GET")).status, 405);
    await until(() => logsOf(worker, "dead letter").length === 3, "the dead letters");
    let listed;
    for (let i = 0; i < 50; i++) {
      listed = await operator(worker, "/dead-letters");
      if (listed.body.deadLetters?.length === 3) break;
      await sleep(100);
    }
    assert.equal(listed.status, 200);
    const byDestination = Object.fromEntries(listed.body.deadLetters.map((d) => [d.destination, d]));
    assert.deepEqual(Object.keys(byDestination).sort(), ["broken", "down", "refusing"]);
    assert.equal(byDestination.broken.events, 2);
    assert.deepEqual(byDestination.broken.reason, { code: "retries_exhausted", status: 503, attempts: 4 });
    const text = JSON.stringify(listed.body);
    for (const v of ["jane", "patient-", "example.com"]) assert.ok(!text.includes(v), `no value: ${v}`);

    // The broken destination is mended; the replay command re-queues every
    // dead letter (--force: letters that do not name the policy they were
    // made under count as made under another).
    dest.broken.answer([200]);
    dest.refusing.answer([200]);
    const { stdout } = await run(process.execPath, [`${root}scripts/dead-letters.mjs`, "replay", "--force", worker.url], { env: { ...process.env, PHIMASK_OPERATOR_KEY: OPERATOR_KEY } });
    assert.match(stdout, /replayed 3 dead letters/);
    await until(() => ids(dest.broken).length === 2 && ids(dest.refusing).length === 2, "the replayed bodies", 15_000);
    assert.deepEqual(ids(dest.broken), SENT_IDS);
    // Each was the body that failed, byte for byte.
    assert.equal(dest.broken.requests.at(-1).body, dest.broken.requests[0].body);
    const { stdout: after } = await run(process.execPath, [`${root}scripts/dead-letters.mjs`, "list", worker.url], { env: { ...process.env, PHIMASK_OPERATOR_KEY: OPERATOR_KEY } });
    // The closed port is still down: its replayed letter is retried, not listed yet.
    assert.match(after, /^0 dead letters/m);
    await sentinel(worker, ["good", "flaky", "throttled", "broken", "refusing"].map((d) => ({ dest: dest[d] })), track("sentinel-replay"));
    const sent = [...SENT_IDS, masked("msg-sentinel-replay")];
    for (const d of ["good", "flaky", "throttled"]) assert.deepEqual(ids(dest[d]), sent, `replay sent nothing to ${d}`);
    for (const d of ["broken", "refusing"]) assert.deepEqual(ids(dest[d]), sent, `${d}: its replayed letter once`);
  });
});

describe("durable delivery: a destination down while each body is retried four times", () => {
  let port;
  let dest;
  let built;
  let worker;

  before(async () => {
    port = await freePort();
    built = await bundle(policy({ clinic: { endpoint: `http://127.0.0.1:${port}/batch` } }));
    // The settings of wrangler.toml: 20 retries, 1, 2, 4 … s apart.
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY }, { maxRetries: 20 });
  });

  after(async () => {
    await worker?.mf.dispose();
    await dest?.close();
    built?.cleanup();
  });

  test("every event arrives, once, counted by messageId, after the destination comes back", async () => {
    const sent = [];
    for (let r = 0; r < 5; r++) {
      const batch = Array.from({ length: 40 }, (_, i) => track(r * 40 + i));
      assert.equal((await send(worker, batch)).status, 200);
      sent.push(...batch.map((e) => masked(e.messageId)));
    }
    // Down until each body was retried four times (1, 2, 4 and 8 s apart: about 15 s).
    await until(() => logsOf(worker, "delivery failed, will retry").length >= 5 * 4, "four retries of each body while down", 60_000);
    assert.equal(logsOf(worker, "dead letter").length, 0);
    dest = await startDestination([200], port);
    await until(() => ids(dest).length >= sent.length, "every event", 90_000);
    await sentinel(worker, [{ dest }], track("sentinel-minute"));
    assert.deepEqual(ids(dest).sort(), [...sent, masked("msg-sentinel-minute")].sort());
  });
});

describe("durable delivery: what the queue holds", () => {
  const dest = {};
  let built;
  let worker;
  let sanitizer;
  const destinations = () => ({ analytics: { endpoint: dest.analytics.url }, warehouse: { endpoint: dest.warehouse.url, restrict_phi: false, baa: true } });

  before(async () => {
    dest.analytics = await startDestination();
    dest.warehouse = await startDestination();
    const p = policy(destinations());
    built = await bundle(p);
    sanitizer = new Sanitizer(p, KEY);
    // A spy Worker consumes the delivery queue: what it reads is what was queued.
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, QUEUE_ENCRYPTION_KEY: QUEUE_KEY }, { spy: true });
  });

  after(async () => {
    await worker?.mf.dispose();
    await Promise.all(Object.values(dest).map((d) => d.close()));
    built?.cleanup();
    sanitizer?.free();
  });

  test("bodies under a BAA are queued sealed (AES-256-GCM, fresh IV, bound to the destination); no clear value in any message", async () => {
    const batch = [track(1, { context: { ip: "203.0.113.9" }, traits: { name: "Jane Roe" } }), track(2)];
    assert.equal((await send(worker, batch)).status, 200);
    await until(async () => (await worker.queued()).length === 2, "two queued messages");
    const messages = await worker.queued();
    const by = Object.fromEntries(messages.map((m) => [m.to, m]));
    const expected = sanitizer.processRequest(Buffer.from(JSON.stringify({ batch })), "batch").bodies;
    // The restricted destination's body is the sanitized one, as sent.
    assert.equal(Buffer.from(by.analytics.body.base64, "base64").toString(), expected.analytics[0]);
    assert.equal(by.analytics.iv, undefined);
    // The warehouse's (PHI, under a BAA) is sealed: no value of the event in it.
    const sealed = Buffer.from(by.warehouse.body.base64, "base64");
    const raw = JSON.stringify(messages);
    for (const v of ["jane1@example.com", "Jane Roe", "patient-1", "203.0.113.9"]) {
      assert.ok(expected.warehouse[0].includes(v), `the warehouse is sent ${v}`);
      assert.ok(!raw.includes(v) && !sealed.includes(v), `${v} not in the queue`);
    }
    const iv = Buffer.from(by.warehouse.iv.base64, "base64");
    assert.equal(iv.length, 12);
    assert.equal(sealed.length, Buffer.byteLength(expected.warehouse[0]) + 16, "ciphertext and tag");
    const key = await webcrypto.subtle.importKey("raw", Buffer.from(QUEUE_KEY, "base64"), "AES-GCM", false, ["decrypt"]);
    // Bound to key id, policy hash and destination.
    const { kid, policy: hash } = by.warehouse;
    assert.match(kid, /^[0-9a-f]{8}$/);
    const open = (to) => webcrypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: Buffer.from(JSON.stringify(["phimask-seal-1", kid, hash, to])) }, key, sealed);
    assert.equal(Buffer.from(await open("warehouse")).toString(), expected.warehouse[0]);
    await assert.rejects(open("analytics"), "sealed for the warehouse only");
    // A second request: a fresh IV.
    assert.equal((await send(worker, [track(3)])).status, 200);
    await until(async () => (await worker.queued()).length === 4, "two more messages");
    const again = (await worker.queued()).filter((m) => m.to === "warehouse");
    assert.notEqual(again[0].iv.base64, again[1].iv.base64);
    assert.equal(dest.warehouse.requests.length + dest.analytics.requests.length, 0, "nothing sent but through the queue");
  });

  test("bodies are split to fit a queue message (128 KB); none is lost or repeated", async () => {
    const before = (await worker.queued()).length;
    // ~370 KB for the analytics destination: more than two messages hold.
    const big = Array.from({ length: 60 }, (_, i) => track(100 + i, { properties: { plan: "x".repeat(6000 + i) } }));
    assert.equal((await send(worker, big)).status, 200);
    // A request of more than one sendBatch call is held a few seconds (so a
    // failed later call can void it): wait for all of its 60 events.
    const mineOf = (all) => all.slice(before).filter((m) => m.to === "analytics");
    await until(async () => mineOf(await worker.queued()).flatMap((m) => m.events).length >= 60, "the request's analytics messages", 30_000);
    const mine = mineOf(await queueSentinel(worker));
    assert.ok(mine.length >= 3, `${mine.length} messages`);
    for (const m of mine) {
      const size = serialize(revive(m)).length;
      assert.ok(size <= QUEUE_MESSAGE_BYTES, `a message of ${size} bytes`);
    }
    const events = mine.flatMap((m) => JSON.parse(Buffer.from(m.body.base64, "base64").toString()).batch.map((e) => e.messageId));
    assert.deepEqual(events, big.map((e) => masked(e.messageId)));
    assert.deepEqual(mine.flatMap((m) => m.events), big.map((_, i) => i), "request indexes of the events");
  });
});

describe("durable delivery: hostile and broken messages, keys and queues", () => {
  const dest = {};
  let built;

  before(async () => {
    dest.analytics = await startDestination();
    dest.warehouse = await startDestination();
    built = await bundle(policy({ analytics: { endpoint: dest.analytics.url }, warehouse: { endpoint: dest.warehouse.url, restrict_phi: false, baa: true } }));
  });

  after(async () => {
    await Promise.all(Object.values(dest).map((d) => d.close()));
    built?.cleanup();
  });

  test("a message that is altered, sealed for another destination, not sealed, or for no destination is a dead letter, never sent, also when replayed", async () => {
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, QUEUE_ENCRYPTION_KEY: QUEUE_KEY, OPERATOR_KEY }, { maxRetries: 1 });
    try {
      // Messages put on the delivery queue with its own producer binding.
      const key = await webcrypto.subtle.importKey("raw", Buffer.from(QUEUE_KEY, "base64"), "AES-GCM", false, ["encrypt"]);
      const iv = new Uint8Array(12).fill(7);
      // The envelope of the current policy: these messages are checked past it.
      const policyHash = (await (await worker.mf.dispatchFetch("http://edge.test/health")).json()).policy.sha256;
      const { kid } = await sealKey(QUEUE_KEY);
      const additionalData = Buffer.from(JSON.stringify(["phimask-seal-1", kid, policyHash, "analytics"]));
      const body = new Uint8Array(await webcrypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData }, key, Buffer.from('{"batch":[]}')));
      const envelope = {
        warehouse: { policy: policyHash, format: "segment", endpoint: await endpointId(dest.warehouse.url), kid },
        analytics: { policy: policyHash, format: "segment", endpoint: await endpointId(dest.analytics.url), kid },
      };
      const altered = body.slice();
      altered[3] ^= 1;
      const queue = await worker.mf.getQueueProducer("DELIVERY", "phimask");
      const messages = [
        { to: "warehouse", ...envelope.warehouse, events: [0], body, iv }, // sealed for "analytics"
        { to: "warehouse", ...envelope.warehouse, events: [0], body: altered, iv },
        { to: "warehouse", ...envelope.warehouse, events: [0], body: new TextEncoder().encode('{"batch":[{"email":"jane@example.com"}]}') },
        { to: "nowhere", events: [0], body: new Uint8Array(4) },
        { to: "analytics", ...envelope.analytics, events: [0], body: "not bytes" },
        // Sealed (PHI under a BAA) for a destination the policy restricts.
        { to: "analytics", ...envelope.analytics, events: [0], body, iv },
        // An IV that is not bytes: still sealed, never sent as it is.
        { to: "analytics", ...envelope.analytics, events: [0], body, iv: "not bytes" },
        { to: "warehouse", ...envelope.warehouse, events: [0], body, iv: null },
        // Not even an object.
        "just text",
        12345,
      ];
      await queue.sendBatch(messages.map((m) => ({ body: m, contentType: "v8" })));
      const codes = ["not_sealed", "restricted_now", "restricted_now", "undecryptable", "undecryptable", "undecryptable", "unknown_destination", "unknown_destination", "unknown_destination", "unreadable_message"];
      await until(() => logsOf(worker, "dead letter").length === 10, "ten dead letters");
      assert.deepEqual(logsOf(worker, "dead letter").map((l) => l.reason.code).sort(), codes);
      const both = [{ dest: dest.analytics }, { dest: dest.warehouse, restricted: false }];
      const bodies = () => [...dest.analytics.requests, ...dest.warehouse.requests].map((r) => JSON.parse(r.body).batch.map((e) => e.event));
      await sentinel(worker, both, track("sentinel-hostile-1", { event: "Sentinel" }));
      assert.deepEqual(bodies(), [["Sentinel"], ["Sentinel"]], "nothing sent but the sentinel");
      assert.ok(!worker.logs.join("\n").includes("jane@example.com"));
      // Replayed (forced), each is checked again, but none for a destination
      // gone or sealed for one now restricted is even queued; a damaged
      // entry of the store is kept and named, not a crash.
      await until(async () => (await operator(worker, "/dead-letters")).body.deadLetters.length === 10, "ten filed");
      const db = await worker.mf.getD1Database("DELIVERY_STATE");
      await db.prepare("INSERT INTO dead_letters (id, filed, at, destination, events, reason, sealed, envelope) VALUES ('damaged', ?, 0, 'warehouse', 1, 'refused', 0, '{not json')").bind(Date.now() - 1000).run();
      const replay = await worker.mf.dispatchFetch("http://edge.test/dead-letters/replay", { method: "POST", headers: { Authorization: `Bearer ${OPERATOR_KEY}` }, body: JSON.stringify({ force: true }) }).then((r) => r.json());
      assert.equal(replay.replayed.length, 5);
      assert.deepEqual(replay.skipped.map((s) => s.reason).sort(), ["restricted_now", "restricted_now", "unknown_destination", "unknown_destination", "unknown_destination"]);
      assert.deepEqual(replay.unreadable, ["damaged"]);
      assert.equal(replay.more, false);
      const again = ["not_sealed", "undecryptable", "undecryptable", "undecryptable", "unreadable_message"];
      await until(() => logsOf(worker, "dead letter").length === 15, "the five replayed dead letters again");
      assert.deepEqual(logsOf(worker, "dead letter").slice(10).map((l) => l.reason.code).sort(), again);
      await sentinel(worker, both, track("sentinel-hostile-2", { event: "Sentinel" }));
      assert.deepEqual(bodies(), [["Sentinel"], ["Sentinel"], ["Sentinel"], ["Sentinel"]], "nothing sent but the sentinels");
    } finally {
      await worker.mf.dispose();
    }
  });

  test("QUEUE_ENCRYPTION_KEY: a bad one accepts nothing (503, never quoted); without one, BAA bodies are sent at once and never queued", async () => {
    const sentBefore = dest.warehouse.requests.length + dest.analytics.requests.length;
    for (const bad of ["short", "z".repeat(64), Buffer.alloc(16).toString("base64")]) {
      const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, QUEUE_ENCRYPTION_KEY: bad }, { spy: true });
      try {
        const res = await send(worker, [track(1)]);
        assert.equal(res.status, 503);
        assert.equal(res.body.code, "invalid_queue_key");
        assert.match(res.body.error, /QUEUE_ENCRYPTION_KEY must be 32 bytes/);
        assert.ok(!JSON.stringify(res.body).includes(bad) && !worker.logs.join("\n").includes(bad));
        assert.deepEqual(await queueSentinel(worker), [{ sentinel: true }], "nothing queued but the sentinel");
        assert.equal(dest.warehouse.requests.length + dest.analytics.requests.length, sentBefore, "nothing sent");
      } finally {
        await worker.mf.dispose();
      }
    }
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY }, { spy: true });
    try {
      const health = await (await worker.mf.dispatchFetch("http://edge.test/health")).json();
      assert.deepEqual(health.destinations.map((d) => [d.name, d.delivery]), [["analytics", "queue"], ["warehouse", "direct"]]);
      assert.equal((await send(worker, [track(5)])).status, 200);
      await until(() => dest.warehouse.delivered().some((e) => e.messageId === "msg-5"), "the direct delivery");
      await until(async () => (await worker.queued()).length === 1, "the queued body");
      assert.deepEqual((await worker.queued()).map((m) => m.to), ["analytics"], "the BAA body never queued");
    } finally {
      await worker.mf.dispose();
    }
  });

  test("no queue, or a queue that refuses: 503 with Retry-After, so the client sends again; nothing delivered", async () => {
    const before = dest.analytics.requests.length;
    const warehouseBefore = dest.warehouse.requests.length;
    const none = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY }, { queues: false });
    try {
      const res = await send(none, [track(1)]);
      assert.equal(res.status, 503);
      assert.equal(res.body.code, "no_delivery_queue");
      const health = await (await none.mf.dispatchFetch("http://edge.test/health")).json();
      assert.deepEqual(health.queues, { DELIVERY: false, DEAD_LETTER: false });
    } finally {
      await none.mf.dispose();
    }
    // A queue over its limits refuses sendBatch; this one refuses every call as Queues does then.
    const refusing = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY }, { refusingQueue: true });
    try {
      const res = await refusing.mf.dispatchFetch("http://edge.test/v1/track", { method: "POST", headers: { Authorization: basic(WRITE_KEY) }, body: JSON.stringify(track(1)) });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("retry-after"), "5");
      assert.equal((await res.json()).code, "queue_unavailable");
      assert.ok(logsOf(refusing, "not queued").length === 1);
      // Even a request only the warehouse takes (under a BAA, no queue key:
      // sent at once, never queued) is refused: its ledger counts travel
      // through the queue, and direct deliveries start only once they are
      // queued, so nothing was sent when the 503 came back.
      const direct = await send(refusing, [track("direct-refusing", { integrations: { All: false, warehouse: true } })]);
      assert.equal(direct.status, 503);
      assert.equal(direct.body.code, "queue_unavailable");
      assert.equal(dest.analytics.requests.length, before);
      assert.equal(dest.warehouse.requests.length, warehouseBefore);
    } finally {
      await refusing.mf.dispose();
    }
  });
});
