// A request's fan-out is bounded: a valid batch of thousands of distinct
// users (GA4 takes one user per body) would become thousands of queue
// messages — over what Queues takes in a second, and over a Worker's
// subrequests when delivered directly. Above the bound the request is
// refused with 413, nothing queued and nothing sent; below it, every
// event arrives. The bundled Worker in workerd, and under `wrangler dev`
// (whose local queue broker such a request once brought down), against
// the local fakes of the destinations' APIs.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { FAKE_CREDENTIALS, startFakes } from "../../www/dev/fakes.mjs";
import { bundle, freePort, startWorker, startWranglerDev, until } from "./worker-harness.mjs";

const KEY = "fan-out-test-masking-key-0123456789abcdef";
const WRITE_KEY = "wk_fan_out";
const MAX_REQUEST_BODIES = 1000;

describe("a request's fan-out is bounded", () => {
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
    worker = await startWorker(built.script, {
      PHI_MASKING_KEY: KEY,
      WRITE_KEYS: WRITE_KEY,
      AUTH_GA4: `${FAKE_CREDENTIALS.ga4.measurement_id}:${FAKE_CREDENTIALS.ga4.api_secret}`,
    });
  });

  after(async () => {
    await worker?.mf.dispose();
    await fakes?.close();
    built?.cleanup();
  });

  const post = async (events) => {
    const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
      method: "POST",
      headers: { Authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`, "Content-Type": "application/json" },
      body: JSON.stringify({ batch: events }),
    });
    return { status: res.status, body: await res.json() };
  };
  // Each user a distinct anonymous ID: GA4 gets one body per user.
  const users = (n, tag) => Array.from({ length: n }, (_, i) => ({ type: "track", event: "Viewed", anonymousId: `${tag}-${i}`, messageId: `${tag}-m-${i}` }));
  // The smallest events that still make a GA4 body each: pages, no name.
  const pages = (n) => Array.from({ length: n }, (_, i) => ({ type: "page", anonymousId: `f${i}` }));
  // The warehouse restricts PHI: message IDs arrive masked.
  const masked = (id) => createHmac("sha256", KEY).update(id).digest("hex");
  const warehouseIds = () => (fakes.received.warehouse ?? []).map((e) => e.messageId);
  const arrived = (id) => warehouseIds().includes(masked(id));

  test("thousands of distinct users in one batch: 413, nothing queued, nothing sent", async () => {
    const flood = pages(10_000);
    const text = JSON.stringify({ batch: flood });
    assert.ok(text.length < 500 * 1024, `${text.length} bytes: a valid batch by size`);
    const before = fakes.requests.length;
    const res = await post(flood);
    assert.equal(res.status, 413, JSON.stringify(res.body));
    assert.equal(res.body.code, "too_many_messages");
    assert.match(res.body.error, /1000/);
    assert.ok(!JSON.stringify(res.body).includes("flood-"), "the answer echoes no event");
    // A sentinel after it: once it has arrived, anything queued before it would have too.
    assert.equal((await post(users(1, "sentinel-a"))).status, 200);
    await until(() => arrived("sentinel-a-m-0"), "the sentinel at the warehouse");
    assert.equal(warehouseIds().length, 1, "nothing of the refused request reached a destination");
    const ga4 = fakes.requests.slice(before).filter((r) => r.name === "ga4");
    assert.equal(ga4.length, 1, "GA4: only the sentinel's body");
  });

  test("just below the bound every event arrives, one GA4 body per user", async () => {
    // GA4's bodies plus the warehouse's (one or two): the bound counts every body.
    const below = users(MAX_REQUEST_BODIES - 10, "below");
    const before = fakes.requests.filter((r) => r.name === "ga4").length;
    const res = await post(below);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await until(() => below.every((e) => arrived(e.messageId)), "every event at the warehouse", 60_000);
    await until(() => fakes.requests.filter((r) => r.name === "ga4").length - before === below.length, "a GA4 body per user", 60_000);
    assert.deepEqual(fakes.problems, {}, "every GA4 body follows its API's rules");
    // One more user tips it over.
    const over = await post(users(MAX_REQUEST_BODIES, "over"));
    assert.equal(over.status, 413, JSON.stringify(over.body));
    assert.equal(over.body.code, "too_many_messages");
  });
});

describe("under wrangler dev, a request over the bound leaves the local queue working", () => {
  let fakes;
  let dev;

  before(async () => {
    fakes = await startFakes(await freePort(), { quiet: true });
    const policy = {
      version: 1, environment: "fan-out-dev", hipaa: true,
      events: { "*": "allow" },
      destinations: { ga4: { connection: "server-side", format: "ga4", endpoint: `${fakes.url}/ga4/mp/collect` } },
    };
    dev = await startWranglerDev(policy, {
      PHI_MASKING_KEY: KEY,
      WRITE_KEYS: WRITE_KEY,
      AUTH_GA4: `${FAKE_CREDENTIALS.ga4.measurement_id}:${FAKE_CREDENTIALS.ga4.api_secret}`,
    });
  });

  after(async () => {
    await dev?.stop();
    await fakes?.close();
  });

  test("10,000 distinct users: 413 at once; /health and the next request are fine", async () => {
    const post = (batch) =>
      fetch(`${dev.url}/v1/batch`, {
        method: "POST",
        headers: { Authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`, "Content-Type": "application/json" },
        body: JSON.stringify({ batch }),
      });
    const flood = Array.from({ length: 10_000 }, (_, i) => ({ type: "page", anonymousId: `f${i}` }));
    const refused = await post(flood);
    assert.equal(refused.status, 413);
    assert.equal((await refused.json()).code, "too_many_messages");
    assert.equal((await fetch(`${dev.url}/health`)).status, 200);
    const ok = await post([{ type: "page", anonymousId: "after-flood" }]);
    assert.equal(ok.status, 200, await ok.text());
    await until(() => fakes.requests.some((r) => r.name === "ga4"), "the next request's GA4 body", 30_000);
    assert.equal(fakes.requests.filter((r) => r.name === "ga4").length, 1, "only the next request's body: nothing of the refused one");
  });
});
