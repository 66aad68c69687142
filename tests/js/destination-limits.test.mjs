// Every body each destination receives, in its own API's format, within
// the limits that API documents and within a queue message: the
// development policy's destinations (Amplitude, Mixpanel, GA4, PostHog,
// a Segment-batch warehouse, and ads, gated on consent none of these
// events gives) pointed at the local fakes of their
// APIs, the Worker in workerd with its local queues, one request of
// thousands of small events, hostile ones among them.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { FAKE_CREDENTIALS, startFakes } from "../../www/dev/fakes.mjs";
import { Sanitizer } from "../../www/dev/node.mjs";
import { bundle, freePort, root, startWorker, until } from "./worker-harness.mjs";

const KEY = "destination-limits-masking-key-0123456789";
const WRITE_KEY = "wk_limits";
const QUEUE_KEY = Buffer.alloc(32, 9).toString("base64");
// A queue message holds at most 128 KB (Cloudflare Queues; Miniflare
// enforces 128,000 bytes), and every body here is queued.
const QUEUE_MESSAGE_BYTES = 128_000;
// What each API documents for one request (the fakes answer as the APIs do):
// Amplitude HTTP V2: at most 2,000 events, under 1 MB; Mixpanel /import:
// at most 2,000 events and 2 MB uncompressed (its older, stricter figure;
// 10 MB today); GA4 Measurement Protocol: at most 25 events, under 130 kB;
// Segment's batch API: at most 500 KB. PostHog's /batch/ takes far more
// than a queue message.
const LIMITS = {
  amplitude: { events: 2000, bytes: 1_000_000 },
  mixpanel: { events: 2000, bytes: 2_000_000 },
  ga4: { events: 25, bytes: 130_000 - 1 },
  posthog: { events: Infinity, bytes: Infinity },
  warehouse: { events: Infinity, bytes: 500 * 1024 },
  // A Segment batch too, gated on consent: what the engine routes to it.
  ads: { events: Infinity, bytes: 500 * 1024 },
};

// The events in a body as each API reads it, and each event's ID there:
// what the API deduplicates on, or (GA4, PostHog: none) its masked IDs,
// name and time.
const EVENTS = {
  amplitude: (b) => b.events,
  mixpanel: (b) => b,
  ga4: (b) => b.events.map((e) => ({ client_id: b.client_id, user_id: b.user_id, ...e })),
  posthog: (b) => b.batch,
  warehouse: (b) => b.batch,
  ads: (b) => b.batch,
};
const ID = {
  amplitude: (e) => e.insert_id,
  mixpanel: (e) => e.properties.$insert_id,
  ga4: (e) => `${e.client_id}|${e.user_id}|${e.name}|${e.timestamp_micros}`,
  posthog: (e) => `${e.distinct_id}|${e.event}|${e.timestamp}`,
  warehouse: (e) => e.messageId,
  ads: (e) => e.messageId,
};
const DESTINATIONS = Object.keys(LIMITS);
// As many small events as one request under 500 KB holds.
const N = 3500;

describe("destination limits: every body of every destination's API", () => {
  let fakes;
  let built;
  let worker;
  let engine;

  async function post(events) {
    const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
      method: "POST",
      headers: { Authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`, "Content-Type": "application/json" },
      body: JSON.stringify({ batch: events }),
    });
    return { status: res.status, body: await res.json() };
  }
  /** Per destination, the IDs the engine sends `events` out as (the policy's routing). */
  function routed(events) {
    const { bodies } = engine.processRequest(Buffer.from(JSON.stringify({ batch: events })), "batch");
    return Object.fromEntries(DESTINATIONS.map((d) => [d, (bodies[d] ?? []).flatMap((text) => EVENTS[d](JSON.parse(text)).map(ID[d]))]));
  }
  const received = (d) => (fakes.received[d] ?? []).map(ID[d]);

  before(async () => {
    fakes = await startFakes(await freePort(), { quiet: true });
    const policy = JSON.parse(readFileSync(`${root}policies/development.json`, "utf8"));
    for (const d of Object.values(policy.destinations)) d.endpoint &&= d.endpoint.replace("http://127.0.0.1:8788", fakes.url);
    assert.deepEqual(Object.keys(policy.destinations), DESTINATIONS);
    engine = new Sanitizer(policy, KEY);
    built = await bundle(policy);
    worker = await startWorker(built.script, {
      PHI_MASKING_KEY: KEY,
      WRITE_KEYS: WRITE_KEY,
      QUEUE_ENCRYPTION_KEY: QUEUE_KEY,
      AUTH_AMPLITUDE: FAKE_CREDENTIALS.amplitude,
      AUTH_MIXPANEL: FAKE_CREDENTIALS.mixpanel,
      AUTH_GA4: `${FAKE_CREDENTIALS.ga4.measurement_id}:${FAKE_CREDENTIALS.ga4.api_secret}`,
      AUTH_POSTHOG: FAKE_CREDENTIALS.posthog,
    });
  });

  after(async () => {
    await worker?.mf.dispose();
    await fakes?.close();
    built?.cleanup();
    engine?.free();
  });

  test("3,500 small events of one user in one request: each destination gets each once, in bodies within its API's limits and a queue message", async () => {
    // One user, so GA4's bodies are full (25 events of one client_id);
    // each event its own time, so PostHog's and GA4's events differ.
    const now = Date.now();
    const events = Array.from({ length: N }, (_, i) => ({
      type: "track", event: "Order Completed", userId: "patient-limits", messageId: `limits-${i}`, timestamp: new Date(now - i).toISOString(),
    }));
    // Hostile ones among them: refused, or (a name the events map does not
    // list, PHI in it) for the warehouse under its BAA only.
    const hostile = [
      "jane@example.com",
      { type: "track", userId: "jane@example.com" },
      { type: "launch", userId: "jane@example.com", messageId: "hostile-type" },
      { type: "track", event: "Viewed HIV results of jane@example.com", userId: "patient-limits", messageId: "hostile-name", timestamp: new Date(now).toISOString() },
    ];
    const batch = [...events.slice(0, 1000), ...hostile, ...events.slice(1000)];
    const text = JSON.stringify({ batch });
    assert.ok(text.length > 400_000 && text.length < 500 * 1024, `${text.length} bytes`);
    const expected = routed(batch);
    // ads is gated on advertising (opt-in) and nothing here grants it.
    const routedCount = { warehouse: N + 1, ads: 0 };
    for (const d of DESTINATIONS) assert.equal(new Set(expected[d]).size, routedCount[d] ?? N, `${d}: routed, each with its own ID`);
    const res = await post(batch);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.accepted, N + 1);
    assert.deepEqual(res.body.rejected.map((r) => r.index), [1000, 1001, 1002]);
    assert.ok(!JSON.stringify(res.body).includes("jane"), "the answer echoes nothing");
    const has = (d, ids) => {
      const got = new Set(received(d));
      return ids.every((id) => got.has(id));
    };
    // GA4 answers 2xx to what breaks its rules (and drops it): the fake keeps those as problems.
    await until(() => DESTINATIONS.every((d) => has(d, expected[d])) || Object.keys(fakes.problems).length > 0, "every event at every destination", 60_000);
    assert.deepEqual(fakes.problems, {}, "every body follows its API's rules");
    // A sentinel after: once it has arrived everywhere, a repeat queued
    // before it would have too.
    const sentinel = [{ type: "track", event: "Order Completed", userId: "patient-sentinel", messageId: "limits-sentinel", timestamp: new Date().toISOString() }];
    const sentinelIds = routed(sentinel);
    assert.equal((await post(sentinel)).status, 200);
    await until(() => DESTINATIONS.every((d) => has(d, sentinelIds[d])), "the sentinel at every destination", 30_000);

    assert.deepEqual(fakes.problems, {}, "every body follows its API's rules");
    for (const d of DESTINATIONS) {
      // The bodies of the request: all but the sentinel's.
      const bodies = fakes.requests.filter((r) => r.name === d && !EVENTS[d](JSON.parse(r.body)).some((e) => sentinelIds[d].includes(ID[d](e))));
      const sizes = bodies.map((r) => Buffer.byteLength(r.body));
      const counts = bodies.map((r) => EVENTS[d](JSON.parse(r.body)).length);
      console.log(`${d}: ${bodies.length} bodies, events per body ${Math.min(...counts)}–${Math.max(...counts)}, bytes ${Math.min(...sizes)}–${Math.max(...sizes)}`);
      bodies.forEach((r, i) => {
        assert.ok(r.status >= 200 && r.status < 300, `${d}: a body answered ${r.status}: ${r.answer}`);
        assert.ok(counts[i] >= 1 && counts[i] <= LIMITS[d].events, `${d}: a body of ${counts[i]} events`);
        assert.ok(sizes[i] <= LIMITS[d].bytes, `${d}: a body of ${sizes[i]} bytes`);
        assert.ok(sizes[i] <= QUEUE_MESSAGE_BYTES, `${d}: a body of ${sizes[i]} bytes came through the queue`);
      });
      assert.equal(counts.reduce((n, c) => n + c, 0), expected[d].length, `${d}: events over all bodies`);
      if (d !== "warehouse") for (const r of bodies) assert.doesNotMatch(r.body, /jane|HIV/, `${d} got PHI`);
      // Bodies are filled, not one event each.
      const fewest = Math.max(Math.ceil(expected[d].length / LIMITS[d].events), Math.ceil(sizes.reduce((n, s) => n + s, 0) / QUEUE_MESSAGE_BYTES));
      assert.ok(bodies.length <= 2 * fewest, `${d}: ${bodies.length} bodies where ${fewest} would do`);
      const got = received(d);
      assert.equal(got.length, expected[d].length + sentinelIds[d].length, `${d}: no event twice`);
      assert.deepEqual([...got].sort(), [...expected[d], ...sentinelIds[d]].sort(), `${d}: each event once, by its ID there`);
    }
  });
});
