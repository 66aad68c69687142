// A request's fan-out is packed and bounded: a valid batch of thousands
// of distinct users (GA4 takes one user per body) becomes thousands of
// bodies, which share queue messages (packs of up to 50 bodies of one
// destination), so it is queued in a few hundred messages and delivered
// whole. Above the bounds (500 queue messages, 20,000 bodies, 500 direct
// deliveries per request) the request is refused with 413, nothing
// queued and nothing sent; at them exactly, it is taken. The bundled
// Worker in workerd, and under `wrangler dev` (whose local queue broker
// such a request once brought down), against the local fakes of the
// destinations' APIs.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FAKE_CREDENTIALS, startFakes } from "../../www/dev/fakes.mjs";
import { bundle, freePort, startWorker, startWranglerDev, until } from "./worker-harness.mjs";

const KEY = "fan-out-test-masking-key-0123456789abcdef";
const WRITE_KEY = "wk_fan_out";
const GA4_CREDENTIAL = `${FAKE_CREDENTIALS.ga4.measurement_id}:${FAKE_CREDENTIALS.ga4.api_secret}`;
const MAX_REQUEST_MESSAGES = 500;
const MAX_REQUEST_BODIES = 20_000;
const BASIC = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`;

// Each visitor a distinct anonymous ID, one page each: GA4 gets one body
// per visitor. 10,000 of them make a batch just under the 512,000-byte limit.
const visitors = (n, tag) => Array.from({ length: n }, (_, i) => ({ type: "page", anonymousId: `${tag}-${String(i).padStart(6, "0")}` }));
const FLOOD_TAG = "web-visitor";

const logsOf = (logs, kind) => logs.filter((l) => l.includes(`"phimask":"${kind}"`)).map((l) => JSON.parse(l));
const ga4Requests = (fakes, name = "ga4") => fakes.requests.filter((r) => r.name === name);

describe("a batch of 10,000 distinct users is packed, queued and delivered whole", () => {
  let fakes;
  let built;
  let worker;

  before(async () => {
    fakes = await startFakes(await freePort(), { quiet: true });
    const policy = {
      version: 1, environment: "fan-out-test", hipaa: true,
      events: { Viewed: "allow", "*": "drop" },
      destinations: {
        ga4: { connection: "server-side", format: "ga4", endpoint: `${fakes.url}/ga4/mp/collect` },
        warehouse: { connection: "server-side", endpoint: `${fakes.url}/warehouse` },
      },
    };
    built = await bundle(policy);
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, AUTH_GA4: GA4_CREDENTIAL });
  });

  after(async () => {
    await worker?.mf.dispose();
    await fakes?.close();
    built?.cleanup();
  });

  const post = async (events) => {
    const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
      method: "POST",
      headers: { Authorization: BASIC, "Content-Type": "application/json" },
      body: JSON.stringify({ batch: events }),
    });
    return { status: res.status, body: await res.json() };
  };

  test("10,000 visitors (~500 KB): 200; GA4 gets exactly 10,000 bodies, each visitor's event once; at most 500 messages", async () => {
    const flood = visitors(10_000, FLOOD_TAG);
    const size = JSON.stringify({ batch: flood }).length;
    assert.ok(size > 490_000 && size < 512_000, `${size} bytes: a valid batch by size, near the limit`);
    const res = await post(flood);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const [line] = logsOf(worker.logs, "request");
    assert.ok(line.messages <= MAX_REQUEST_MESSAGES, `${line.messages} queue messages`);
    // GA4's 10,000 bodies in packs of 50, and the warehouse's few.
    assert.ok(line.messages >= 200 && line.messages < 220, `${line.messages} queue messages`);
    await until(() => ga4Requests(fakes).length >= 10_000, "10,000 GA4 bodies", 180_000);
    await until(() => (fakes.received.warehouse ?? []).length >= 10_000, "the warehouse's events", 60_000);
    // Nothing more arrives: every message was consumed once.
    const packs = () => logsOf(worker.logs, "pack consumed").filter((l) => l.destination === "ga4");
    await until(() => packs().reduce((n, l) => n + l.delivered, 0) === 10_000, "every GA4 pack consumed");
    assert.equal(ga4Requests(fakes).length, 10_000, "exactly one GA4 body per visitor");
    const clients = fakes.received.ga4.map((e) => e.client_id);
    assert.equal(clients.length, 10_000);
    assert.equal(new Set(clients).size, 10_000, "each visitor's event once");
    assert.equal(fakes.received.warehouse.length, 10_000, "the warehouse: each event once");
    assert.ok(packs().length <= MAX_REQUEST_MESSAGES, `${packs().length} GA4 packs consumed`);
    assert.ok(packs().every((l) => l.parts <= 50 && l.attempt === 1));
    assert.deepEqual(fakes.problems, {}, "every GA4 body follows its API's rules");
    const logs = worker.logs.join("\n");
    assert.ok(!logs.includes(FLOOD_TAG), "no log holds a value");
  });
});

describe("above the fan-out bounds: 413, nothing queued, nothing sent", () => {
  let fakes;
  const started = [];

  before(async () => {
    fakes = await startFakes(await freePort(), { quiet: true });
  });

  after(async () => {
    for (const { worker, built } of started) {
      // A test may have disposed of its worker already.
      await worker.mf.dispose().catch(() => {});
      built.cleanup();
    }
    await fakes?.close();
  });

  const start = async (destinations, bindings = {}) => {
    const policy = { version: 1, environment: "fan-out-bounds", hipaa: true, events: { "*": "allow" }, destinations };
    const built = await bundle(policy);
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, ...bindings });
    started.push({ worker, built });
    const post = async (events) => {
      const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
        method: "POST",
        headers: { Authorization: BASIC, "Content-Type": "application/json" },
        body: JSON.stringify({ batch: events }),
      });
      return { status: res.status, body: await res.json() };
    };
    return { worker, post };
  };
  const refusedWith = (res, code, limit) => {
    assert.equal(res.status, 413, JSON.stringify(res.body));
    assert.equal(res.body.success, false);
    assert.equal(res.body.code, code);
    assert.ok(res.body.error.includes(String(limit)), res.body.error);
    assert.ok(!JSON.stringify(res.body).includes("-000"), "the answer echoes no value");
  };

  test("three GA4 destinations x 7,000 visitors = 21,000 bodies: too_many_bodies, nothing sent", async () => {
    const names = ["ga4a", "ga4b", "ga4c"];
    const { worker, post } = await start(
      Object.fromEntries(names.map((n) => [n, { connection: "server-side", format: "ga4", endpoint: `${fakes.url}/${n}/mp/collect` }])),
      Object.fromEntries(names.map((n) => [`AUTH_${n.toUpperCase()}`, GA4_CREDENTIAL])),
    );
    const before = fakes.requests.length;
    const res = await post(visitors(7_000, "many"));
    refusedWith(res, "too_many_bodies", MAX_REQUEST_BODIES);
    assert.match(res.body.error, /fewer distinct users/);
    assert.equal(logsOf(worker.logs, "request").length, 0, "nothing queued");
    // A sentinel after it: once it has arrived, anything queued before it would have too.
    assert.equal((await post(visitors(1, "sentinel"))).status, 200);
    await until(() => names.every((n) => ga4Requests(fakes, n).length >= 1), "the sentinel's bodies");
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(fakes.requests.length - before, 3, "only the sentinel's three bodies");
  });

  test("501 destinations: 501 queue messages for one event: too_many_messages", async () => {
    const destinations = Object.fromEntries(Array.from({ length: MAX_REQUEST_MESSAGES + 1 }, (_, i) => [`s${i}`, { connection: "server-side", endpoint: `${fakes.url}/s${i}` }]));
    const { worker, post } = await start(destinations);
    const before = fakes.requests.length;
    refusedWith(await post(visitors(1, "one")), "too_many_messages", MAX_REQUEST_MESSAGES);
    assert.equal(logsOf(worker.logs, "request").length, 0, "nothing queued");
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(fakes.requests.length - before, 0, "nothing sent");
  });

  test("a BAA destination without QUEUE_ENCRYPTION_KEY: 501 visitors are 501 direct deliveries: too_many_messages; 500 are sent", async () => {
    const { worker, post } = await start(
      { direct: { connection: "server-side", format: "ga4", baa: true, restrict_phi: false, endpoint: `${fakes.url}/direct/mp/collect` } },
      { AUTH_DIRECT: GA4_CREDENTIAL },
    );
    const before = ga4Requests(fakes, "direct").length;
    refusedWith(await post(visitors(501, "direct")), "too_many_messages", 500);
    assert.equal(logsOf(worker.logs, "request").length, 0);
    const ok = await post(visitors(500, "direct-ok"));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    await until(() => ga4Requests(fakes, "direct").length - before === 500, "the 500 direct bodies", 60_000);
    assert.equal(logsOf(worker.logs, "request")[0].direct, 500);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(ga4Requests(fakes, "direct").length - before, 500, "nothing of the refused request");
  });

  // Last of these: its workers are disposed as soon as they have answered,
  // so nothing of them reaches the fakes while another test counts.
  test("at the bounds exactly: 20,000 bodies (two GA4 destinations x 10,000 visitors) and 500 queue messages are taken", async () => {
    const names = ["ga4x", "ga4y"];
    const bodies = await start(
      Object.fromEntries(names.map((n) => [n, { connection: "server-side", format: "ga4", endpoint: `${fakes.url}/${n}/mp/collect` }])),
      Object.fromEntries(names.map((n) => [`AUTH_${n.toUpperCase()}`, GA4_CREDENTIAL])),
    );
    const atBodies = await bodies.post(visitors(MAX_REQUEST_BODIES / names.length, "at-bodies"));
    await bodies.worker.mf.dispose();
    assert.equal(atBodies.status, 200, JSON.stringify(atBodies.body));
    const destinations = Object.fromEntries(Array.from({ length: MAX_REQUEST_MESSAGES }, (_, i) => [`m${i}`, { connection: "server-side", endpoint: `${fakes.url}/m${i}` }]));
    const messages = await start(destinations);
    const atMessages = await messages.post(visitors(1, "at-messages"));
    assert.equal(atMessages.status, 200, JSON.stringify(atMessages.body));
    // Its log line (longer than a chunk of the Worker's output: matched whole) counts 500 messages.
    assert.match(messages.worker.logs.join(""), /"phimask":"request","call":"batch","accepted":1,"rejected":0,"messages":500,/);
    await messages.worker.mf.dispose();
  });
});

describe("under wrangler dev, a batch of 10,000 distinct users is delivered whole and /health keeps answering", () => {
  let fakes;
  let dev;

  before(async () => {
    fakes = await startFakes(await freePort(), { quiet: true });
    const policy = {
      version: 1, environment: "fan-out-dev", hipaa: true,
      events: { "*": "allow" },
      destinations: { ga4: { connection: "server-side", format: "ga4", endpoint: `${fakes.url}/ga4/mp/collect` } },
    };
    // Its messages take more than one sendBatch call: held, and checked
    // against DELIVERY_STATE's tables, as under `make run`.
    dev = await startWranglerDev(policy, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, AUTH_GA4: GA4_CREDENTIAL }, { migrate: true });
  });

  after(async () => {
    await dev?.stop();
    await fakes?.close();
  });

  test("10,000 visitors: 200; /health answers while they are delivered and after; each arrives once", async () => {
    const res = await fetch(`${dev.url}/v1/batch`, {
      method: "POST",
      headers: { Authorization: BASIC, "Content-Type": "application/json" },
      body: JSON.stringify({ batch: visitors(10_000, FLOOD_TAG) }),
    });
    assert.equal(res.status, 200, await res.text());
    // /health asked every half second while the bodies go out.
    let during = 0;
    let asked = 0;
    await until(async () => {
      if (ga4Requests(fakes).length < 10_000 && Date.now() - asked > 500) {
        asked = Date.now();
        // Slow while the one local runtime also sends 10,000 bodies on a
        // busy machine, but answering: it once hung until a restart.
        const health = await fetch(`${dev.url}/health`, { signal: AbortSignal.timeout(30_000) }).catch((e) => {
          throw new Error(`/health did not answer within 30 s while the bodies were delivered: ${e?.name}: ${e?.message}`);
        });
        assert.equal(health.status, 200);
        await health.arrayBuffer();
        if (ga4Requests(fakes).length > 0 && ga4Requests(fakes).length < 10_000) during += 1;
      }
      return ga4Requests(fakes).length >= 10_000;
    }, "10,000 GA4 bodies", 180_000);
    assert.ok(during >= 1, "/health answered while the bodies were being delivered");
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(ga4Requests(fakes).length, 10_000, "each visitor's body once");
    assert.equal(new Set(fakes.received.ga4.map((e) => e.client_id)).size, 10_000);
    assert.equal((await fetch(`${dev.url}/health`)).status, 200);
  });
});
