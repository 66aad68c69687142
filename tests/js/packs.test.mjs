// Packs: consecutive bodies of one destination share a queue message
// (joined by "\n", with `parts` counting each body's events). The
// consumer sends each body on its own; what failed goes to dead letters
// body by body, what is to be retried goes again as one smaller pack, and
// a pack that does not add up is a dead letter, never sent. The bundled
// Worker in workerd (Miniflare) against a GA4-like HTTP server on
// 127.0.0.1 that answers each body by its event's name.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createServer } from "node:http";
import { serialize } from "node:v8";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { deadLetterOf, endpointId, FLOOR_BODY_BYTES, MESSAGE_BYTES, messageBytes, nextBodyLimit, PACK_BODIES, packed } from "../../www/worker/queue.js";
import { bundle, root, startDestination, startWorker, until, wranglerTables } from "./worker-harness.mjs";

const execFileAsync = promisify(execFile);

const KEY = "packs-test-masking-key-0123456789abcdef";
const WRITE_KEY = "wk_packs";
const OPERATOR_KEY = "operator-key-packs-0123456789abcdef012345";
const QUEUE_KEY = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 29 + 3) & 255)).toString("base64");
const GA4_CREDENTIAL = "G-PACKS123:packs-api-secret";
const BASIC = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`;

/**
 * A GA4 Measurement Protocol stand-in: each body's answer by its first
 * event's name: `flaky_…` 503 the first time, `refused_…` 400 while
 * `refusing` is set, `down_…` 503 always, anything else 204; `slow_…`
 * after 150 ms. `state.most`: the most requests it held at once.
 */
async function startGa4() {
  const requests = [];
  const state = { refusing: true, open: 0, most: 0 };
  const server = createServer((req, res) => {
    const chunks = [];
    state.open += 1;
    state.most = Math.max(state.most, state.open);
    res.on("finish", () => (state.open -= 1));
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const text = Buffer.concat(chunks).toString("utf8");
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
      const names = Array.isArray(body?.events) ? body.events.map((e) => e.name) : [];
      const [name = ""] = names;
      const before = requests.filter((r) => r.names[0] === name).length;
      const status = name.startsWith("flaky_") && before === 0 ? 503 : name.startsWith("refused_") && state.refusing ? 400 : name.startsWith("down_") ? 503 : 204;
      requests.push({ names, text, status });
      if (name.startsWith("slow_")) await new Promise((resolve) => setTimeout(resolve, 150));
      res.writeHead(status, { "content-type": "application/json" }).end(status === 400 ? '{"validationMessages":[]}' : "");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/mp/collect`,
    requests,
    state,
    /** How many times each name was answered 2xx. */
    delivered: (name) => requests.filter((r) => r.status < 300 && r.names.includes(name)).length,
    sent: (name) => requests.filter((r) => r.names.includes(name)).length,
    close: () => {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

const logsOf = (worker, kind) => worker.logs.filter((l) => l.includes(`"phimask":"${kind}"`)).map((l) => JSON.parse(l));
const deadLetters = (worker, code) => logsOf(worker, "dead letter").filter((l) => l.reason?.code === code);
// One visitor per event: GA4 makes one body each.
const visitor = (name, extra = {}) => ({ type: "track", event: name, anonymousId: `visitor-${name}`, ...extra });

async function post(worker, batch) {
  const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
    method: "POST",
    headers: { Authorization: BASIC, "Content-Type": "application/json" },
    body: JSON.stringify({ batch }),
  });
  return { status: res.status, body: await res.json() };
}

async function operator(worker, path, method = "GET", body) {
  const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, { method, headers: { Authorization: `Bearer ${OPERATOR_KEY}` }, ...(body && { body: JSON.stringify(body) }) });
  return { status: res.status, body: await res.json() };
}

// A filed letter's envelope: JSON, bytes as {"$bytes": base64}.
const decodeEnvelope = (text) => JSON.parse(text, (_, v) => (v && typeof v.$bytes === "string" ? new Uint8Array(Buffer.from(v.$bytes, "base64")) : v));

/** The GA4 body of each filed dead letter (restricted: not sealed), by reason. */
async function filedBodies(worker, reason) {
  const db = await worker.mf.getD1Database("DELIVERY_STATE");
  const { results } = await db.prepare("SELECT envelope FROM dead_letters WHERE reason = ? ORDER BY id").bind(reason).all();
  return results.map((r) => decodeEnvelope(r.envelope)).map((m) => ({ ...m, text: new TextDecoder().decode(m.body) }));
}

const policy = (destinations) => ({ version: 1, environment: "packs-test", hipaa: true, events: { "*": "allow" }, destinations });

describe("packs: each body on its own, failures one by one", () => {
  let ga;
  let nd;
  let built;
  let worker;

  before(async () => {
    ga = await startGa4();
    nd = await startDestination([200]);
    built = await bundle(policy({
      ga: { connection: "server-side", format: "ga4", endpoint: ga.url },
      nd: { connection: "server-side", format: "ndjson", endpoint: nd.url },
    }));
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY, AUTH_GA: GA4_CREDENTIAL }, { maxRetries: 2 });
  });

  after(async () => {
    await worker?.mf.dispose();
    await ga?.close();
    await nd?.close();
    built?.cleanup();
  });

  test("503 then 2xx for some bodies, 400 for others: each event delivered once, the retry holds only the failed bodies, dead letters only the refused, and replay sends them", async () => {
    const names = [];
    for (let i = 0; i < 4; i++) names.push(`ok_${i}`, `flaky_${i}`, `refused_${i}`);
    assert.equal((await post(worker, names.map((n) => visitor(n)))).status, 200);
    const packs = () => logsOf(worker, "pack consumed").filter((l) => l.destination === "ga");
    await until(() => packs().length === 2, "the pack and its retry", 20_000);
    const [first, retried] = packs();
    assert.deepEqual({ parts: first.parts, delivered: first.delivered, deadLetters: first.deadLetters, again: first.again }, { parts: 12, delivered: 4, deadLetters: 4, again: 4 });
    assert.deepEqual({ parts: retried.parts, delivered: retried.delivered, deadLetters: retried.deadLetters, again: retried.again }, { parts: 4, delivered: 4, deadLetters: 0, again: 0 }, "the retried pack: the four 503s only");
    for (let i = 0; i < 4; i++) {
      assert.equal(ga.sent(`ok_${i}`), 1, "a delivered body is not sent again");
      assert.equal(ga.sent(`flaky_${i}`), 2, "503, then delivered");
      assert.equal(ga.delivered(`flaky_${i}`), 1);
      assert.equal(ga.sent(`refused_${i}`), 1, "a 400 is not retried");
    }
    // Each refused body its own dead letter, holding just that body.
    await until(() => deadLetters(worker, "refused").length === 4, "four dead letters");
    assert.ok(deadLetters(worker, "refused").every((l) => l.events === 1 && l.reason.status === 400));
    await until(async () => (await operator(worker, "/dead-letters?reason=refused")).body.deadLetters.length === 4, "four filed");
    const listed = (await operator(worker, "/dead-letters?reason=refused")).body.deadLetters;
    assert.ok(listed.every((l) => l.events === 1 && l.parts === undefined && l.destination === "ga"));
    const filed = await filedBodies(worker, "refused");
    assert.deepEqual(filed.map((m) => JSON.parse(m.text).events.map((e) => e.name)).flat().sort(), ["refused_0", "refused_1", "refused_2", "refused_3"]);
    assert.ok(filed.every((m) => m.parts === undefined && !m.text.includes("\n")));
    // The destination takes them now: replay sends each once.
    ga.state.refusing = false;
    const replay = await operator(worker, "/dead-letters/replay", "POST", { reason: "refused" });
    assert.equal(replay.status, 200, JSON.stringify(replay.body));
    assert.equal(replay.body.replayed.length, 4);
    await until(() => [0, 1, 2, 3].every((i) => ga.delivered(`refused_${i}`) === 1), "the replayed bodies");
    ga.state.refusing = true;
    for (const n of names) assert.equal(ga.delivered(n), 1, `${n}: delivered once`);
    const logs = worker.logs.join("\n");
    assert.ok(!logs.includes("visitor-"), "logs count, never values");
  });

  test("a pack's dead letter names its own body's events by their request index, after a body of several events", async () => {
    // One visitor's two events make one body; the refused body after it is the request's third event: parts [2, 1].
    const batch = [{ ...visitor("ok_pair_a"), anonymousId: "visitor-pair" }, { ...visitor("ok_pair_b"), anonymousId: "visitor-pair" }, visitor("refused_after_pair")];
    assert.equal((await post(worker, batch)).status, 200);
    const letterOf = async () => (await filedBodies(worker, "refused")).find((m) => m.text.includes("refused_after_pair"));
    await until(async () => (await letterOf()) !== undefined, "the refused body filed");
    const letter = await letterOf();
    assert.deepEqual(letter.events, [2], "the request's third event, the one its body holds");
    assert.deepEqual(JSON.parse(letter.text).events.map((e) => e.name), ["refused_after_pair"]);
    assert.equal(ga.delivered("ok_pair_a"), 1);
    const pack = logsOf(worker, "pack consumed").find((l) => l.events === 3 && l.parts === 2);
    assert.ok(pack, "one pack: two bodies, three events");
  });

  test("GA4's window inside a pack: old events dead-lettered and never sent, the rest of the pack delivered", async () => {
    const old = new Date(Date.now() - 4 * 86_400_000).toISOString();
    const batch = [
      visitor("fresh_a"),
      visitor("old_a", { timestamp: old }),
      // One visitor, one body: an old event and a fresh one.
      { ...visitor("old_b", { timestamp: old }), anonymousId: "visitor-mixed" },
      { ...visitor("fresh_b"), anonymousId: "visitor-mixed" },
      visitor("fresh_c"),
    ];
    const before = logsOf(worker, "pack consumed").length;
    assert.equal((await post(worker, batch)).status, 200);
    await until(() => deadLetters(worker, "outside_ga4_window").length === 2, "two dead letters");
    await until(() => ["fresh_a", "fresh_b", "fresh_c"].every((n) => ga.delivered(n) === 1), "the fresh events");
    await until(() => logsOf(worker, "pack consumed").length > before, "the pack");
    const pack = logsOf(worker, "pack consumed").at(-1);
    assert.deepEqual({ parts: pack.parts, delivered: pack.delivered, deadLetters: pack.deadLetters }, { parts: 4, delivered: 3, deadLetters: 2 });
    assert.equal(ga.sent("old_a"), 0, "an old event is never sent");
    assert.equal(ga.sent("old_b"), 0);
    const mixed = ga.requests.find((r) => r.names.includes("fresh_b"));
    assert.deepEqual(mixed.names, ["fresh_b"], "the mixed body sent without its old event");
    assert.deepEqual(deadLetters(worker, "outside_ga4_window").map((l) => l.events), [1, 1]);
  });

  test("tries carry over into the retried pack: a body failing every time is a dead letter retries_exhausted", async () => {
    const names = ["down_0", "ok_down", "down_1"];
    assert.equal((await post(worker, names.map((n) => visitor(n)))).status, 200);
    // max_retries 2: three attempts in all, the last two in retried packs.
    await until(() => deadLetters(worker, "retries_exhausted").length === 2, "two dead letters", 30_000);
    for (const l of deadLetters(worker, "retries_exhausted")) assert.deepEqual(l.reason, { code: "retries_exhausted", status: 503, attempts: 3 });
    assert.equal(ga.sent("down_0"), 3);
    assert.equal(ga.sent("down_1"), 3);
    assert.equal(ga.sent("ok_down"), 1);
    const packs = logsOf(worker, "pack consumed").filter((l) => l.events === 3 || l.events === 2).slice(-3);
    assert.deepEqual(packs.map((p) => [p.parts, p.delivered, p.again, p.deadLetters]), [[3, 1, 2, 0], [2, 0, 2, 0], [2, 0, 0, 2]]);
    // The retried pack, nothing delivered and both to retry as they were: the message itself retried (attempt 2).
    assert.deepEqual(packs.map((p) => p.attempt), [1, 1, 2]);
  });

  test("a single body left to retry counts the pack's tries; replayed, it starts its retries afresh", async () => {
    assert.equal((await post(worker, [visitor("down_solo"), visitor("ok_solo")])).status, 200);
    const solo = () => deadLetters(worker, "retries_exhausted").filter((l) => l.events === 1 && l.reason.attempts === 3);
    const before = solo().length;
    await until(() => solo().length === before + 1 && ga.sent("down_solo") === 3, "its dead letter", 30_000);
    assert.equal(ga.sent("ok_solo"), 1);
    await until(async () => (await operator(worker, "/dead-letters?reason=retries_exhausted")).body.deadLetters.length === 3, "filed");
    const [letter] = (await filedBodies(worker, "retries_exhausted")).filter((m) => m.text.includes("down_solo"));
    assert.equal(letter.tries, 1, "the letter is the message: one body, the pack's attempt counted");
    assert.equal(letter.parts, undefined);
    const ids = (await operator(worker, "/dead-letters?reason=retries_exhausted")).body.deadLetters.map((l) => l.id);
    const replay = await operator(worker, "/dead-letters/replay", "POST", { ids });
    assert.equal(replay.body.replayed.length, 3);
    // Still down: each replayed body is tried three times again, not once.
    await until(() => ga.sent("down_solo") === 6 && ga.sent("down_0") === 6 && ga.sent("down_1") === 6, "three more attempts each", 30_000);
    await until(() => deadLetters(worker, "retries_exhausted").length === 6, "dead letters again", 30_000);
  });

  test("a pack's bodies go six at a time", async () => {
    const names = Array.from({ length: 30 }, (_, i) => `slow_${i}`);
    ga.state.most = 0;
    assert.equal((await post(worker, names.map((n) => visitor(n)))).status, 200);
    await until(() => names.every((n) => ga.delivered(n) === 1), "the slow bodies", 30_000);
    assert.equal(ga.state.most, 6, "never more than six at once, and six when there are more to send");
  });

  test("a hostile pack (parts that do not add up, the wrong piece count, not an array, negative, huge): unreadable_message, nothing sent", async () => {
    const health = await (await worker.mf.dispatchFetch("http://edge.test/health")).json();
    const envelope = { to: "ga", policy: health.policy.sha256, format: "ga4", endpoint: await endpointId(ga.url) };
    const body = (...names) => new TextEncoder().encode(names.map((n) => JSON.stringify({ client_id: "c", events: [{ name: n, params: {} }] })).join("\n"));
    const many = Array.from({ length: 51 }, (_, i) => `hostile_many_${i}`);
    const hostile = [
      { events: [0, 1], parts: [1, 2], body: body("hostile_sum_a", "hostile_sum_b") },
      { events: [0, 1], parts: [2], body: body("hostile_count_a", "hostile_count_b") },
      { events: [0, 1, 2], parts: [1, 2], body: body("hostile_three_a", "hostile_three_b", "hostile_three_c") },
      { events: [0, 1], parts: [1, 1], body: body("hostile_one_piece") },
      { events: [0, 1], parts: "1,1", body: body("hostile_text_a", "hostile_text_b") },
      { events: [0, 1], parts: { 0: 1, 1: 1, length: 2 }, body: body("hostile_object_a", "hostile_object_b") },
      { events: [0, 1], parts: [-1, 3], body: body("hostile_negative_a", "hostile_negative_b") },
      { events: [0, 1], parts: [0, 2], body: body("hostile_zero_a", "hostile_zero_b") },
      { events: [0, 1], parts: [1.5, 0.5], body: body("hostile_half_a", "hostile_half_b") },
      { events: [0, 1], parts: [2 ** 53, 1 - 2 ** 53], body: body("hostile_huge_a", "hostile_huge_b") },
      { events: [0, 1], parts: [1e308, -1e308], body: body("hostile_inf_a", "hostile_inf_b") },
      { events: many.map((_, i) => i), parts: many.map(() => 1), body: body(...many) },
      { events: "01", parts: [1, 1], body: body("hostile_events_a", "hostile_events_b") },
      { events: [0, 1], parts: [1, 1], body: new TextEncoder().encode(`${JSON.stringify({ client_id: "c", events: [{ name: "hostile_empty", params: {} }] })}\n\n`) },
      { events: [0, 1], parts: [1, 1], body: new TextEncoder().encode(`\n${JSON.stringify({ client_id: "c", events: [{ name: "hostile_lead", params: {} }] })}`) },
    ];
    const queue = await worker.mf.getQueueProducer("DELIVERY", "phimask");
    const before = deadLetters(worker, "unreadable_message").length;
    const sentBefore = ga.requests.length;
    await queue.sendBatch(hostile.map((m) => ({ body: { ...envelope, ...m }, contentType: "v8" })));
    await until(() => deadLetters(worker, "unreadable_message").length - before === hostile.length, "a dead letter each");
    // A sentinel after them: once it is delivered, anything of theirs would have been.
    assert.equal((await post(worker, [visitor("sentinel_hostile")])).status, 200);
    await until(() => ga.delivered("sentinel_hostile") === 1, "the sentinel");
    assert.deepEqual(ga.requests.slice(sentBefore).map((r) => r.names), [["sentinel_hostile"]], "nothing of a hostile pack was sent");
    // Filed whole, parts and all; the listing counts its bodies.
    await until(async () => (await operator(worker, "/dead-letters?reason=unreadable_message")).body.deadLetters.length === hostile.length, "filed");
    const listed = (await operator(worker, "/dead-letters?reason=unreadable_message")).body.deadLetters;
    assert.ok(listed.some((l) => l.parts === 51));
    // The operator's command says so too: 51 events in 51 bodies.
    const { stdout } = await execFileAsync(process.execPath, [`${root}scripts/dead-letters.mjs`, "list", "--reason", "unreadable_message", worker.url], { env: { ...process.env, PHIMASK_OPERATOR_KEY: OPERATOR_KEY } });
    assert.match(stdout, /  51 events in 51 bodies  unreadable_message/);
  });

  test("a body holding a raw newline (ndjson) is never packed; GA4's bodies of the same request are", async () => {
    const batch = Array.from({ length: 3_000 }, (_, i) => visitor(`nd_${i}`));
    const before = nd.requests.length;
    const gaBefore = logsOf(worker, "pack consumed").filter((l) => l.destination === "ga").length;
    const res = await post(worker, batch);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const ndLines = () => nd.requests.slice(before).flatMap((r) => r.body.split("\n").filter(Boolean)).length;
    await until(() => ndLines() >= 3_000, "the ndjson bodies", 60_000);
    await until(() => logsOf(worker, "pack consumed").filter((l) => l.destination === "ga").length - gaBefore === 60, "GA4: 60 packs of 50", 120_000);
    const bodies = nd.requests.slice(before);
    assert.ok(bodies.length >= 2, `${bodies.length} ndjson bodies`);
    assert.ok(bodies.every((r) => r.body.includes("\n")), "each ndjson body holds newlines");
    assert.equal(logsOf(worker, "pack consumed").filter((l) => l.destination === "nd").length, 0, "no ndjson body was packed");
    assert.equal(ndLines(), 3_000, "every event once");
    // The packing rule itself: a body with a newline goes alone and ends the pack before it.
    const groups = packed(['{"a":1}', '{"b":2}', '{"c":\n3}', '{"d":4}', '{"e":5}'], [[0], [1], [2], [3], [4]], 1_000);
    assert.deepEqual(groups.map((g) => g.events), [[[0], [1]], [[2]], [[3], [4]]]);
  });
});

describe("sealed packs", () => {
  let ga;
  let built;

  before(async () => {
    ga = await startGa4();
    built = await bundle(policy({ ga: { connection: "server-side", format: "ga4", baa: true, restrict_phi: false, endpoint: ga.url } }));
  });

  after(async () => {
    await ga?.close();
    built?.cleanup();
  });

  const bindings = { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY, AUTH_GA: GA4_CREDENTIAL, QUEUE_ENCRYPTION_KEY: QUEUE_KEY };
  const names = ["sealed_ok_0", "flaky_sealed_0", "refused_sealed_0", "sealed_ok_1", "flaky_sealed_1"];

  test("queued as one sealed message: one iv, parts in clear, no event name in its bytes", async () => {
    const worker = await startWorker(built.script, bindings, { spy: true });
    try {
      assert.equal((await post(worker, names.map((n) => visitor(n)))).status, 200);
      await until(async () => (await worker.queued()).length === 1, "the pack");
      const [m] = await worker.queued();
      assert.deepEqual(m.parts, [1, 1, 1, 1, 1]);
      assert.deepEqual(m.events, [0, 1, 2, 3, 4]);
      assert.ok(m.iv?.base64 && m.kid);
      const bytes = Buffer.from(m.body.base64, "base64").toString("latin1");
      for (const n of names) assert.ok(!bytes.includes(n), "sealed: no clear value");
    } finally {
      await worker.mf.dispose();
    }
  });

  test("delivered from a sealed pack; the retried pack and the dead letters are sealed again, and replay opens them", async () => {
    const worker = await startWorker(built.script, bindings, { maxRetries: 2 });
    try {
      assert.equal((await post(worker, names.map((n) => visitor(n)))).status, 200);
      await until(() => names.filter((n) => !n.startsWith("refused")).every((n) => ga.delivered(n) === 1), "delivered", 20_000);
      await until(async () => (await operator(worker, "/dead-letters?reason=refused")).body.deadLetters.length === 1, "the refused body filed");
      const [letter] = (await operator(worker, "/dead-letters?reason=refused")).body.deadLetters;
      assert.equal(letter.sealed, true);
      assert.equal(letter.events, 1);
      const [filed] = await filedBodies(worker, "refused");
      assert.ok(filed.iv && !filed.text.includes("refused_sealed_0"), "the letter is sealed");
      const packs = logsOf(worker, "pack consumed");
      assert.deepEqual(packs.map((p) => [p.parts, p.delivered, p.deadLetters, p.again]), [[5, 2, 1, 2], [2, 2, 0, 0]]);
      ga.state.refusing = false;
      assert.equal((await operator(worker, "/dead-letters/replay", "POST", { reason: "refused" })).body.replayed.length, 1);
      await until(() => ga.delivered("refused_sealed_0") === 1, "the replayed body");
      ga.state.refusing = true;
      for (const n of names) assert.equal(ga.delivered(n), 1, n);
    } finally {
      await worker.mf.dispose();
    }
  });
});

test("wrangler.toml: each delivery consumer's batch of packs stays under a Worker's 1,000 subrequests", () => {
  const consumers = wranglerTables().filter((t) => t.name.endsWith("queues.consumers") && t.values.queue.startsWith("phimask-delivery-"));
  assert.equal(consumers.length, 3, "the top level, development and production");
  for (const c of consumers) assert.ok(c.values.max_batch_size * PACK_BODIES <= 500, `${c.values.queue}: ${c.values.max_batch_size} x ${PACK_BODIES}`);
});

test("a pack's size bound covers its V8 serialization, parts and tries included, and the last-resort body limit fits any pack", () => {
  // The most events a body of FLOOR_BODY_BYTES can hold (3 bytes each), in 50 parts, with large indexes.
  const pack = (bodyBytes, firstIndex) => {
    const events = Array.from({ length: Math.floor(bodyBytes / 3) }, (_, i) => firstIndex + i);
    const parts = Array.from({ length: PACK_BODIES }, (_, i) => (i < PACK_BODIES - 1 ? 1 : events.length - (PACK_BODIES - 1)));
    return {
      to: "d".repeat(64), events, parts, tries: 2 ** 30, body: new Uint8Array(bodyBytes), iv: new Uint8Array(12), kid: "0".repeat(8),
      policy: "0".repeat(64), format: "ga4", endpoint: "0".repeat(64), req: crypto.randomUUID(), forced: "0".repeat(64),
    };
  };
  for (const m of [pack(FLOOR_BODY_BYTES, 0), pack(FLOOR_BODY_BYTES, 200_000), pack(1000, 0)]) {
    const letter = deadLetterOf(m, { code: "retries_exhausted", status: "network error", attempts: 2 ** 30 });
    assert.deepEqual(letter.parts, m.parts);
    assert.equal(letter.tries, m.tries);
    for (const x of [m, letter]) {
      assert.ok(serialize(x).byteLength <= messageBytes(x), `${serialize(x).byteLength} <= ${messageBytes(x)}`);
      assert.ok(messageBytes(x) <= MESSAGE_BYTES);
      // What parts and tries add is counted by itself, not left to the envelope's spare room.
      const { parts: _p, tries: _t, ...single } = x;
      assert.ok(messageBytes(x) - messageBytes(single) >= serialize(x).byteLength - serialize(single).byteLength);
    }
  }
  // Over the limit, a smaller body limit is asked for.
  assert.ok(nextBodyLimit([pack(120_000, 0)], 120_000) < 120_000);
});

test("a request's direct deliveries (a BAA destination without QUEUE_ENCRYPTION_KEY) go six at a time, every one sent", async () => {
  const ga = await startGa4();
  const built = await bundle(policy({ ga: { connection: "server-side", format: "ga4", baa: true, restrict_phi: false, endpoint: ga.url } }));
  const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, AUTH_GA: GA4_CREDENTIAL });
  try {
    const names = Array.from({ length: 30 }, (_, i) => `slow_direct_${i}`);
    // "Jane Doe" in a property: a BAA destination gets the event unchanged, never queued unsealed.
    assert.equal((await post(worker, names.map((n) => visitor(n, { properties: { patient: "Jane Doe HIV positive" } })))).status, 200);
    await until(() => names.every((n) => ga.delivered(n) === 1), "the slow direct bodies", 30_000);
    assert.equal(logsOf(worker, "request")[0].direct, 30);
    assert.equal(ga.state.most, 6, "never more than six at once, and six when there are more to send");
  } finally {
    await worker.mf.dispose();
    await ga.close();
    built.cleanup();
  }
});
