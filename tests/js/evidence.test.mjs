// The evidence ledger and GET /evidence inside workerd (Miniflare, the
// local queues and D1 of wrangler dev): what was received, sent, not
// sent, delivered and dead-lettered, counted per destination and day,
// balancing against what real HTTP destinations on 127.0.0.1 received;
// the report's forms; the operator key; hostile parameters; and no value
// of any event anywhere in it. Also what only the queues and D1 show:
// retries counted once, events refused inside a body, direct deliveries
// that fail, ledger messages given again or damaged, letters the queue
// moved itself, days and environments apart, and counts that outlive a
// moment when D1 LEDGER fails.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import { bundle, DEAD_LETTER_QUEUE, startDestination, startWorker, until } from "./worker-harness.mjs";

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

/** A destination on 127.0.0.1 answering each request in turn with [status, JSON body] (the last repeats). */
async function answering(plan) {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const [status, body] = plan[Math.min(requests.length, plan.length - 1)];
      requests.push({ status, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/batch`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}

describe("evidence: retries, events refused inside a body, direct deliveries that fail, reasons side by side", () => {
  const dest = {};
  let worker;
  let built;
  before(async () => {
    // Answers 500, then 200: the consumer retries, and counts the delivery once.
    dest.flaky = await startDestination([500, 200]);
    // Amplitude refuses the first event of the body and takes the rest when sent again.
    dest.amp = await answering([[400, { code: 400, error: "Invalid field values on some events", events_with_invalid_fields: { user_id: [0] } }], [200, { code: 200 }]]);
    // Under a BAA without QUEUE_ENCRYPTION_KEY: sent at once, and refused.
    dest.vault = await startDestination([400]);
    const p = policy({
      flaky: { endpoint: dest.flaky.url },
      amp: { endpoint: dest.amp.url, format: "amplitude" },
      vault: { endpoint: dest.vault.url, restrict_phi: false, baa: { signed: "2026-01-15", ref: "BAA-V" } },
    });
    p.bots = "drop";
    built = await bundle(p);
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY, AUTH_AMP: "0123456789abcdef0123456789abcdef" });
  });
  after(async () => {
    await worker?.mf.dispose();
    built?.cleanup();
    for (const d of Object.values(dest)) await d.close();
  });

  test("a retried body counts as delivered once; an event the destination refused is failed; a refused direct delivery is failed", async () => {
    const batch = [
      track(1, "Appointment Booked"),
      track(2, "Appointment Booked"),
      // Kept from every destination under the same label, for two reasons.
      track(3, "Appointment Booked", { context: { userAgent: "curl/8.4.0" } }),
      track(4, "Appointment Booked", { integrations: { All: false } }),
    ];
    assert.equal((await send(worker, batch)).status, 200);
    await until(() => dest.flaky.delivered().length === 2 && dest.amp.requests.length === 2, "the retry and the rest delivered", 20_000);
    const line = (b, d) => b.reconciliation.find((c) => c.destination === d);
    let body;
    await until(async () => {
      ({ body } = await report(worker));
      return body.reconciliation.length === 3 && body.reconciliation.every((c) => c.in_flight === 0) && line(body, "amp").delivered === 1;
    }, "every outcome counted", 20_000);
    // Give a count made twice (at the retry and at the ack) time to show.
    await new Promise((r) => setTimeout(r, 1500));
    ({ body } = await report(worker));
    const pick = (c) => [c.received, c.queued, c.direct, c.delivered, c.failed, c.dead_lettered, c.not_sent, c.in_flight, c.balanced];
    assert.deepEqual(pick(line(body, "flaky")), [4, 2, 0, 2, 0, 0, 2, 0, true]);
    assert.equal(line(body, "flaky").delivered, dest.flaky.delivered().length, "delivered is what the destination took");
    assert.deepEqual(pick(line(body, "amp")), [4, 2, 0, 1, 1, 0, 2, 0, true]);
    assert.deepEqual(pick(line(body, "vault")), [4, 0, 2, 0, 2, 0, 2, 0, true]);
    const rows = (d, decision) => body.ledger.filter((r) => r.destination === d && r.decision === decision).map((r) => [r.call, r.event, r.reason, r.count]);
    assert.deepEqual(rows("amp", "failed"), [["track", "Appointment Booked", "refused_by_destination", 1]]);
    assert.deepEqual(rows("vault", "failed"), [["track", "Appointment Booked", "refused", 2]]);
    // Each reason under its own count, for one label.
    assert.deepEqual(rows("flaky", "not_sent").sort(), [["track", "Appointment Booked", "bot", 1], ["track", "Appointment Booked", "routing", 1]]);
    // Every count is filed under the policy running.
    assert.ok(body.ledger.every((r) => r.policy === body.policy), JSON.stringify(body.ledger.map((r) => r.policy)));
    const md = (await report(worker, `from=${today()}&to=${today()}&format=markdown`)).text;
    const flakyLine = md.split("\n").find((l) => l.startsWith(`| ${today()} | flaky | track | Appointment Booked |`));
    assert.ok(flakyLine?.includes("2 (bot 1, routing 1)"), flakyLine);
  });
});

describe("evidence: counts from the queues: days, environments, damage, the dead-letter queue", () => {
  const dest = {};
  let worker;
  let built;
  let hash;
  const DAYS = "from=2026-01-10&to=2026-01-13";
  before(async () => {
    dest.ok = await startDestination([200]);
    const p = policy({ ok: { endpoint: dest.ok.url } });
    // Rules reach two levels down: the keys under them are counted one by one.
    p.allowlists.event_properties[`${"a".repeat(64)}.${"b".repeat(64)}.named`] = "allow";
    built = await bundle(p);
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY });
    hash = (await (await worker.mf.dispatchFetch("http://edge.test/health")).json()).policy.sha256;
    const delivery = await worker.mf.getQueueProducer("DELIVERY", "phimask");
    const deadLetter = await worker.mf.getQueueProducer("DEAD_LETTER", "phimask");
    const ledger = (id, day, rows, inventory = [], environment = "test") => ({ kind: "ledger", id, day, environment, policy: hash, rows, inventory });
    const body = new Uint8Array([123, 125]);
    // A body for a destination the policy does not have: dead-lettered by the consumer, under the day it was received.
    await delivery.send({ to: "gone", events: [0, 1], body, policy: hash, format: "json", endpoint: "0".repeat(64), ledger: { day: "2026-01-10", labels: [["track", "Appointment Booked"]], of: [0, 0] } }, { contentType: "v8" });
    // A letter the queue moved itself (no reason of ours): counted when filed.
    await deadLetter.send({ to: "gone", events: [4, 5, 6], body, policy: hash, format: "json", endpoint: "0".repeat(64), ledger: { day: "2026-01-11", labels: [["track", ""]], of: [0, 0, 0] } }, { contentType: "v8" });
    // A ledger message the queue moved to the dead-letter queue: written, what it can read of it.
    await deadLetter.send(ledger("dlq-1", "2026-01-12", [["moved", "track", "", "received", "", 4], ["moved", "track", "", "queued", "", 4], ["moved", "track", "", "delivered", "", 4], ["moved", "track", "", "stolen", "", 9]], [["properties.early", 2]]), { contentType: "v8" });
    // Received but never queued nor kept back: not balanced.
    await delivery.send(ledger("lost-1", "2026-01-13", [["lost", "track", "", "received", "", 5], ["lost", "track", "", "queued", "", 3]]), { contentType: "v8" });
    // Outside the range, another environment, a day that is not a date: none of it in the report.
    await delivery.send(ledger("early-1", "2026-01-09", [["ok", "track", "", "received", "", 7], ["ok", "track", "", "not_sent", "routing", 7]], [["properties.early", 3]]), { contentType: "v8" });
    await delivery.send(ledger("staging-1", "2026-01-12", [["ok", "track", "", "received", "", 11], ["ok", "track", "", "not_sent", "routing", 11]], [["properties.staging", 1]], "staging"), { contentType: "v8" });
    // The counts of a request refused after part of it was queued (voided): never counted.
    await (await worker.mf.getD1Database("DELIVERY_STATE")).prepare("INSERT INTO voided_requests (id, at) VALUES (?, ?)").bind("void-1", Date.now()).run();
    await delivery.send({ ...ledger("voided-1", "2026-01-12", [["voided", "track", "", "received", "", 17], ["voided", "track", "", "queued", "", 17]]), req: "void-1" }, { contentType: "v8" });
    await delivery.send(ledger("baddate-1", "2026-01-11T00", [["ok", "track", "", "received", "", 13], ["ok", "track", "", "not_sent", "routing", 13]]), { contentType: "v8" });
  });
  after(async () => {
    await worker?.mf.dispose();
    built?.cleanup();
    for (const d of Object.values(dest)) d.close();
  });

  test("what the queues counted lands under its own day; dead letters by reason; an unbalanced day says so", async () => {
    let body;
    await until(async () => {
      ({ body } = await report(worker, DAYS));
      const gone = body.reconciliation.filter((c) => c.destination === "gone");
      return gone.reduce((n, c) => n + c.dead_lettered, 0) === 5 && body.reconciliation.some((c) => c.destination === "moved") && body.reconciliation.some((c) => c.destination === "lost");
    }, "the queues' counts written", 20_000);
    await new Promise((r) => setTimeout(r, 1500));
    ({ body } = await report(worker, DAYS));
    const recon = body.reconciliation.map((c) => [c.day, c.destination, c.received, c.delivered, c.dead_lettered, c.not_sent, c.in_flight, c.balanced]);
    assert.deepEqual(recon, [
      ["2026-01-10", "gone", 0, 0, 2, 0, -2, false],
      ["2026-01-11", "gone", 0, 0, 3, 0, -3, false],
      ["2026-01-12", "moved", 4, 4, 0, 0, 0, true],
      ["2026-01-13", "lost", 5, 0, 0, 0, 3, false],
    ]);
    assert.deepEqual(body.dead_letters, [{ destination: "gone", reason: "unknown_destination", events: 2 }, { destination: "gone", reason: "retries_exhausted", events: 3 }]);
    assert.deepEqual(body.ledger.filter((r) => r.destination === "gone").map((r) => [r.day, r.call, r.event, r.decision, r.reason, r.count]), [
      ["2026-01-10", "track", "Appointment Booked", "dead_lettered", "unknown_destination", 2],
      ["2026-01-11", "track", null, "dead_lettered", "retries_exhausted", 3],
    ]);
    assert.equal(body.ledger.some((r) => r.decision === "stolen"), false);
    assert.equal(body.ledger.some((r) => r.destination === "voided"), false, "a voided request's counts");
    // First seen before the range: counted in it, not new in it.
    assert.deepEqual(body.inventory, [{ path: "properties.early", count: 2, first_seen: "2026-01-09", new: false }]);
    // Unbalanced days are flagged in every form.
    const md = (await report(worker, `${DAYS}&format=markdown`)).text;
    assert.equal(md.split("\n").filter((l) => l.startsWith("| 2026-") && /\| [\\*]*NO[\\*]* \|$/.test(l)).length, 3);
    const html = (await report(worker, `${DAYS}&format=html`)).text;
    assert.equal(html.split('<td class="no">NO</td>').length - 1, 3);
    const goneLine = md.split("\n").find((l) => l.startsWith("| 2026-01-10 | gone | track | Appointment Booked |"));
    assert.ok(goneLine?.includes("| 2 (unknown\\_destination 2) |"), goneLine);
  });

  test("a letter the dead-letter queue gives twice is filed and counted once", async () => {
    const consumer = await worker.mf.getWorker("phimask");
    const letter = { to: "twice", events: [0, 1, 2], body: new Uint8Array([123, 125]), policy: hash, format: "json", endpoint: "0".repeat(64), ledger: { day: "2026-01-12", labels: [["track", ""]], of: [0, 0, 0] } };
    // The same queue message (its id) again: delivery is at least once.
    for (let i = 0; i < 2; i++) await consumer.queue(DEAD_LETTER_QUEUE, [{ id: "letter-twice", timestamp: new Date(), attempts: 1, body: letter }]);
    const { body } = await report(worker, DAYS);
    assert.deepEqual(body.reconciliation.filter((c) => c.destination === "twice").map((c) => [c.day, c.dead_lettered]), [["2026-01-12", 3]]);
  });

  test("a ledger message given again after it was written is not counted again", async () => {
    const delivery = await worker.mf.getQueueProducer("DELIVERY", "phimask");
    const again = { kind: "ledger", id: "lost-1", day: "2026-01-13", environment: "test", policy: hash, rows: [["lost", "track", "", "received", "", 5], ["lost", "track", "", "queued", "", 3]], inventory: [] };
    await delivery.send(again, { contentType: "v8" });
    // A fresh message behind it shows the consumer has read the queue that far.
    await delivery.send({ ...again, id: "marker-1", rows: [["marker", "track", "", "received", "", 1], ["marker", "track", "", "not_sent", "routing", 1]] }, { contentType: "v8" });
    let body;
    await until(async () => ((body = (await report(worker, DAYS)).body).reconciliation.some((c) => c.destination === "marker")), "the marker written", 20_000);
    await new Promise((r) => setTimeout(r, 500));
    body = (await report(worker, DAYS)).body;
    const lost = body.reconciliation.find((c) => c.destination === "lost");
    assert.deepEqual([lost.received, lost.queued], [5, 3]);
  });

  test("a request with more unnamed paths than one ledger message holds: every path counted", async () => {
    const deep = (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${String(i).padStart(3, "0")}_${"x".repeat(53)}`, 1]));
    const props = (from, to) => ({ plan: "gold", ["a".repeat(64)]: { ["b".repeat(64)]: Object.fromEntries(Object.entries(deep(256)).slice(from, to)) } });
    assert.equal((await send(worker, [track(1, "Appointment Booked", { properties: props(0, 128) }), track(2, "Appointment Booked", { properties: props(128, 256) })])).status, 200);
    let body;
    await until(async () => {
      ({ body } = await report(worker));
      return body.inventory.length >= 256;
    }, "the inventory written", 20_000);
    await new Promise((r) => setTimeout(r, 1000));
    ({ body } = await report(worker));
    assert.equal(body.inventory.length, 256);
    assert.ok(body.inventory.every((p) => p.count === 1 && p.path.length <= 200 && p.path.startsWith(`properties.${"a".repeat(64)}.${"b".repeat(64)}.k`)));
  });
});

describe("evidence: counts survive a moment when D1 LEDGER fails", () => {
  const dest = {};
  let worker;
  let built;
  before(async () => {
    dest.seg = await startDestination([200]);
    dest.vault = await startDestination([200]);
    built = await bundle(policy({ seg: { endpoint: dest.seg.url }, vault: { endpoint: dest.vault.url, restrict_phi: false, baa: true } }));
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY });
  });
  after(async () => {
    await worker?.mf.dispose();
    built?.cleanup();
    for (const d of Object.values(dest)) d.close();
  });

  test("what could not be written is written later: received, queued, delivered and direct all counted once", async () => {
    const db = await worker.mf.getD1Database("LEDGER");
    // The ledger's table gone for a moment: every write of counts fails.
    await db.exec("ALTER TABLE ledger RENAME TO ledger_away");
    assert.equal((await send(worker, [track(1, "Appointment Booked"), track(2, "Viewed Clinic")])).status, 200);
    await until(() => dest.seg.delivered().length === 2 && dest.vault.delivered().length === 2, "both destinations served", 20_000);
    await until(() => worker.logs.some((l) => l.includes("ledger not written, will retry")) && worker.logs.some((l) => l.includes("ledger not written, queued instead")), "the writes to fail", 20_000);
    assert.equal((await report(worker)).body.code, "ledger_unavailable");
    await db.exec("ALTER TABLE ledger_away RENAME TO ledger");
    let body;
    // The consumer tries again 10 s later.
    await until(async () => {
      ({ body } = await report(worker));
      return body.reconciliation.length === 2 && body.reconciliation.every((c) => c.received === 2 && c.in_flight === 0);
    }, "the counts written", 60_000);
    const pick = (d) => {
      const c = body.reconciliation.find((x) => x.destination === d);
      return [c.received, c.queued, c.direct, c.delivered, c.in_flight, c.balanced];
    };
    assert.deepEqual(pick("seg"), [2, 2, 0, 2, 0, true]);
    assert.deepEqual(pick("vault"), [2, 0, 2, 2, 0, true]);
  });
});
