// The evidence ledger attacked as a hostile sender and a hostile reader
// would: values planted where a label or a path could carry them, counts
// pushed to lie (concurrency, retries, duplicates, racing replays,
// destinations that refuse part of a body), GET /evidence's route bent
// every way, and requests made to cost the ledger as much as they can.
// Real HTTP destinations on 127.0.0.1 (www/dev/fakes.mjs), Miniflare's
// local queues and D1.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import { FAKE_CREDENTIALS, startFakes } from "../../www/dev/fakes.mjs";
import { bundle, freePort, startWorker, until } from "./worker-harness.mjs";

const KEY = "evidence-attacks-masking-key-0123456789ab";
const WRITE_KEY = "wk_evidence_attacks";
const OPERATOR_KEY = "operator-key-evidence-attacks-0123456789";
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;
const today = () => new Date().toISOString().slice(0, 10);
const RANGE = () => `from=${today()}&to=${today()}`;
// An hour ago: inside GA4's backdating window and Mixpanel's clock.
const AT = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000).toISOString();
const CREDENTIALS = {
  AUTH_AMP: FAKE_CREDENTIALS.amplitude,
  AUTH_MIX: FAKE_CREDENTIALS.mixpanel,
  AUTH_GA: `${FAKE_CREDENTIALS.ga4.measurement_id}:${FAKE_CREDENTIALS.ga4.api_secret}`,
};

async function post(worker, batch, { key = WRITE_KEY, headers = {}, body } = {}) {
  const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
    method: "POST",
    headers: { Authorization: basic(key), "Content-Type": "application/json", ...headers },
    body: body ?? JSON.stringify({ batch }),
  });
  const text = await res.text();
  return { status: res.status, text, body: text.startsWith("{") ? JSON.parse(text) : null };
}

async function report(worker, query = RANGE(), headers = { Authorization: `Bearer ${OPERATOR_KEY}` }, method = "GET", path = "/evidence") {
  const res = await worker.mf.dispatchFetch(`http://edge.test${path}${query === null ? "" : `?${query}`}`, { method, headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: res.headers.get("content-type")?.startsWith("application/json") && text ? JSON.parse(text) : null };
}

/** Every row of every table of a D1 database, as one text. */
async function dump(worker, name) {
  const db = await worker.mf.getD1Database(name);
  const { results } = await db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'").all();
  const out = [];
  for (const { name: t } of results) out.push(t, JSON.stringify((await db.prepare(`SELECT * FROM "${t}"`).all()).results));
  return out.join("\n");
}

/** Waits until every destination's line has no event in flight and the check holds. */
async function settled(worker, check = () => true, what = "the ledger settled", ms = 30_000) {
  let last;
  await until(async () => {
    last = await report(worker);
    return last.status === 200 && last.body.reconciliation.length > 0 && last.body.reconciliation.every((c) => c.in_flight === 0) && check(last.body);
  }, what, ms);
  return last.body;
}

/** The reconciliation's identity, for every line. */
function balances(body) {
  for (const c of body.reconciliation) {
    assert.equal(c.balanced, true, JSON.stringify(c));
    assert.equal(c.received, c.delivered + c.dead_lettered + c.failed + c.not_sent + c.in_flight, JSON.stringify(c));
  }
}

/**
 * An Amplitude HTTP API on 127.0.0.1 that answers 400 with
 * events_with_invalid_fields for the events whose plan is "refuse" and
 * takes none of such a body (as Amplitude does); any other body is taken.
 */
async function amplitudeRefusingSome() {
  const took = [];
  const state = { took, refusedBodies: 0 };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const events = JSON.parse(Buffer.concat(chunks).toString("utf8")).events ?? [];
      const bad = events.flatMap((e, i) => (e?.event_properties?.plan === "refuse" ? [i] : []));
      if (bad.length > 0) {
        state.refusedBodies += 1;
        res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ code: 400, error: "Request has invalid or missing fields", events_with_invalid_fields: { event_properties: bad } }));
        return;
      }
      took.push(...events);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ code: 200, events_ingested: events.length }));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${server.address().port}/2/httpapi`;
  state.close = () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); });
  return state;
}

const line = (body, d) => body.reconciliation.find((c) => c.destination === d);

// ---------------------------------------------------------------------------
// 1. PHI in the ledger or the report
// ---------------------------------------------------------------------------

// Values no detector sees: any of them in a row, a report or a log is a leak.
const PHI = ["Jane Doe", "HIV positive", "MRN 00482913", "Dx E11.9 Type 2 Diabetes", "Zebulon Quickfeather", "Gastroparesis"];
const LISTED = "Appointment Booked";
// Look-alikes of a listed name: none is the listed name, so none is shown.
const LOOK_ALIKES = [
  "appointment booked", "APPOINTMENT BOOKED", "Appointment booked", `${LISTED} `, ` ${LISTED}`, "\u0410ppointment Booked", // Cyrillic А
  "Appointment\u00a0Booked", "Appointment\u200bBooked", `${LISTED}\u0000`, "Appointment Bookeḍ", "Appointment Booked\n",
];

describe("evidence attacks: values planted as event names, keys and routes never reach the ledger, the report or the logs", () => {
  let fakes;
  let built;
  let worker;
  let noMap;
  let builtNoMap;
  const ONLY_SEG = "Seg Only Listed Name";

  before(async () => {
    fakes = await startFakes(await freePort(), { quiet: true });
    const destinations = {
      seg: { connection: "server-side", endpoint: `${fakes.url}/seg`, events: { [ONLY_SEG]: "allow" } },
      other: { connection: "server-side", endpoint: `${fakes.url}/other` },
      // Refuses everything: its bodies become dead letters.
      down: { connection: "server-side", endpoint: `${fakes.url}/down` },
      amp: { connection: "server-side", format: "amplitude", endpoint: `${fakes.url}/amp/2/httpapi` },
      // Unrestricted under a BAA: events go unchanged, names too; the ledger still only lists listed names.
      baa: { connection: "server-side", endpoint: `${fakes.url}/baa`, restrict_phi: false, baa: { signed: "2026-01-15", ref: "BAA-ATTACK-1" } },
    };
    built = await bundle({
      version: 1, environment: "attack", hipaa: true, bots: "drop",
      allowlists: { event_properties: { plan: "allow" } },
      events: { [LISTED]: "allow", "Viewed Clinic": { rename: "Viewed Page" }, Home: "allow", "*": "allow" },
      destinations,
    });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY, ...CREDENTIALS });
    builtNoMap = await bundle({ version: 1, environment: "attack-nomap", hipaa: true, destinations: { seg: destinations.seg, baa: destinations.baa } });
    noMap = await startWorker(builtNoMap.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY, ...CREDENTIALS });
  });
  after(async () => {
    await worker?.mf.dispose();
    await noMap?.mf.dispose();
    built?.cleanup();
    builtNoMap?.cleanup();
    await fakes?.close();
  });

  const props = () => ({
    plan: "gold",
    "Jane Doe": "x", "jane doe": 1, "JANE DOE": 2, "HIV positive": true, "hiv Positive": true,
    nested: { "Zebulon Quickfeather": { "MRN 00482913": 1 }, deeper: [{ "Dx E11.9 Type 2 Diabetes": 1 }] },
    list: [{ "HIV positive": 1 }, [{ "Jane Doe": 2 }]],
    "a|b": 1, "<script>Jane Doe</script>": 1, "line\nGastroparesis": 1, "pipe|HIV positive": 1,
    [`${"x".repeat(5000)} Jane Doe`]: 1,
  });
  const event = (i, extra) => ({
    type: "track", userId: `patient-${i}-zq`, anonymousId: `anon-${i}-device`, messageId: `m-attack-${i}`, timestamp: AT,
    properties: props(), context: { traits: { "Jane Doe": "HIV positive", email: "jane.doe@clinic-example.org" } },
    integrations: { "Jane Doe": true, "HIV positive": { x: 1 } },
    "Zebulon Quickfeather": "top-level unknown key",
    ...extra,
  });

  const batch = () => {
    let i = 0;
    return [
      ...PHI.map((name) => event(i++, { event: name })),
      ...LOOK_ALIKES.map((name) => event(i++, { event: name })),
      event(i++, { event: LISTED }),
      event(i++, { event: "Viewed Clinic" }),
      // The rename's target sent as a name of its own: not a name the map lists as a source.
      event(i++, { event: "Viewed Page" }),
      event(i++, { event: ONLY_SEG }),
      ...PHI.map((name) => ({ type: "page", name, category: PHI[0], userId: `patient-p${i}`, messageId: `m-attack-${i++}`, properties: props() })),
      ...PHI.map((name) => ({ type: "screen", name, category: PHI[1], userId: `patient-s${i}`, messageId: `m-attack-${i++}`, properties: props() })),
      { type: "page", name: "Home", category: "Jane Doe", userId: "patient-home", messageId: "m-attack-home" },
      // Refused events (no event name; a track with a name too long to be one), named with PHI.
      { type: "track", userId: "Jane Doe", messageId: "m-attack-refused", properties: { "HIV positive": 1 } },
      { type: "track", event: { name: "HIV positive" }, userId: "patient-bad", messageId: "m-attack-refused-2" },
      { type: "identify", userId: "patient-identify", messageId: "m-attack-identify", traits: { "Jane Doe": "HIV positive", "MRN 00482913": 1 } },
    ];
  };

  let sentCount = 0;
  let listedFor;
  test("every label in the ledger is a name the destination's own events map lists; nothing else is written", async () => {
    fakes.outage("down", 400);
    const b = batch();
    const sent = await post(worker, b);
    assert.equal(sent.status, 200, sent.text);
    sentCount = b.length;
    // A bot's events under "bots": "drop", named with PHI (a browser request: the User-Agent is read).
    const bot = await post(worker, PHI.map((name, i) => event(100 + i, { event: name })), { headers: { Origin: "https://clinic.example", "User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)" } });
    assert.equal(bot.status, 200, bot.text);
    sentCount += PHI.length;
    const body = await settled(worker, (r) => r.reconciliation.length === 5 && r.reconciliation.every((c) => c.received === sentCount), "all five destinations counted");
    assert.ok(line(body, "down").dead_lettered > 0, JSON.stringify(line(body, "down")));
    balances(body);
    // The bot's events: not sent anywhere, for the reason "bot".
    for (const d of ["seg", "other", "amp", "baa", "down"]) {
      const bots = body.ledger.filter((r) => r.destination === d && r.decision === "not_sent" && r.reason === "bot").reduce((n, r) => n + r.count, 0);
      assert.equal(bots, PHI.length, d);
    }
    // baa takes events unchanged: a rename's source is sent (and listed) as it is.
    listedFor = (d) => new Set([LISTED, "Viewed Page", "Home", ...(d === "seg" ? [ONLY_SEG] : []), ...(d === "baa" ? ["Viewed Clinic"] : [])]);
    for (const r of body.ledger) {
      if (r.event !== null) assert.ok(listedFor(r.destination).has(r.event), `${JSON.stringify(r.event)} for ${r.destination}`);
    }
    // The listed names are there, under the destinations whose maps list them.
    assert.ok(body.ledger.some((r) => r.destination === "seg" && r.event === ONLY_SEG && r.decision === "queued"));
    assert.ok(!body.ledger.some((r) => r.destination !== "seg" && r.event === ONLY_SEG), "listed only in seg's map");
    assert.ok(body.ledger.some((r) => r.destination === "baa" && r.event === LISTED && r.decision === "direct"));
    // Exactly one listed track per destination that takes it: the look-alikes are not counted under it.
    for (const d of ["seg", "other", "amp", "baa", "down"]) {
      const n = body.ledger.filter((r) => r.destination === d && r.event === LISTED && r.decision === "received").reduce((k, r) => k + r.count, 0);
      assert.equal(n, 1, d);
    }
  });

  test("no planted value in any D1 row (LEDGER, DELIVERY_STATE), any report form, any log line", async () => {
    // The dead letters filed (their bodies are base64 inside the envelope: read apart below).
    const state = await worker.mf.getD1Database("DELIVERY_STATE");
    await until(async () => (await state.prepare("SELECT COUNT(*) AS n FROM dead_letters").first()).n > 0, "down's dead letters filed", 20_000);
    const forms = [];
    for (const f of ["json", "markdown", "html"]) forms.push((await report(worker, `${RANGE()}&format=${f}`)).text);
    const places = {
      report: forms.join("\n"), ledger: await dump(worker, "LEDGER"), state: await dump(worker, "DELIVERY_STATE"), logs: worker.logs.join("\n"),
      // A dead letter's envelope but its body: what it was, where, why, under which labels.
      envelopes: (await state.prepare("SELECT * FROM dead_letters").all()).results.map((row) => JSON.stringify({ ...row, envelope: { ...JSON.parse(row.envelope), body: null } })).join("\n"),
    };
    // The bodies themselves are what the policy sent to "down" (names under "*": "allow" included): decoded, they
    // hold the names, so the searches above and below would see a value that got into any other field.
    const bodies = (await state.prepare("SELECT envelope FROM dead_letters").all()).results.map((r) => Buffer.from(JSON.parse(r.envelope).body?.$bytes ?? "", "base64").toString("utf8")).join("\n");
    assert.ok(bodies.includes("HIV positive"), "the search would find a planted name where one is");
    assert.ok(places.envelopes.includes("\"ledger\""), "the envelope carries the body's labels");
    // Words of the planted values, as written and as JSON would escape them.
    const words = [...PHI, "Quickfeather", "HIV", "00482913", "Diabetes", "jane doe", "JANE DOE", "Gastroparesis", "\u0410ppointment", "Appointment\u200bBooked", "patient-1-zq", "jane.doe@clinic"];
    for (const [where, text] of Object.entries(places)) {
      for (const w of words) {
        assert.ok(!text.includes(w), `${JSON.stringify(w)} in ${where}`);
        assert.ok(!text.toLowerCase().includes(w.toLowerCase()), `${JSON.stringify(w)} (any case) in ${where}`);
      }
    }
  });

  test("the inventory shows where unnamed keys are, hostile keys as [key], never one of them", async () => {
    const { body } = await report(worker);
    const paths = body.inventory.map((p) => p.path);
    for (const p of paths) {
      assert.ok(p.length <= 256, `a path of ${p.length} characters`);
      assert.ok(!/[|<>\n\r\u0000]/.test(p), `markup or a line break in ${JSON.stringify(p)}`);
    }
    for (const p of ["properties.[key]", "properties.nested", "properties.list", "context.traits.[key]", "context.traits.email", "traits.[key]"]) assert.ok(paths.includes(p), `${p} in ${JSON.stringify(paths)}`);
    assert.ok(paths.includes("[key]"), `a top-level unknown key as [key]: ${JSON.stringify(paths)}`);
    assert.ok(!paths.some((p) => p.startsWith("integrations")), "integrations has its fixed rule");
  });

  test("a key that is a number (an SSN, phone number, birth date or record number without separators) is shown as [key]", async () => {
    const keys = ["078051120", "5551234567", "19800101", "00482913", "MRN00482913", "dob_19840101"];
    const sent = await post(worker, [{ type: "track", event: LISTED, userId: "patient-digits", messageId: "m-digits", properties: Object.fromEntries(keys.map((k) => [k, 1])) }]);
    assert.equal(sent.status, 200, sent.text);
    let paths = [];
    await until(async () => (paths = (await report(worker)).body.inventory.map((p) => p.path)).length > 0 && (await report(worker)).body.reconciliation.every((c) => c.in_flight === 0), "the request counted", 20_000);
    const text = [await dump(worker, "LEDGER"), (await report(worker, `${RANGE()}&format=markdown`)).text].join("\n");
    for (const k of keys) assert.ok(!text.includes(k), `${k} in the ledger or the report: ${JSON.stringify(paths.filter((p) => p.includes(k)))}`);
    assert.ok(paths.includes("properties.[key]"), "shown where they arrived, as [key]");
  });

  test("a policy with no events map: no event name is written at all", async () => {
    const sent = await post(noMap, [...PHI.map((name, i) => event(i, { event: name })), event(99, { event: LISTED })]);
    assert.equal(sent.status, 200, sent.text);
    const body = await settled(noMap, (r) => r.reconciliation.length === 2 && r.reconciliation.every((c) => c.received === PHI.length + 1));
    balances(body);
    assert.deepEqual([...new Set(body.ledger.map((r) => r.event))], [null]);
    const text = [await dump(noMap, "LEDGER"), await dump(noMap, "DELIVERY_STATE"), noMap.logs.join("\n"), (await report(noMap, `${RANGE()}&format=markdown`)).text].join("\n");
    for (const w of PHI) assert.ok(!text.includes(w), w);
  });

  test("the unrestricted destination got the planted names unchanged (the defence above is the ledger's, not the delivery's)", async () => {
    // Sanity for the attack: the values did travel, so their absence above means something.
    const names = (fakes.received.baa ?? []).map((e) => e.event);
    for (const w of PHI) assert.ok(names.includes(w), w);
  });
});

// ---------------------------------------------------------------------------
// 2. Counts that lie
// ---------------------------------------------------------------------------

describe("evidence attacks: counts stay exact under concurrency, partial refusals, splits, retries and racing replays", () => {
  let fakes;
  let built;
  let worker;
  let amp;

  before(async () => {
    fakes = await startFakes(await freePort(), { quiet: true });
    amp = await amplitudeRefusingSome();
    built = await bundle({
      version: 1, environment: "counts", hipaa: true,
      allowlists: { event_properties: { plan: "allow" } },
      events: { Booked: "allow", "*": "allow" },
      destinations: {
        seg: { connection: "server-side", endpoint: `${fakes.url}/seg` },
        amp: { connection: "server-side", format: "amplitude", endpoint: amp.url },
        mix: { connection: "server-side", format: "mixpanel", endpoint: `${fakes.url}/mix/import` },
        ga: { connection: "server-side", format: "ga4", endpoint: `${fakes.url}/ga/mp/collect` },
      },
    });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY, ...CREDENTIALS }, { maxRetries: 1 });
  });
  after(async () => {
    await worker?.mf.dispose();
    built?.cleanup();
    await fakes?.close();
    await amp?.close();
  });

  test("50 parallel requests (some refused whole), Amplitude and Mixpanel refusing part of a body, GA4 split in windows with some of a pack's bodies refused: balanced, delivered = what each fake took", async () => {
    let accepted = 0;
    // GA4's first three bodies refused: inside packs whose other bodies are taken.
    fakes.fail("ga", 3, 400);
    const jobs = Array.from({ length: 50 }, (_, r) => {
      if (r % 10 === 3) return post(worker, [], { key: "wk_wrong" }).then((x) => assert.equal(x.status, 401));
      if (r % 10 === 7) return post(worker, [], { body: '{"batch":[' }).then((x) => assert.equal(x.status, 400));
      const events = Array.from({ length: 6 }, (_, k) => ({
        type: "track", event: k % 2 ? "Booked" : "Other", messageId: `c-${r}-${k}`, timestamp: AT,
        // One user per request (one GA4 client); Amplitude refuses the events marked so inside a body it otherwise takes.
        userId: `user-${r}`, anonymousId: `anon-${r}`, properties: { plan: r % 4 === 1 && k === 2 ? "refuse" : "gold" },
      }));
      // Mixpanel refuses an event two hours ahead (failed_records) and imports the rest of its body.
      if (r % 5 === 1) events.push({ type: "track", event: "Booked", messageId: `c-${r}-future`, userId: `user-${r}`, timestamp: new Date(Date.now() + 2 * 3_600_000).toISOString() });
      accepted += events.length;
      return post(worker, events).then((x) => assert.equal(x.status, 200, x.text));
    });
    await Promise.all(jobs);
    // GA4: one user with 60 events: more than one 25-event window.
    const many = Array.from({ length: 60 }, (_, k) => ({ type: "track", event: "Booked", messageId: `w-${k}`, timestamp: AT, anonymousId: "anon-window", userId: "user-window" }));
    assert.equal((await post(worker, many)).status, 200);
    accepted += 60;
    const body = await settled(worker, (b) => b.reconciliation.length === 4 && b.reconciliation.every((c) => c.received === accepted) && b.refused_requests.reduce((n, x) => n + x.requests, 0) === 10, "every outcome and refusal counted", 60_000);
    balances(body);
    const took = (name) => (fakes.received[name] ?? []).length;
    assert.ok(amp.refusedBodies > 0, "Amplitude refused part of some bodies");
    assert.equal(line(body, "amp").delivered, amp.took.length, `amp: ${JSON.stringify(line(body, "amp"))}`);
    assert.ok(line(body, "amp").failed + line(body, "amp").dead_lettered > 0, JSON.stringify(line(body, "amp")));
    for (const [d, name] of [["seg", "seg"], ["mix", "mix"], ["ga", "ga"]]) {
      assert.equal(line(body, d).delivered, took(name), `${d}: delivered ${line(body, d).delivered}, the fake took ${took(name)}`);
    }
    // Mixpanel took the rest of the bodies it refused part of: the refused ones are failed, not delivered.
    const mixFailed = line(body, "mix").failed + line(body, "mix").dead_lettered;
    assert.ok(line(body, "ga").dead_lettered + line(body, "ga").failed >= 3, `GA4's refused bodies: ${JSON.stringify(line(body, "ga"))}`);
    assert.ok(mixFailed >= 5, `Mixpanel refused the future events: ${JSON.stringify(line(body, "mix"))}`);
    const refused = Object.fromEntries(body.refused_requests.map((x) => [x.reason, x.requests]));
    assert.equal(Object.values(refused).reduce((n, c) => n + c, 0), 10, JSON.stringify(refused));
  });

  test("a replay racing a replay re-queues each dead letter once; delivered still equals what the fake took", async () => {
    const before = (fakes.received.seg ?? []).length;
    fakes.outage("seg", 400);
    const events = Array.from({ length: 3 }, (_, k) => ({ type: "track", event: "Booked", messageId: `race-${k}`, userId: `race-user-${k}`, timestamp: AT }));
    assert.equal((await post(worker, events)).status, 200);
    const letters = async () => (await (await worker.mf.dispatchFetch("http://edge.test/dead-letters?destination=seg", { headers: { Authorization: `Bearer ${OPERATOR_KEY}` } })).json()).deadLetters ?? [];
    await until(async () => (await letters()).length >= 1, "seg's dead letter filed", 30_000);
    fakes.outage("seg", null);
    const replay = () => worker.mf.dispatchFetch("http://edge.test/dead-letters/replay", { method: "POST", headers: { Authorization: `Bearer ${OPERATOR_KEY}`, "Content-Type": "application/json" }, body: JSON.stringify({ destination: "seg" }) }).then(async (r) => ({ status: r.status, body: await r.json() }));
    const answers = await Promise.all([replay(), replay(), replay()]);
    for (const a of answers) assert.ok([200, 409].includes(a.status), JSON.stringify(a));
    await until(() => (fakes.received.seg ?? []).length >= before + 3, "the replay delivered", 30_000);
    const body = await settled(worker, (b) => line(b, "seg").delivered === (fakes.received.seg ?? []).length);
    balances(body);
    assert.equal((fakes.received.seg ?? []).length, before + 3, "each event delivered once by the replays");
    assert.equal(line(body, "seg").dead_lettered, 0, JSON.stringify(line(body, "seg")));
    assert.equal(line(body, "seg").replayed, 3);
  });

  test("ledger messages replayed by a hostile queue producer (duplicated ids, forged counts) cannot move a balanced line", async () => {
    const queue = await worker.mf.getQueueProducer("DELIVERY", "phimask");
    const before = await settled(worker);
    // A ledger message given many times at once (as a queue may), with one id.
    const message = { kind: "ledger", id: "attack-dup", day: today(), environment: "counts", policy: "b".repeat(64), rows: [["seg", "track", "", "received", "", 2], ["seg", "track", "", "not_sent", "routing", 2]], inventory: [] };
    await Promise.all(Array.from({ length: 20 }, () => queue.send(message, { contentType: "v8" })));
    // Counts no real message holds: past 2^53, infinite, a fraction, negative.
    await queue.send({ ...message, id: "attack-forged", rows: [["seg", "track", "", "received", "", 2 ** 53], ["seg", "track", "", "received", "", Infinity], ["seg", "track", "", "delivered", "", 0.5], ["seg", "track", "", "delivered", "", -4]] }, { contentType: "v8" });
    await settled(worker, (b) => line(b, "seg").received === line(before, "seg").received + 2, "the one copy counted", 20_000);
    // Given time for any further copy to be (wrongly) counted.
    await new Promise((r) => setTimeout(r, 1500));
    const again = (await report(worker)).body;
    assert.equal(line(again, "seg").received, line(before, "seg").received + 2, "twenty copies, counted once");
    assert.equal(line(again, "seg").delivered, line(before, "seg").delivered);
    balances(again);
  });
  test("more outcomes than events sent (a body delivered twice) is shown unbalanced in every form, never hidden", async () => {
    const queue = await worker.mf.getQueueProducer("DELIVERY", "phimask");
    const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    await queue.send({ kind: "ledger", id: "attack-twice", day, environment: "counts", policy: "c".repeat(64), rows: [["seg", "track", "", "received", "", 2], ["seg", "track", "", "queued", "", 2], ["seg", "track", "", "delivered", "", 3]], inventory: [] }, { contentType: "v8" });
    const range = `from=${day}&to=${day}`;
    await until(async () => (await report(worker, range)).body.reconciliation.length === 1, "the counts written", 20_000);
    const { body } = await report(worker, range);
    assert.deepEqual([line(body, "seg").in_flight, line(body, "seg").balanced], [-1, false]);
    // Bold, as the report means it (not escaped into the text "\*\*NO\*\*").
    assert.match((await report(worker, `${range}&format=markdown`)).text, /\| seg \| 2 \| 3 \| 0 \| 0 \| 0 \| -1 \| \*\*NO\*\* \|/);
    assert.match((await report(worker, `${range}&format=html`)).text, /<td class="no">NO<\/td>/);
  });
});

describe("evidence attacks: a request refused 503 half-queued, then sent again, is counted once", () => {
  let fakes;
  let built;
  let worker;
  before(async () => {
    fakes = await startFakes(await freePort(), { quiet: true });
    built = await bundle({
      version: 1, environment: "retry", hipaa: true,
      allowlists: { event_properties: { plan: "allow" } },
      events: { Booked: "allow", "*": "drop" },
      destinations: { seg: { connection: "server-side", endpoint: `${fakes.url}/seg` } },
    });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY }, { refusingQueue: "second" });
  });
  after(async () => {
    await worker?.mf.dispose();
    built?.cleanup();
    await fakes?.close();
  });

  test("the first sendBatch call taken, the second refused: 503; the retry's events are received, queued and delivered once", async () => {
    // Ten events of 30 KB: three bodies, two sendBatch calls.
    const events = Array.from({ length: 10 }, (_, i) => ({ type: "track", event: "Booked", userId: "u-retry", messageId: `r-${i}`, properties: { plan: "p".repeat(30_000) } }));
    const first = await post(worker, events);
    assert.equal(first.status, 503, first.text);
    assert.equal(first.body.code, "queue_unavailable");
    const again = await post(worker, events);
    assert.equal(again.status, 200, again.text);
    const calls = await worker.calls();
    assert.ok(calls.length >= 4 && calls[0] > 0, `sendBatch calls: ${JSON.stringify(calls)}`);
    // Past the hold: the first try's queued messages are seen (and dropped) by now.
    await until(() => (fakes.received.seg ?? []).length >= 10, "the retry delivered", 40_000);
    const body = await settled(worker, (b) => line(b, "seg")?.delivered === 10, "the retry counted", 40_000);
    await new Promise((r) => setTimeout(r, 12_000));
    const last = (await report(worker)).body;
    balances(last);
    assert.deepEqual([line(last, "seg").received, line(last, "seg").queued, line(last, "seg").delivered], [10, 10, 10], JSON.stringify(line(last, "seg")));
    assert.equal((fakes.received.seg ?? []).length, 10, "each event delivered once");
    assert.deepEqual(last.refused_requests.map((r) => [r.reason, r.requests]), [["queue_unavailable", 1]]);
    void body;
  });
});

describe("evidence attacks: a refused request whose counts were partly queued counts nothing", () => {
  let fakes;
  let built;
  let worker;
  // 170 long listed names: the bodies (with their labels) and the first
  // of the counts' two ledger messages fill the first sendBatch call; the
  // second ledger message goes in the second.
  const NAMES = Array.from({ length: 170 }, (_, i) => `Listed Event ${String(i).padStart(4, "0")} ${"n".repeat(175)}`);
  before(async () => {
    fakes = await startFakes(await freePort(), { quiet: true });
    built = await bundle({ version: 1, environment: "voided", hipaa: true, events: { ...Object.fromEntries(NAMES.map((n) => [n, "allow"])), "*": "drop" }, destinations: { seg: { connection: "server-side", endpoint: `${fakes.url}/seg` } } });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY }, { refusingQueue: "second" });
  });
  after(async () => {
    await worker?.mf.dispose();
    built?.cleanup();
    await fakes?.close();
  });

  test("the first call (bodies and ledger messages) taken, the second refused: its ledger messages are dropped with its bodies; the retry is counted once", async () => {
    const events = NAMES.map((event, i) => ({ type: "track", event, userId: "u-voided", messageId: `v-${i}` }));
    const first = await post(worker, events);
    assert.equal(first.status, 503, first.text);
    const again = await post(worker, events);
    assert.equal(again.status, 200, again.text);
    await until(() => (fakes.received.seg ?? []).length >= NAMES.length, "the retry delivered", 40_000);
    await settled(worker, (b) => line(b, "seg")?.delivered === NAMES.length, "the retry counted", 40_000);
    // Past the hold of the first try's messages: they are seen, and dropped, by now.
    await new Promise((r) => setTimeout(r, 12_000));
    const last = (await report(worker)).body;
    balances(last);
    assert.deepEqual([line(last, "seg").received, line(last, "seg").queued, line(last, "seg").delivered], [NAMES.length, NAMES.length, NAMES.length], JSON.stringify(line(last, "seg")));
    assert.equal((fakes.received.seg ?? []).length, NAMES.length);
  });
});

// ---------------------------------------------------------------------------
// 3. The route
// ---------------------------------------------------------------------------

describe("evidence attacks: GET /evidence's route, bent", () => {
  let built;
  let worker;
  before(async () => {
    built = await bundle({ version: 1, environment: "route", hipaa: true, events: { "*": "drop" }, destinations: { seg: { connection: "server-side", endpoint: "http://127.0.0.1:9/seg" } } });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY });
  });
  after(async () => {
    await worker?.mf.dispose();
    built?.cleanup();
  });

  test("auth: the bearer scheme in any case is the scheme; anything else, two headers, or the key elsewhere is refused and never echoed", async () => {
    for (const auth of [`Bearer ${OPERATOR_KEY}`, `bearer ${OPERATOR_KEY}`, `BEARER ${OPERATOR_KEY}`, `Bearer   ${OPERATOR_KEY}  `]) {
      assert.equal((await report(worker, RANGE(), { Authorization: auth })).status, 200, auth);
    }
    const refused = [
      [{ Authorization: `Bearer ${OPERATOR_KEY} ${OPERATOR_KEY}` }],
      [{ Authorization: `Bearer ${OPERATOR_KEY},Bearer x` }],
      [{ Authorization: `Bearer${OPERATOR_KEY}` }],
      [{ Authorization: `Basic ${OPERATOR_KEY}` }],
      [{ Authorization: `Token ${OPERATOR_KEY}` }],
      [{ Authorization: OPERATOR_KEY }],
      [{ Authorization: `Bearer ${OPERATOR_KEY.toUpperCase()}` }],
      [{ Authorization: `Bearer ${OPERATOR_KEY.slice(0, -1)}` }],
      [{ "X-Operator-Key": OPERATOR_KEY }],
      [{ Cookie: `operator=${OPERATOR_KEY}` }],
      [{}, `${RANGE()}&key=${OPERATOR_KEY}`],
      [{}, `${RANGE()}&authorization=Bearer%20${OPERATOR_KEY}`],
    ];
    for (const [headers, query] of refused) {
      const r = await report(worker, query ?? RANGE(), headers);
      assert.equal(r.status, 401, JSON.stringify(headers) + query);
      assert.equal(r.body.code, "invalid_operator_key");
      assert.ok(!r.text.includes(OPERATOR_KEY) && !r.text.includes(OPERATOR_KEY.slice(0, 12)), "the key is never echoed");
    }
    // Two Authorization headers, one right: joined, they are not one bearer token.
    const h = new Headers();
    h.append("Authorization", "Bearer wrong-key-0123456789abcdef0123456789");
    h.append("Authorization", `Bearer ${OPERATOR_KEY}`);
    assert.equal((await report(worker, RANGE(), h)).status, 401);
    const h2 = new Headers();
    h2.append("Authorization", `Bearer ${OPERATOR_KEY}`);
    h2.append("Authorization", `Bearer ${OPERATOR_KEY}`);
    assert.equal((await report(worker, RANGE(), h2)).status, 401);
    // No key in any log line.
    assert.ok(!worker.logs.join("\n").includes(OPERATOR_KEY));
  });

  test("smuggled parameters, huge and far ranges: refused with a code, never echoed; far ranges answer an empty report", async () => {
    const cases = [
      [`from=${today()}%26to=${today()}&to=${today()}`, "invalid_from"],
      [`from=${today()};to=${today()}&to=${today()}`, "invalid_from"],
      [`from=${today()}&to=${today()}&format=json%26format=html`, "invalid_format"],
      [`from=${encodeURIComponent("２０２６-01-01")}&to=${today()}`, "invalid_from"],
      [`from=${encodeURIComponent("٢٠٢٦-01-01")}&to=${today()}`, "invalid_from"],
      [`from=+${today()}&to=${today()}`, "invalid_from"],
      [`from=${today()}+&to=${today()}`, "invalid_from"],
      [`from=${today()}%00&to=${today()}`, "invalid_from"],
      [`from=0000-01-01&to=0000-12-31`, "invalid_from"],
      [`from=0001-01-01&to=9999-12-31`, "invalid_from"],
      [`from=1000-01-01&to=9999-12-31`, "invalid_range"],
      [`from=-002026-01-01&to=${today()}`, "invalid_from"],
      [`from=+202026-01-01&to=${today()}`, "invalid_from"],
      [`from=2026-01-01T00:00:00Z&to=${today()}`, "invalid_from"],
      [`FROM=${today()}&to=${today()}`, "invalid_parameter"],
      [`from=${today()}&to=${today()}&format=`, "invalid_format"],
      [`from=${today()}&to=${today()}&format=%68tml%00`, "invalid_format"],
      [`from=${today()}&to=${today()}&__proto__=x`, "invalid_parameter"],
      [`from=${today()}&to=${today()}&${"p".repeat(8000)}=1`, "invalid_parameter"],
      [`from=2024-01-01&to=2025-01-01`, "invalid_range"],
    ];
    for (const [query, code] of cases) {
      const r = await report(worker, query);
      assert.equal(r.status, 400, query);
      assert.equal(r.body.code, code, query);
      assert.ok(!r.text.includes("ppppp") && !r.text.includes("２０２６") && !r.text.includes("__proto__"), query);
    }
    for (const query of ["from=1970-01-01&to=1970-12-31", "from=9999-01-01&to=9999-12-31", "from=2024-02-29&to=2025-02-28"]) {
      const r = await report(worker, query);
      assert.equal(r.status, 200, query);
      assert.deepEqual([r.body.ledger.length, r.body.inventory.length, r.body.reconciliation.length], [0, 0, 0], query);
    }
  });

  test("methods and path variants: only GET /evidence exactly; no CORS; nosniff, no-store, and a CSP on HTML", async () => {
    for (const method of ["HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"]) {
      const r = await report(worker, RANGE(), { Authorization: `Bearer ${OPERATOR_KEY}`, Origin: "https://evil.example", "Access-Control-Request-Method": "GET" }, method);
      assert.equal(r.status, 405, method);
      assert.equal(r.headers.get("access-control-allow-origin"), null, method);
      assert.equal(r.headers.get("access-control-allow-headers"), null, method);
    }
    // Without the key, a preflight learns nothing but 401.
    assert.equal((await report(worker, RANGE(), { Origin: "https://evil.example" }, "OPTIONS")).status, 401);
    for (const path of ["/evidence/", "/Evidence", "/EVIDENCE", "/evidence%2f", "/evidence%2F", "//evidence", "/evidence/.", "/v1/evidence", "/evidence.json", "/%65vidence", "/evidence;x"]) {
      const r = await report(worker, RANGE(), { Authorization: `Bearer ${OPERATOR_KEY}` }, "GET", path);
      const leaked = r.status === 200 && r.text.includes("phimask evidence");
      assert.ok(!leaked || path === "/%65vidence", `${path}: ${r.status}`);
      if (r.status !== 200) assert.ok(!r.text.includes("reconciliation"), path);
    }
    for (const format of ["json", "markdown", "html"]) {
      const r = await report(worker, `${RANGE()}&format=${format}`, { Authorization: `Bearer ${OPERATOR_KEY}`, Origin: "https://evil.example" });
      assert.equal(r.status, 200, format);
      assert.equal(r.headers.get("access-control-allow-origin"), null, format);
      assert.equal(r.headers.get("x-content-type-options"), "nosniff", format);
      assert.equal(r.headers.get("cache-control"), "no-store", format);
      if (format === "html") assert.equal(r.headers.get("content-security-policy"), "default-src 'none'; style-src 'unsafe-inline'");
    }
  });
});

// ---------------------------------------------------------------------------
// 4. Denial of service and cost
// ---------------------------------------------------------------------------

describe("evidence attacks: requests made to cost the ledger", () => {
  let fakes;
  let built;
  let worker;
  // A policy that lists 2,000 long names: every ledger row of a request carries one.
  const NAMES = Array.from({ length: 2000 }, (_, i) => `Listed Event ${String(i).padStart(4, "0")} ${"n".repeat(150)}`);
  before(async () => {
    fakes = await startFakes(await freePort(), { quiet: true });
    built = await bundle({
      version: 1, environment: "cost", hipaa: true,
      events: { ...Object.fromEntries(NAMES.map((n) => [n, "allow"])), "*": "drop" },
      destinations: { seg: { connection: "server-side", endpoint: `${fakes.url}/seg` }, lake: { connection: "server-side", format: "ndjson", endpoint: `${fakes.url}/lake` } },
    });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY }, { spy: true });
  });
  after(async () => {
    await worker?.mf.dispose();
    built?.cleanup();
    await fakes?.close();
  });

  test("2,000 distinct listed names in one request: every queue message under 128,000 bytes, every label counted", async () => {
    const events = NAMES.map((event, i) => ({ type: "track", event, userId: `u${i % 7}`, messageId: `n-${i}` }));
    const sent = await post(worker, events);
    assert.equal(sent.status, 200, sent.text);
    let messages = [];
    await until(async () => {
      messages = await worker.queued({ ledger: true });
      const rows = messages.filter((m) => m.kind === "ledger").flatMap((m) => m.rows);
      return rows.filter((r) => r[3] === "received").reduce((n, r) => n + r[5], 0) === 2 * NAMES.length;
    }, "every received row queued", 30_000);
    const ledgerMessages = messages.filter((m) => m.kind === "ledger");
    assert.ok(ledgerMessages.length > 1, "the counts are split over messages");
    for (const m of ledgerMessages) {
      const bytes = Buffer.byteLength(JSON.stringify(m));
      assert.ok(bytes < 128_000, `a ledger message of ${bytes} bytes`);
      assert.ok(new Set(m.rows.map((r) => r[2])).size > 0);
    }
    // Every name of the request is counted under its own label, for each destination.
    const received = new Map();
    for (const r of ledgerMessages.flatMap((m) => m.rows).filter((r) => r[3] === "received")) received.set(`${r[0]} ${r[2]}`, (received.get(`${r[0]} ${r[2]}`) ?? 0) + r[5]);
    assert.equal(received.size, 2 * NAMES.length);
    assert.ok([...received.values()].every((n) => n === 1));
  });

  test("a flood of refused requests: each is counted, none lost, whatever arrives while a write is in flight", async () => {
    const n = 300;
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => post(worker, [], i % 2 ? { key: "wk_flood_wrong" } : { body: "not json" })));
    assert.equal(answers.filter((a) => a.status === 401).length, n / 2);
    assert.equal(answers.filter((a) => a.status === 400).length, n / 2);
    await until(async () => (await report(worker)).body.refused_requests.reduce((k, r) => k + r.requests, 0) === n, `${n} refused requests counted`, 30_000);
    const rows = (await (await worker.mf.getD1Database("LEDGER")).prepare("SELECT COUNT(*) AS n FROM ledger WHERE destination = '*'").first()).n;
    assert.equal(rows, 2, "one row per call and reason, not per request");
  });

  test("the inventory of one request stays bounded: 10,000 distinct keys make at most 256 paths and [more paths]", async () => {
    // Four events of 2,500 keys each (an event is at most 32 KB): 10,000 distinct keys in one request.
    const events = Array.from({ length: 4 }, (_, e) => ({ type: "track", event: NAMES[0], userId: "u-keys", messageId: `keys-${e}`, properties: Object.fromEntries(Array.from({ length: 2500 }, (_, i) => [`k${e * 2500 + i}`, 1])) }));
    const sent = await post(worker, events);
    assert.equal(sent.status, 200, sent.text);
    let inventory = [];
    await until(async () => {
      inventory = (await worker.queued({ ledger: true })).filter((m) => m.kind === "ledger").flatMap((m) => m.inventory);
      return inventory.some((p) => p[0] === "[more paths]");
    }, "the request's inventory queued", 20_000);
    assert.ok(inventory.length <= 257, `${inventory.length} paths from one request`);
  });
});

describe("evidence attacks: the report over many requests", () => {
  let built;
  let worker;
  before(async () => {
    built = await bundle({ version: 1, environment: "bounded", hipaa: true, events: { "*": "drop" }, destinations: { seg: { connection: "server-side", endpoint: "http://127.0.0.1:9/seg" } } });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, OPERATOR_KEY });
  });
  after(async () => {
    await worker?.mf.dispose();
    built?.cleanup();
  });

  test("a sender with a (public, browser) write key cannot grow the ledger or the report without bound through fresh field names", async () => {
    // Twenty requests at once, each with 256 fresh keys: 5,120 distinct paths in a day.
    const requests = 20;
    const answers = await Promise.all(Array.from({ length: requests }, (_, r) => {
      const properties = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`f${r}_${i}`, 1]));
      return post(worker, [{ type: "track", event: "x", userId: `u${r}`, messageId: `b-${r}`, properties }]);
    }));
    for (const a of answers) assert.equal(a.status, 200, a.text);
    const body = await settled(worker, (b) => line(b, "seg")?.received === requests, "every request counted");
    const db = await worker.mf.getD1Database("LEDGER");
    const stored = (await db.prepare("SELECT COUNT(*) AS n, SUM(count) AS events FROM inventory WHERE environment = 'bounded'").first());
    // A bound the operator can rely on, whatever senders invent; nothing is lost: the rest is counted under [more paths].
    assert.ok(stored.n <= 1000, `${stored.n} inventory rows for one day`);
    assert.equal(stored.events, requests * 256, "every path's count kept, the rest under [more paths]");
    assert.ok(body.inventory.length <= 1000, `${body.inventory.length} inventory paths in one day's report`);
    assert.ok(body.inventory.some((p) => p.path === "[more paths]" && p.count > 0), "the paths beyond the bound are counted");
    const md = (await report(worker, `${RANGE()}&format=markdown`)).text;
    assert.ok(md.length < 200_000, `a Markdown report of ${md.length} characters`);
  });
});
