// Dead letters in D1 (DELIVERY_STATE) inside workerd: filed by the
// dead-letter queue's consumer, listed page by page, replayed by id or
// reason under the current policy, claimed so that concurrent replays
// never send a letter twice, and removed only once queued again. Real
// HTTP destinations on 127.0.0.1 count what arrives.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync } from "node:fs";
import { after, before, beforeEach, describe, test } from "node:test";
import { promisify } from "node:util";
import { bundle, root, startDestination, startWorker, until } from "./worker-harness.mjs";

const KEY = "replay-test-masking-key-0123456789abcdef";
const WRITE_KEY = "wk_replay";
const OPERATOR_KEY = "replay-operator-key-0123456789abcdef-ffff";
const OTHER_POLICY = "0".repeat(64);
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;
const masked = (id) => createHmac("sha256", KEY).update(id).digest("hex");
const run = promisify(execFile);

const policy = (destinations) => ({
  version: 1, environment: "test", hipaa: true,
  allowlists: { event_properties: { plan: "allow" } },
  destinations: Object.fromEntries(Object.entries(destinations).map(([name, d]) => [name, { connection: "server-side", ...d }])),
});

async function track(worker, id) {
  const res = await worker.mf.dispatchFetch("http://edge.test/v1/track", {
    method: "POST",
    headers: { Authorization: basic(WRITE_KEY), "Content-Type": "application/json" },
    body: JSON.stringify({ event: "Visit", userId: `patient-${id}`, messageId: id, properties: { plan: "gold", email: `jane-${id}@example.com` } }),
  });
  assert.equal(res.status, 200, `track ${id}`);
}

async function operator(worker, path, { method = "GET", key = OPERATOR_KEY, body, headers = {} } = {}) {
  const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, {
    method,
    headers: { ...(key && { Authorization: `Bearer ${key}` }), ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, body: json, text };
}

const replay = (worker, body = {}) => operator(worker, "/dead-letters/replay", { method: "POST", body });

/** Every page of GET /dead-letters, by `limit`. */
async function listAll(worker, limit, query = "") {
  const pages = [];
  let cursor;
  let before;
  do {
    assert.ok(pages.length < 100, "the pages end");
    const q = new URLSearchParams(query);
    q.set("limit", String(limit));
    if (cursor) q.set("cursor", cursor);
    if (before) q.set("before", String(before));
    const res = await operator(worker, `/dead-letters?${q}`);
    assert.equal(res.status, 200, res.text);
    pages.push(res.body.deadLetters);
    cursor = res.body.cursor;
    before ??= res.body.before;
  } while (cursor);
  return pages;
}

// A row as the consumer files it (for letters made directly in the store).
const INSERT = `INSERT INTO dead_letters (id, filed, at, destination, events, reason, status, attempts, answer, policy, sealed, envelope)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** Events of the requests a destination received, by masked messageId (answered 200 or not). */
const received = (dest) => dest.requests.flatMap((r) => JSON.parse(r.body).batch.map((e) => e.messageId));
/** Those of the requests it took (200). */
const delivered = (dest) => dest.requests.filter((r) => r.status === 200).flatMap((r) => JSON.parse(r.body).batch.map((e) => e.messageId));
const countOf = (list, id) => list.filter((x) => x === id).length;

const script = (args) => run(process.execPath, [`${root}scripts/dead-letters.mjs`, ...args], { env: { ...process.env, PHIMASK_OPERATOR_KEY: OPERATOR_KEY } })
  .then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }), (e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }));

describe("dead letters in D1: replay", () => {
  const dest = {};
  let built;
  let worker;
  let db;
  let hash;
  let round = 0;

  before(async () => {
    dest.clinic = await startDestination([400]);
    dest.other = await startDestination([400]);
    built = await bundle(policy({ clinic: { endpoint: dest.clinic.url }, other: { endpoint: dest.other.url } }));
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY });
    db = await worker.mf.getD1Database("DELIVERY_STATE");
    hash = (await (await worker.mf.dispatchFetch("http://edge.test/health")).json()).policy.sha256;
  });

  after(async () => {
    await worker?.mf.dispose();
    await Promise.all(Object.values(dest).map((d) => d.close()));
    built?.cleanup();
  });

  beforeEach(async () => {
    round += 1;
    await db.prepare("DELETE FROM dead_letters").run();
    dest.clinic.answer([400]);
    dest.other.answer([200]);
  });

  const count = async (where = "1 = 1", ...values) => (await db.prepare(`SELECT count(*) AS n FROM dead_letters WHERE ${where}`).bind(...values).first()).n;

  /**
   * `n` dead letters made the real way: events `to` refuses (400) and
   * the other destination takes, one request (one message) each;
   * resolves to their messageIds.
   */
  async function letters(n, to = "clinic", prefix = `r${round}-${to}`) {
    const ids = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    dest[to].answer([400]);
    dest[to === "clinic" ? "other" : "clinic"].answer([200]);
    const before = await count("destination = ?", to);
    for (let i = 0; i < ids.length; i += 10) await Promise.all(ids.slice(i, i + 10).map((id) => track(worker, id)));
    await until(async () => (await count("destination = ?", to)) === before + n, `${n} dead letters for ${to}`, 30_000);
    return ids;
  }

  /** Letters filed before messages carried their policy hash count as made under it, for the tests that need that. */
  const madeUnderCurrent = () => db.prepare("UPDATE dead_letters SET policy = ? WHERE policy IS NULL").bind(hash).run();

  /** Sends a sentinel to `dest` (through the queue, after everything queued so far) and waits for it. */
  async function sentinel(d, to) {
    const id = `sentinel-${round}-${to}-${Date.now()}`;
    await track(worker, id);
    await until(() => delivered(d).includes(masked(id)), `the sentinel at ${to}`);
  }

  test("four simultaneous replays deliver every letter exactly once; each is removed once queued", async () => {
    const ids = await letters(40);
    await madeUnderCurrent();
    dest.clinic.answer([200]);
    // Four runs at once, each paging through the store five letters a call.
    const runs = await Promise.all([1, 2, 3, 4].map(async () => {
      const pages = [];
      let cursor;
      let before;
      do {
        const res = await replay(worker, { limit: 5, ...(cursor && { cursor, before }) });
        assert.equal(res.status, 200, res.text);
        pages.push(res);
        ({ cursor, before } = res.body);
      } while (cursor && pages.length < 50);
      return pages;
    }));
    const answers = runs.flat();
    const replayed = answers.flatMap((a) => a.body.replayed);
    // Each letter queued by exactly one of them; the others saw it claimed.
    assert.equal(replayed.length, 40);
    assert.equal(new Set(replayed).size, 40);
    for (const a of answers) for (const s of a.body.skipped) assert.equal(s.reason, "claimed");
    await until(() => ids.every((id) => delivered(dest.clinic).includes(masked(id))), "every replayed letter");
    await sentinel(dest.clinic, "clinic");
    const got = received(dest.clinic);
    // Once refused (the dead letter), once replayed: never a third time.
    for (const id of ids) assert.equal(countOf(got, masked(id)), 2, id);
    assert.equal(await count(), 0);
  });

  test("GET /dead-letters pages through 250 letters with a cursor, each once; the script lists them all", async () => {
    const now = Date.now();
    // Several share a filing time: the cursor orders by (time, id).
    for (let i = 0; i < 250; i += 50) {
      await db.batch(Array.from({ length: 50 }, (_, j) => db.prepare(INSERT).bind(`page-${String(i + j).padStart(3, "0")}`, now - 10_000 + Math.floor((i + j) / 7), now - 20_000, "clinic", 1, "refused", 400, null, "{}", hash, 0, '{"to":"clinic","events":[0],"body":{"$bytes":"e30="}}')));
    }
    const pages = await listAll(worker, 100);
    assert.deepEqual(pages.map((p) => p.length), [100, 100, 50]);
    const ids = pages.flat().map((d) => d.id);
    assert.equal(ids.length, 250);
    assert.equal(new Set(ids).size, 250);
    const first = pages[0][0];
    assert.deepEqual(first.reason, { code: "refused", status: 400, answer: {} });
    assert.equal(first.currentPolicy, true);
    assert.equal(first.sealed, false);
    assert.ok(!("envelope" in first) && !("body" in first), "no body listed");
    // Filtered pages: the same paging over what matches.
    assert.equal((await listAll(worker, 30, "destination=clinic&reason=refused")).flat().length, 250);
    assert.equal((await listAll(worker, 30, "destination=other")).flat().length, 0);
    const { code, stdout } = await script(["list", "--limit", "60", worker.url]);
    assert.equal(code, 0);
    assert.match(stdout, /^250 dead letters$/m);
    const lines = stdout.split("\n").filter((l) => /  page-\d{3}$/.test(l));
    assert.equal(new Set(lines.map((l) => l.slice(-8))).size, 250);
    assert.equal(lines.length, 250);
  });

  test("100 unreadable rows do not block the rest: listed as unreadable, kept, and the letters after them replayed", async () => {
    const now = Date.now();
    // Filed before the good letters, so every first page is theirs.
    await db.batch(Array.from({ length: 100 }, (_, i) => db.prepare(INSERT).bind(`corrupt-${String(i).padStart(3, "0")}`, now - 60_000 + i, now - 60_000, "clinic", 1, "refused", 400, null, i % 2 ? "{not json" : "[", hash, 0, i % 2 ? "{not json" : '{"to":"other","events":[0],"body":{"$bytes":"e30="}}')));
    const ids = await letters(5);
    await madeUnderCurrent();
    const listedPages = await listAll(worker, 40);
    const all = listedPages.flat();
    assert.equal(all.length, 105);
    assert.equal(all.filter((d) => d.unreadable).length, 100);
    assert.equal(all.filter((d) => !d.unreadable && d.destination === "clinic").length, 5);
    dest.clinic.answer([200]);
    const { code, stdout } = await script(["replay", worker.url]);
    assert.equal(code, 3, "done, some left in the store");
    assert.match(stdout, /^replayed 5 dead letters/m);
    assert.equal(stdout.split("\n").filter((l) => l.startsWith("unreadable  corrupt-")).length, 100);
    await until(() => ids.every((id) => delivered(dest.clinic).includes(masked(id))), "the five letters after the unreadable ones");
    assert.equal(await count("id LIKE 'corrupt-%' AND claim IS NULL"), 100, "kept, unclaimed");
    assert.equal(await count(), 100);
  });

  test("replay selects by id, by reason and by destination; nothing else is sent", async () => {
    const clinic = await letters(6);
    const other = await letters(3, "other");
    await madeUnderCurrent();
    const { results } = await db.prepare("SELECT id, destination FROM dead_letters ORDER BY filed, id").all();
    const clinicRows = results.filter((r) => r.destination === "clinic").map((r) => r.id);
    // Two of the clinic's letters ran out of retries instead.
    await db.prepare("UPDATE dead_letters SET reason = 'retries_exhausted' WHERE id IN (?, ?)").bind(clinicRows[4], clinicRows[5]).run();
    dest.clinic.answer([200]);
    dest.other.answer([200]);

    const byId = await replay(worker, { ids: [clinicRows[0], clinicRows[1], "no-such-letter"] });
    assert.equal(byId.status, 200, byId.text);
    assert.deepEqual(byId.body.replayed.sort(), [clinicRows[0], clinicRows[1]].sort());
    const byReason = await replay(worker, { reason: "retries_exhausted" });
    assert.deepEqual(byReason.body.replayed.sort(), [clinicRows[4], clinicRows[5]].sort());
    const byDestination = await replay(worker, { reason: "refused", destination: "other" });
    assert.equal(byDestination.body.replayed.length, 3);
    await sentinel(dest.clinic, "clinic");
    await sentinel(dest.other, "other");
    const got = received(dest.clinic);
    const sentOnce = (id) => countOf(got, masked(id));
    // Letters are filed in no set order: count by the ids the rows held.
    assert.equal(clinic.filter((id) => sentOnce(id) === 2).length, 4, "four replayed");
    assert.equal(clinic.filter((id) => sentOnce(id) === 1).length, 2, "two left");
    for (const id of other) assert.equal(countOf(received(dest.other), masked(id)), 2);
    assert.deepEqual((await db.prepare("SELECT id FROM dead_letters ORDER BY id").all()).results.map((r) => r.id), [clinicRows[2], clinicRows[3]].sort());
  });

  test("a letter made under another policy is skipped unless forced; one for a destination gone, or sealed for one now restricted, never goes", async () => {
    const ids = await letters(6);
    await madeUnderCurrent();
    const { results } = await db.prepare("SELECT id FROM dead_letters ORDER BY id").all();
    const old = results.slice(0, 3).map((r) => r.id);
    // Made under another policy: the row and the message it holds both say so.
    await db.prepare("UPDATE dead_letters SET policy = ?, envelope = json_set(envelope, '$.policy', ?) WHERE id IN (SELECT value FROM json_each(?))").bind(OTHER_POLICY, OTHER_POLICY, JSON.stringify(old)).run();
    // Filed through the dead-letter queue: a destination the policy no longer has, a sealed (PHI) body for one it restricts.
    const deadLetterQueue = await worker.mf.getQueueProducer("DEAD_LETTER", "phimask");
    const body = new TextEncoder().encode('{"batch":[{"messageId":"never"}]}');
    await deadLetterQueue.sendBatch([
      { body: { to: "gone", events: [0], body, policy: hash, reason: { code: "unknown_destination" }, at: Date.now() }, contentType: "v8" },
      { body: { to: "clinic", events: [0], body, iv: new Uint8Array(12), policy: hash, reason: { code: "restricted_now" }, at: Date.now() }, contentType: "v8" },
    ]);
    await until(async () => (await count()) === 8, "the two filed");
    dest.clinic.answer([200]);

    const plain = await replay(worker);
    assert.equal(plain.status, 200, plain.text);
    assert.equal(plain.body.replayed.length, 3);
    assert.ok(plain.body.replayed.every((id) => !old.includes(id)));
    const why = Object.fromEntries(plain.body.skipped.map((s) => [s.id, s.reason]));
    const idOf = async (where) => (await db.prepare(`SELECT id FROM dead_letters WHERE ${where}`).first()).id;
    for (const id of old) assert.equal(why[id], "policy_changed");
    assert.equal(why[await idOf("destination = 'gone'")], "unknown_destination");
    assert.equal(why[await idOf("sealed = 1")], "restricted_now");
    assert.equal(plain.body.skipped.length, 5);
    assert.equal(await count("claim IS NULL"), 5, "skipped letters stay, unclaimed");

    const forced = await replay(worker, { force: true });
    assert.equal(forced.status, 200, forced.text);
    assert.deepEqual(forced.body.replayed.sort(), [...old].sort());
    assert.deepEqual(forced.body.skipped.map((s) => s.reason).sort(), ["restricted_now", "unknown_destination"]);
    await sentinel(dest.clinic, "clinic");
    for (const id of ids) assert.equal(countOf(received(dest.clinic), masked(id)), 2, id);
    assert.ok(!received(dest.clinic).includes("never") && !received(dest.clinic).includes(masked("never")), "neither of the two was sent");
    assert.equal(await count(), 2);
  });

  test("a letter another replay holds is left to it; a claim older than five minutes is abandoned and taken over", async () => {
    const ids = await letters(2);
    await madeUnderCurrent();
    const { results } = await db.prepare("SELECT id FROM dead_letters ORDER BY id").all();
    const [held, abandoned] = results.map((r) => r.id);
    await db.prepare("UPDATE dead_letters SET claim = 'another-replay', claimed = ? WHERE id = ?").bind(Date.now() - 60_000, held).run();
    await db.prepare("UPDATE dead_letters SET claim = 'a-replay-that-died', claimed = ? WHERE id = ?").bind(Date.now() - 6 * 60_000, abandoned).run();
    const listed = Object.fromEntries((await listAll(worker, 10)).flat().map((d) => [d.id, d.claimed === true]));
    assert.deepEqual(listed, { [held]: true, [abandoned]: false });
    dest.clinic.answer([200]);
    const res = await replay(worker);
    assert.deepEqual(res.body.replayed, [abandoned]);
    assert.deepEqual(res.body.skipped, [{ id: held, destination: "clinic", reason: "claimed" }]);
    await sentinel(dest.clinic, "clinic");
    assert.deepEqual(ids.map((id) => countOf(received(dest.clinic), masked(id))).sort(), [1, 2]);
    assert.deepEqual((await db.prepare("SELECT id, claim FROM dead_letters").all()).results, [{ id: held, claim: "another-replay" }], "the other replay's letter untouched");
  });

  test("the replay script pages through every match and never re-sends a letter filed again during its own run", async () => {
    const ids = await letters(30);
    // Still refused: each replayed letter comes back as a new dead letter while the script runs.
    const { code, stdout, stderr } = await script(["replay", "--force", "--limit", "2", worker.url]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^replayed 30 dead letters/m);
    await until(async () => (await count()) === 30, "the thirty filed again");
    dest.clinic.answer([200]);
    await sentinel(dest.clinic, "clinic");
    for (const id of ids) assert.equal(countOf(received(dest.clinic), masked(id)), 2, id);
    // Made under another policy: without --force they stay, each named (exit 3).
    await db.prepare("UPDATE dead_letters SET policy = ?").bind(OTHER_POLICY).run();
    const left = await script(["replay", "--reason", "refused", "--limit", "7", worker.url]);
    assert.equal(left.code, 3);
    assert.match(left.stdout, /^replayed 0 dead letters/m);
    assert.equal(left.stdout.split("\n").filter((l) => / clinic: policy_changed$/.test(l)).length, 30);
    assert.equal(await count("claim IS NULL"), 30);
  });

  test("operator routes match exactly and send no CORS headers", async () => {
    for (const path of ["/dead-lettersX", "/dead-letters/", "/dead-letters/replayX", "/dead-letters/replay/", "/dead-letters/replay/x", "/dead-letters%2Freplay", "/DEAD-LETTERS"]) {
      for (const method of ["GET", "POST"]) {
        const res = await operator(worker, path, { method, body: method === "POST" ? {} : undefined });
        assert.equal(res.status, 404, `${method} ${path}`);
        assert.equal(res.body.code, "not_found");
      }
    }
    const answers = [
      await operator(worker, "/dead-letters"),
      await operator(worker, "/dead-letters", { key: null }),
      await operator(worker, "/dead-letters", { key: "wrong" }),
      await operator(worker, "/dead-letters", { method: "OPTIONS", headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" } }),
      await operator(worker, "/dead-letters/replay", { method: "OPTIONS", headers: { Origin: "https://evil.example" } }),
      await operator(worker, "/dead-letters/replay", { method: "GET" }),
      await replay(worker, { ids: [] }),
      await replay(worker),
    ];
    assert.deepEqual(answers.map((a) => a.status), [200, 401, 401, 405, 405, 405, 400, 200]);
    for (const a of answers) {
      assert.deepEqual([...a.headers.keys()].filter((h) => h.startsWith("access-control-")), [], `no CORS on ${a.status}`);
      assert.equal(a.headers.get("cache-control"), "no-store");
    }
    // The event routes keep theirs.
    const preflight = await worker.mf.dispatchFetch("http://edge.test/v1/track", { method: "OPTIONS" });
    assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
  });

  test("letters are kept 14 days after filing: older ones are removed when letters are filed or listed", async () => {
    const day = 86_400_000;
    const now = Date.now();
    const envelope = '{"to":"clinic","events":[0],"body":{"$bytes":"e30="}}';
    for (const [id, age] of [["old", 14 * day + 60_000], ["young", 14 * day - 60_000]]) {
      await db.prepare(INSERT).bind(id, now - age, now - age, "clinic", 1, "refused", 400, null, null, hash, 0, envelope).run();
    }
    assert.deepEqual((await listAll(worker, 10)).flat().map((d) => d.id), ["young"]);
    assert.equal(await count(), 1);
    await db.prepare(INSERT).bind("old-again", now - 15 * day, now - 15 * day, "clinic", 1, "refused", 400, null, null, hash, 0, envelope).run();
    await track(worker, `r${round}-filed`);
    await until(async () => (await count("id NOT IN ('young', 'old-again')")) === 1, "the new letter filed");
    assert.equal(await count("id LIKE 'old%'"), 0, "removed by the filing");
  });

  test("hostile selections: bad cursors, ids, limits and bodies are refused with a code; SQL-ish strings only match nothing", async () => {
    await letters(3);
    const forged = Buffer.from(JSON.stringify([1, "x' OR 1=1 --"])).toString("base64url");
    for (const cursor of ["!!!", "e30", "W10", Buffer.from('[1,"a","b"]').toString("base64url"), Buffer.from('[-1,"a"]').toString("base64url"), "A".repeat(401), Buffer.from('["1","a"]').toString("base64url")]) {
      const list = await operator(worker, `/dead-letters?cursor=${encodeURIComponent(cursor)}`);
      assert.equal(list.status, 400, cursor);
      assert.equal(list.body.code, "invalid_cursor");
      assert.equal((await replay(worker, { cursor })).body.code, "invalid_cursor");
    }
    // A well-formed cursor is only a position: this one is past nothing.
    assert.equal((await operator(worker, `/dead-letters?cursor=${forged}`)).body.deadLetters.length, 3);
    for (const limit of ["0", "-1", "1.5", "abc", "1001", "1000000000", "99999999999999999999", "1e3"]) {
      const res = await operator(worker, `/dead-letters?limit=${limit}`);
      assert.equal(res.status, 400, limit);
      assert.equal(res.body.code, "invalid_limit");
    }
    for (const limit of [0, 101, 1e9, 1.5, "10", -5]) assert.equal((await replay(worker, { limit })).body.code, "invalid_limit", String(limit));
    for (const ids of ["abc", [], [1, 2], [""], ["x".repeat(201)], Array.from({ length: 101 }, (_, i) => `id${i}`), { 0: "a" }, [null]]) {
      const res = await replay(worker, { ids });
      assert.equal(res.status, 400, JSON.stringify(ids).slice(0, 40));
      assert.equal(res.body.code, "invalid_ids");
    }
    for (const [body, code] of [["{not json", "invalid_body"], ["[]", "invalid_body"], ["null", "invalid_body"], ['"replay"', "invalid_body"], [{ id: ["a"] }, "invalid_body"], [{ force: "true" }, "invalid_force"], [{ reason: 5 }, "invalid_reason"], [{ destination: "" }, "invalid_destination"], [{ before: "yesterday" }, "invalid_before"]]) {
      const res = await replay(worker, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.code, code);
    }
    const huge = await replay(worker, JSON.stringify({ ids: ["a"], pad: "x".repeat(70_000) }));
    assert.equal(huge.status, 413);
    assert.equal(huge.body.code, "body_too_large");
    for (const sqlish of ["refused' OR '1'='1", "refused\"; DELETE FROM dead_letters; --", "%", "refused%", "*"]) {
      const listed = await operator(worker, `/dead-letters?reason=${encodeURIComponent(sqlish)}&destination=${encodeURIComponent(sqlish)}`);
      assert.equal(listed.status, 200);
      assert.deepEqual(listed.body.deadLetters, []);
      const replayed = await replay(worker, { reason: sqlish, destination: sqlish, ids: [sqlish], force: true });
      assert.equal(replayed.status, 200);
      assert.deepEqual(replayed.body.replayed, []);
    }
    assert.equal(await count(), 3, "nothing removed");
    assert.equal(await count("claim IS NULL"), 3, "nothing claimed");
    assert.ok(!JSON.stringify(await listAll(worker, 10)).includes("jane-"), "no value listed");
    // The script: bad usage is exit 2, before anything is sent.
    for (const args of [["purge"], ["replay", "--bogus"], ["list", "--force"], ["replay", "--limit"], ["replay", "--limit", "x"], ["replay", "--id"], ["list", "a", "b"], ["list", "not a url"]]) {
      const { code, stderr } = await script([...args]);
      assert.equal(code, 2, args.join(" "));
      assert.match(stderr, /usage: node scripts\/dead-letters\.mjs/);
    }
    if (!existsSync(`${root}.dev.vars`)) {
      const noKey = await run(process.execPath, [`${root}scripts/dead-letters.mjs`, "list", worker.url], { env: { PATH: process.env.PATH } }).catch((e) => e);
      assert.equal(noKey.code, 2, "no key");
    }
    assert.equal(await count(), 3, "nothing removed");
  });
});

describe("dead letters in D1: keys and a refusing queue", () => {
  let built;

  before(async () => {
    built = await bundle(policy({ clinic: { endpoint: "http://127.0.0.1:9/batch" } }));
  });

  after(() => built?.cleanup());

  test("an OPERATOR_KEY under 32 bytes closes the routes (503, never echoed); 32 bytes counted as UTF-8 open them", async () => {
    // "é" is two bytes: 16 of them are 32 bytes (open), 31 ASCII bytes are not.
    for (const [key, status] of [["k".repeat(31), 503], ["€".repeat(10), 503], ["é".repeat(16), 200], ["k".repeat(32), 200]]) {
      const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY: key });
      try {
        for (const [path, method] of [["/dead-letters", "GET"], ["/dead-letters/replay", "POST"]]) {
          // A header carries only Latin-1: the key itself is sent only when it is ASCII.
          for (const bearer of [...(/^[\x20-\x7e]+$/.test(key) ? [key] : []), null, "wrong"]) {
            const res = await operator(worker, path, { method, key: bearer });
            if (status === 503) {
              assert.equal(res.status, 503);
              assert.equal(res.body.code, "operator_key_too_short");
              assert.match(res.body.error, /at least 32 bytes/);
              assert.ok(!res.text.includes(key), "never echoed");
            } else {
              assert.equal(res.status, bearer === key ? 200 : 401, `${path} ${bearer}`);
            }
          }
        }
        assert.ok(!worker.logs.join("\n").includes(key));
      } finally {
        await worker.mf.dispose();
      }
    }
  });

  test("without the dead_letters table (migrations not applied): nothing filed is acknowledged, the routes answer 503 and say why", async () => {
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY });
    try {
      await (await worker.mf.getD1Database("DELIVERY_STATE")).prepare("DROP TABLE dead_letters").run();
      const deadLetterQueue = await worker.mf.getQueueProducer("DEAD_LETTER", "phimask");
      await deadLetterQueue.send({ to: "clinic", events: [0], body: new TextEncoder().encode("{}"), reason: { code: "refused", status: 400 }, at: Date.now() }, { contentType: "v8" });
      await until(() => worker.logs.some((l) => l.includes('"phimask":"dead letter not filed"')), "the filing refused");
      for (const [path, method] of [["/dead-letters", "GET"], ["/dead-letters/replay", "POST"]]) {
        const res = await operator(worker, path, { method });
        assert.equal(res.status, 503);
        assert.equal(res.body.code, "dead_letter_store_unavailable");
        assert.match(res.body.error, /migrations/);
      }
    } finally {
      await worker.mf.dispose();
    }
  });

  test("a queue that refuses: every letter stays in the store, unclaimed, and the replay says 503", async () => {
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY }, { refusingQueue: true });
    try {
      const db = await worker.mf.getD1Database("DELIVERY_STATE");
      const deadLetterQueue = await worker.mf.getQueueProducer("DEAD_LETTER", "phimask");
      const body = new TextEncoder().encode('{"batch":[]}');
      await deadLetterQueue.sendBatch(Array.from({ length: 12 }, (_, i) => ({ body: { to: "clinic", events: [i], body, reason: { code: "refused", status: 400, answer: {} }, at: Date.now() }, contentType: "v8" })));
      const count = async (where = "1 = 1") => (await db.prepare(`SELECT count(*) AS n FROM dead_letters WHERE ${where}`).first()).n;
      await until(async () => (await count()) === 12, "twelve filed");
      const res = await replay(worker, { force: true });
      assert.equal(res.status, 503);
      assert.equal(res.body.code, "queue_unavailable");
      assert.deepEqual(res.body.replayed, []);
      assert.equal(await count(), 12, "none removed");
      assert.equal(await count("claim IS NULL AND claimed IS NULL"), 12, "none left claimed");
      // And the script says so (exit 1), removing nothing.
      const { code, stderr } = await script(["replay", "--force", worker.url]);
      assert.equal(code, 1);
      assert.match(stderr, /503 queue_unavailable/);
      assert.equal(await count("claim IS NULL"), 12);
    } finally {
      await worker.mf.dispose();
    }
  });
});
