// The evidence ledger and GET /evidence inside workerd (Miniflare, the
// local queues and D1 of wrangler dev): what was received, sent, not
// sent, delivered and dead-lettered, counted per destination and day,
// balancing against what real HTTP destinations on 127.0.0.1 received;
// the report's forms; the operator key; hostile parameters; and no value
// of any event anywhere in it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { bundle, startDestination, startWorker, until } from "./worker-harness.mjs";

const KEY = "evidence-test-masking-key-0123456789abcdef";
const WRITE_KEY = "wk_evidence";
const OPERATOR_KEY = "operator-key-evidence-0123456789abcdef01";
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;
const today = () => new Date().toISOString().slice(0, 10);

async function send(worker, batch, extra = {}) {
  const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
    method: "POST",
    headers: { Authorization: basic(WRITE_KEY), "Content-Type": "application/json", ...extra.headers },
    body: extra.body ?? JSON.stringify({ batch }),
  });
  return { status: res.status, body: await res.json() };
}

async function report(worker, query = `from=${today()}&to=${today()}`, key = OPERATOR_KEY, method = "GET") {
  const res = await worker.mf.dispatchFetch(`http://edge.test/evidence?${query}`, { method, headers: key ? { Authorization: `Bearer ${key}` } : {} });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: res.headers.get("content-type")?.startsWith("application/json") ? JSON.parse(text) : null };
}

// Canaries: values no detector needs to see; none may appear in the ledger.
const CANARY = {
  email: "canary.jane.doe@clinic-example.org",
  ssn: "078-05-1120",
  name: "Zebulon Quickfeather",
  diagnosis: "Gastroparesis Stage Four",
  key: "Zebulon Quickfeather HIV positive",
  event: "Viewed Oncology Second Opinion",
};

const policy = (destinations) => ({
  version: 1,
  environment: "test",
  hipaa: true,
  allowlists: { event_properties: { plan: "allow" } },
  events: { "Appointment Booked": "allow", "Viewed Clinic": { rename: "Viewed Page" }, "Dropped Here": "drop", "*": "allow" },
  destinations: Object.fromEntries(Object.entries(destinations).map(([name, d]) => [name, { connection: "server-side", ...d }])),
});

const track = (id, event, extra = {}) => ({ type: "track", event, userId: `patient-${id}`, messageId: `m-${id}`, properties: { plan: "gold", email: CANARY.email, [CANARY.key]: CANARY.diagnosis, ssn: CANARY.ssn, patient: { name: CANARY.name } }, ...extra });

describe("evidence: the ledger balances against what destinations received", () => {
  const dest = {};
  let worker;
  let built;
  before(async () => {
    dest.ok = await startDestination([200]);
    dest.refuses = await startDestination([400]);
    built = await bundle(policy({ ok: { endpoint: dest.ok.url }, refuses: { endpoint: dest.refuses.url, calls: ["track"] } }));
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY });
  });
  after(async () => {
    await worker?.mf.dispose();
    built?.cleanup();
    for (const d of Object.values(dest)) d.close();
  });

  test("counts received, not sent, delivered and dead-lettered; the report balances", async () => {
    const batch = [
      track(1, "Appointment Booked"),
      track(2, "Viewed Clinic"),
      track(3, CANARY.event),
      track(4, "Dropped Here"),
      { type: "identify", userId: "patient-5", messageId: "m-5", traits: { email: CANARY.email } },
      { type: "track", userId: "patient-6", messageId: "m-6" }, // no event name: refused
    ];
    const sent = await send(worker, batch);
    assert.equal(sent.status, 200);
    assert.equal(sent.body.rejectedCount, 1);
    // ok takes 4 events (1, 2, 3, identify 5); refuses gets 3 tracks (not identify: calls).
    await until(() => dest.ok.delivered().length === 4, "ok to receive its 4 events", 20_000);
    await until(async () => {
      const r = await report(worker);
      return r.status === 200 && r.body.reconciliation.length === 2 && r.body.reconciliation.every((c) => c.in_flight === 0 && c.received > 0);
    }, "the ledger to count every outcome", 20_000);
    const { body } = await report(worker);
    const line = (d) => body.reconciliation.find((c) => c.destination === d);
    // Every event of the request is received once per destination.
    assert.deepEqual({ ...line("ok"), day: undefined }, { day: undefined, destination: "ok", received: 6, delivered: 4, dead_lettered: 0, failed: 0, not_sent: 2, in_flight: 0, queued: 4, direct: 0, replayed: 0, balanced: true });
    assert.deepEqual({ ...line("refuses"), day: undefined }, { day: undefined, destination: "refuses", received: 6, delivered: 0, dead_lettered: 3, failed: 0, not_sent: 3, in_flight: 0, queued: 3, direct: 0, replayed: 0, balanced: true });
    // Delivered counts equal what the destination received.
    assert.equal(line("ok").delivered, dest.ok.delivered().length);
    assert.equal(body.environment, "test");
    assert.equal(body.policies.length, 1);
    assert.equal(body.policies[0].current, true);
    // Names as sent, only where the policy lists them; reasons for the rest.
    const rows = (d, decision) => body.ledger.filter((r) => r.destination === d && r.decision === decision).map((r) => [r.call, r.event, r.reason, r.count]);
    assert.deepEqual(rows("ok", "delivered").sort(), [["identify", null, null, 1], ["track", "Appointment Booked", null, 1], ["track", "Viewed Page", null, 1], ["track", null, null, 1]].sort());
    assert.deepEqual(rows("ok", "not_sent").sort(), [["track", "Dropped Here", "event_name", 1], [null, null, "refused", 1]].sort());
    assert.deepEqual(rows("refuses", "not_sent").sort(), [["identify", null, "call_type", 1], ["track", "Dropped Here", "event_name", 1], [null, null, "refused", 1]].sort());
    assert.deepEqual(body.dead_letters, [{ destination: "refuses", reason: "refused", events: 3 }]);
  });

  test("no value of any event in the ledger, the inventory, the report, the logs or the dead letters", async () => {
    const canaries = [...Object.values(CANARY), "patient-1", "patient-2", "m-1"];
    await until(async () => (await report(worker)).body.dead_letters_open?.length === 1, "the dead letter filed", 20_000);
    const forms = await Promise.all(["json", "markdown", "html"].map(async (f) => (await report(worker, `from=${today()}&to=${today()}&format=${f}`)).text));
    const ledger = await worker.mf.getD1Database("LEDGER");
    const tables = [];
    for (const t of ["ledger", "inventory", "policies", "applied"]) tables.push(JSON.stringify((await ledger.prepare(`SELECT * FROM ${t}`).all()).results));
    const letters = JSON.stringify((await (await worker.mf.getD1Database("DELIVERY_STATE")).prepare("SELECT * FROM dead_letters").all()).results);
    const places = { report: forms.join("\n"), d1: tables.join("\n"), logs: worker.logs.join("\n"), letters };
    for (const [where, text] of Object.entries(places)) {
      for (const c of canaries) assert.ok(!text.includes(c), `${c} in the ${where}`);
    }
    // The inventory names where the unnamed fields are, never what they hold.
    const { body } = await report(worker);
    const paths = body.inventory.map((p) => p.path);
    for (const p of ["properties.email", "properties.ssn", "properties.patient", "properties.[key]", "traits.email"]) assert.ok(paths.includes(p), `${p} in ${JSON.stringify(paths)}`);
    assert.ok(!paths.some((p) => p.startsWith("properties.patient.")), "a missing rule is shown once, where it is missing");
    assert.ok(!paths.includes("properties.plan"), "a path a rule names is not in the inventory");
    assert.equal(body.inventory.find((p) => p.path === "properties.email").count, 4, "counted per event it arrived in");
    assert.ok(body.inventory.every((p) => p.first_seen === today() && p.new === true));
  });
});

describe("evidence: the operator key, parameters and forms of GET /evidence", () => {
  const dest = {};
  let worker;
  let built;
  const NAME = 'Booked <script>alert("x")</script> | `y` **z**';
  before(async () => {
    dest.ok = await startDestination([200]);
    const p = policy({ ok: { endpoint: dest.ok.url } });
    p.events = { [NAME]: "allow", "*": "drop" };
    built = await bundle(p);
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY });
    assert.equal((await send(worker, [track(1, NAME)])).status, 200);
    await until(() => dest.ok.delivered().length === 1, "the event delivered", 20_000);
  });
  after(async () => {
    await worker?.mf.dispose();
    built?.cleanup();
    for (const d of Object.values(dest)) d.close();
  });

  test("only the operator key's holder reads it; no CORS", async () => {
    for (const key of [null, "wrong-operator-key-0123456789abcdef0123", WRITE_KEY, `${OPERATOR_KEY}x`]) {
      const r = await report(worker, `from=${today()}&to=${today()}`, key);
      assert.equal(r.status, 401, String(key));
      assert.equal(r.body.code, "invalid_operator_key");
      assert.ok(!r.text.includes(OPERATOR_KEY));
    }
    const basicAuth = await worker.mf.dispatchFetch(`http://edge.test/evidence?from=${today()}&to=${today()}`, { headers: { Authorization: basic(OPERATOR_KEY) } });
    assert.equal(basicAuth.status, 401);
    await basicAuth.text();
    const ok = await report(worker);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("access-control-allow-origin"), null);
    assert.equal(ok.headers.get("cache-control"), "no-store");
    const post = await report(worker, `from=${today()}&to=${today()}`, OPERATOR_KEY, "POST");
    assert.equal(post.status, 405);
  });

  test("a short or missing OPERATOR_KEY keeps it closed (503)", async () => {
    for (const [bindings, code] of [[{}, "no_operator_key"], [{ OPERATOR_KEY: "short-key" }, "operator_key_too_short"]]) {
      const w = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, ...bindings });
      try {
        const r = await report(w, `from=${today()}&to=${today()}`, bindings.OPERATOR_KEY ?? OPERATOR_KEY);
        assert.equal(r.status, 503);
        assert.equal(r.body.code, code);
      } finally {
        await w.mf.dispose();
      }
    }
  });

  test("hostile parameters are refused with what is wrong, never echoed", async () => {
    const cases = [
      ["", "invalid_from"],
      [`to=${today()}`, "invalid_from"],
      [`from=${today()}`, "invalid_to"],
      ["from=2026-02-30&to=2026-03-01", "invalid_from"],
      ["from=2026-1-5&to=2026-01-06", "invalid_from"],
      ["from=2026-03-02&to=2026-03-01", "invalid_range"],
      ["from=2025-01-01&to=2026-01-02", "invalid_range"],
      [`from=${today()}&to=${today()}&format=xml`, "invalid_format"],
      [`from=${today()}&to=${today()}&format=JSON`, "invalid_format"],
      [`from=${today()}&to=${today()}&env=production`, "invalid_parameter"],
      [`from=${today()}&from=${today()}&to=${today()}`, "invalid_parameter"],
      [`from=${encodeURIComponent("2026-01-01\n<b>")}&to=${today()}`, "invalid_from"],
      [`from=${"9".repeat(5000)}&to=${today()}`, "invalid_from"],
      [`from=${encodeURIComponent("2026-01-01' OR 1=1 --")}&to=${today()}`, "invalid_from"],
    ];
    for (const [query, code] of cases) {
      const r = await report(worker, query);
      assert.equal(r.status, 400, query);
      assert.equal(r.body.code, code, query);
      assert.ok(!r.text.includes("<b>") && !r.text.includes("OR 1=1") && !r.text.includes("99999"), query);
    }
    // A leap day and a year of 366 days are fine.
    assert.equal((await report(worker, "from=2024-02-29&to=2025-02-28")).status, 200);
    assert.equal((await report(worker, "from=2024-01-01&to=2024-12-31")).status, 200);
  });

  test("JSON, Markdown and HTML hold the same report, with the policy's own names escaped", async () => {
    const json = await report(worker, `from=${today()}&to=${today()}&format=json`);
    assert.equal(json.headers.get("content-type"), "application/json");
    for (const field of ["policies", "ledger", "reconciliation", "inventory", "baa"]) assert.ok(Array.isArray(json.body[field]), field);
    const md = await report(worker, `from=${today()}&to=${today()}&format=markdown`);
    assert.equal(md.status, 200);
    assert.equal(md.headers.get("content-type"), "text/markdown; charset=utf-8");
    const html = await report(worker, `from=${today()}&to=${today()}&format=html`);
    assert.equal(html.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(html.headers.get("content-security-policy"), /default-src 'none'/);
    // Every section, in each form, says what its numbers mean.
    for (const heading of ["Reconciliation", "Ledger", "Requests refused whole", "Dead letters", "Inventory of paths no rule names", "BAA register", "Policies in force"]) {
      assert.ok(md.text.includes(`## ${heading}`), heading);
      assert.ok(html.text.includes(`<h2>${heading}</h2>`), heading);
    }
    assert.ok(md.text.includes("received = delivered + dead-lettered + failed + not sent + in flight"));
    // The policy lists the name, so it is shown: as text, never as markup.
    assert.ok(!html.text.includes("<script>"), "no markup from a name");
    assert.ok(html.text.includes("&#60;script&#62;"), "the name escaped");
    // (The data map shows names in code spans, where markup is text.)
    assert.ok(!md.text.split("## Policies in force")[0].includes("<script>"), "no raw HTML in Markdown");
    const ledgerLines = md.text.split("## Policies in force")[0].split("\n").filter((l) => l.startsWith("| ") && l.includes("script"));
    assert.equal(ledgerLines.length > 0, true, "the listed name is in the ledger");
    for (const line of ledgerLines) {
      const cells = line.split(/(?<!\\)\|/).length;
      const header = md.text.split("\n").find((l) => l.startsWith("| day | destination | call"));
      assert.equal(cells, header.split("|").length, "a name's | does not add a column");
    }
    // The current policy's data map is part of every form.
    assert.ok(md.text.includes("Data map: `test`"), "the data map in Markdown");
    assert.ok(html.text.includes("Data map: `test`"), "the data map in HTML");
    assert.equal(json.body.policies.find((p) => p.current).data_map.includes("Data map"), true);
  });
});

describe("evidence: requests refused whole, replays, direct delivery, duplicates", () => {
  const dest = {};
  let built;
  before(async () => {
    dest.seg = await startDestination([400, 200]);
    dest.baa = await startDestination([200]);
    built = await bundle(policy({ seg: { endpoint: dest.seg.url }, baa: { endpoint: dest.baa.url, restrict_phi: false, baa: { signed: "2026-01-15", ref: "BAA-EV-7" } } }));
  });
  after(async () => {
    built?.cleanup();
    for (const d of Object.values(dest)) d.close();
  });

  test("refused requests are counted by reason, in requests; their events are not received", async () => {
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY });
    try {
      assert.equal((await send(worker, [track(1, "Appointment Booked")], { headers: { Authorization: basic("wk_unknown") } })).status, 401);
      assert.equal((await send(worker, [], { body: `{"batch":[{"type":"track","event":"${CANARY.event}","userId":"${CANARY.name}"` })).status, 400);
      assert.equal((await send(worker, [], { body: "{}" })).status, 400);
      await until(async () => (await report(worker)).body.refused_requests.reduce((n, r) => n + r.requests, 0) === 3, "three refused requests counted", 10_000);
      const { body, text } = await report(worker);
      const by = Object.fromEntries(body.refused_requests.map((r) => [r.reason, r.requests]));
      assert.equal(by.invalid_write_key ?? by.unknown_write_key, 1, JSON.stringify(body.refused_requests));
      assert.equal(body.refused_requests.every((r) => r.call === "batch"), true);
      assert.equal(body.reconciliation.length, 0, "no event of a refused request is received");
      assert.ok(!text.includes(CANARY.event) && !text.includes(CANARY.name));
    } finally {
      await worker.mf.dispose();
    }
  });

  test("a dead letter replayed and delivered: dead-lettered net of replays, balanced; direct delivery under a BAA counted", async () => {
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY });
    try {
      dest.seg.requests.splice(0);
      dest.seg.answer([400, 200]);
      assert.equal((await send(worker, [track(1, "Appointment Booked"), track(2, "Appointment Booked")])).status, 200);
      const settled = async (check) => {
        const r = await report(worker);
        return r.body.reconciliation.length === 2 && r.body.reconciliation.every((c) => c.in_flight === 0) && check(r.body);
      };
      await until(() => settled((b) => b.reconciliation.find((c) => c.destination === "seg").dead_lettered === 2), "seg's body dead-lettered", 20_000);
      // The dead letter is filed, then replayed by the operator.
      await until(async () => (await (await worker.mf.dispatchFetch("http://edge.test/dead-letters", { headers: { Authorization: `Bearer ${OPERATOR_KEY}` } })).json()).deadLetters?.length === 1, "the letter filed", 10_000);
      const replay = await worker.mf.dispatchFetch("http://edge.test/dead-letters/replay", { method: "POST", headers: { Authorization: `Bearer ${OPERATOR_KEY}`, "Content-Type": "application/json" }, body: "{}" });
      assert.equal(replay.status, 200, await replay.clone().text());
      await replay.text();
      await until(() => settled((b) => b.reconciliation.find((c) => c.destination === "seg").delivered === 2), "the replay delivered", 20_000);
      const { body } = await report(worker);
      const seg = body.reconciliation.find((c) => c.destination === "seg");
      assert.deepEqual([seg.received, seg.delivered, seg.dead_lettered, seg.replayed, seg.in_flight, seg.balanced], [2, 2, 0, 2, 0, true]);
      // Under a BAA without QUEUE_ENCRYPTION_KEY: sent at once, counted as direct.
      const baa = body.reconciliation.find((c) => c.destination === "baa");
      assert.deepEqual([baa.received, baa.direct, baa.queued, baa.delivered, baa.balanced], [2, 2, 0, 2, true]);
      assert.equal(dest.baa.delivered().length, 2);
      assert.deepEqual(body.baa, [{ destination: "baa", signed: "2026-01-15", ref: "BAA-EV-7" }]);
      assert.deepEqual(body.dead_letters, [{ destination: "seg", reason: "refused", events: 2 }]);
    } finally {
      await worker.mf.dispose();
    }
  });

  test("a ledger message given twice is counted once; a damaged one counts nothing it cannot read", async () => {
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY });
    try {
      const queue = await worker.mf.getQueueProducer("DELIVERY", "phimask");
      const message = { kind: "ledger", id: "dup-1", day: today(), environment: "test", policy: "a".repeat(64), rows: [["seg", "track", "", "received", "", 5], ["seg", "track", "", "not_sent", "routing", 5]], inventory: [["properties.x", 5]] };
      await queue.send(message, { contentType: "v8" });
      await queue.send(message, { contentType: "v8" });
      await queue.send({ ...message, id: "bad-1", rows: [["seg", "track", "", "stolen", "", 7], ["seg", "track", "", "received", "", -3], ["seg", "track", "", "received", "", "9"]], inventory: [[42, 1]] }, { contentType: "v8" });
      await queue.send({ ...message, id: "bad-2", day: "2026-13-01" }, { contentType: "v8" });
      await until(async () => (await report(worker)).body.reconciliation.length === 1, "the ledger message written", 10_000);
      await new Promise((r) => setTimeout(r, 1500));
      const { body } = await report(worker);
      assert.deepEqual(body.reconciliation.map((c) => [c.destination, c.received, c.not_sent, c.balanced]), [["seg", 5, 5, true]]);
      assert.deepEqual(body.inventory.map((p) => [p.path, p.count]), [["properties.x", 5]]);
      assert.equal(body.ledger.some((r) => r.decision === "stolen"), false);
    } finally {
      await worker.mf.dispose();
    }
  });

  test("without the LEDGER binding, nothing is taken (503 no_ledger) and /health says so", async () => {
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY }, { without: ["LEDGER"] });
    try {
      const sent = await send(worker, [track(1, "Appointment Booked")]);
      assert.equal(sent.status, 503);
      assert.equal(sent.body.code, "no_ledger");
      const health = await (await worker.mf.dispatchFetch("http://edge.test/health")).json();
      assert.equal(health.databases.LEDGER, false);
      assert.equal(health.problems.some((p) => p.code === "no_ledger"), true);
      const r = await report(worker);
      assert.equal(r.status, 503);
      assert.equal(r.body.code, "no_ledger");
    } finally {
      await worker.mf.dispose();
    }
  });
});
