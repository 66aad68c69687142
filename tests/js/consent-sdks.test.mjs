// Consent as real SDKs stamp it, against the Worker under `wrangler dev`
// (as `make run` runs it): @segment/analytics-next wrapped by
// @segment/analytics-consent-tools and RudderStack's browser SDK
// (@rudderstack/analytics-js) with its consent management, both in
// headless Chromium from another origin, and @segment/analytics-node
// passing context.consent by hand. The BAA warehouse has no consent gate:
// it receives each event as the SDK sent it, so every gated destination
// must receive exactly what the engine makes of that with the request's
// signals. wrangler dev places every request in Texas (request.cf is a
// fixed sample), which this policy makes opt-in while its default is
// opt-out: an event without stamps is gated only if the region reached
// the engine.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Analytics as SegmentNode } from "@segment/analytics-node";
import { build } from "esbuild";
import { Sanitizer } from "../../www/dev/node.mjs";
import { launchChromium } from "./chromium.mjs";
import { root, startDestination, startWranglerDev, until } from "./worker-harness.mjs";

const KEY = "consent-sdk-test-masking-key-0123456789ab";
const WRITE_KEY = "wk_consent_sdk_test";
const hmac = (v) => createHmac("sha256", KEY).update(v).digest("hex");
/** What `wrangler dev` tells the engine of every request here (no Sec-GPC). */
const TEXAS = { region: "US-TX" };
const DESTINATIONS = ["analytics", "ads", "warehouse"];
const basic = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`;

describe("consent from real SDKs, through wrangler dev", () => {
  const dest = {};
  let sanitizer;
  let dev;
  let sentinels = 0;

  before(async () => {
    for (const d of DESTINATIONS) dest[d] = await startDestination();
    const policy = {
      version: 1, environment: "consent-sdk-test", hipaa: true,
      allowlists: {
        // Allowed as they are: PHI put there reaches a restricted destination in clear.
        event_properties: { plan: "allow", appointment_type: "allow", step: "allow", email: "mask" },
        user_properties: { plan: "allow", email: "mask" },
      },
      consent: {
        mode: "opt-out",
        categories: { analytics: ["C0002"], advertising: ["C0004"] },
        gpc: ["advertising"],
        regions: { "US-TX": { mode: "opt-in" } },
      },
      destinations: {
        analytics: { connection: "server-side", endpoint: dest.analytics.url, consent: ["analytics"] },
        ads: { connection: "server-side", endpoint: dest.ads.url, consent: ["advertising"] },
        warehouse: { connection: "server-side", endpoint: dest.warehouse.url, restrict_phi: false, baa: true },
      },
    };
    sanitizer = new Sanitizer(policy, KEY);
    dev = await startWranglerDev(policy, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
  });

  after(async () => {
    await dev?.stop();
    await Promise.all(Object.values(dest).map((d) => d.close()));
  });

  const of = (userId) => (e) => e.userId === userId || e.userId === hmac(userId);

  /** A track event straight to the Worker, with `headers`. */
  async function raw(event, headers = {}) {
    const res = await fetch(`${dev.url}/v1/track`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: basic, ...headers },
      body: JSON.stringify(event),
    });
    assert.equal(res.status, 200, await res.text());
  }

  /**
   * Once the warehouse has `count` events of `userId` (all the requests
   * that carried them taken), a granted event every destination takes, and
   * each has it: what those requests delivered has arrived. Resolves to
   * the events of `userId` the SDK sent (the warehouse's copy).
   */
  async function settled(userId, count) {
    await until(() => dest.warehouse.delivered().filter(of(userId)).length >= count, `the warehouse to receive ${count} events of ${userId}`, 30_000);
    const id = `sentinel-${++sentinels}`;
    await raw({ event: "Sentinel", userId: "u-sentinel", messageId: id, context: { consent: { categoryPreferences: { C0002: true, C0004: true } } } });
    for (const d of DESTINATIONS) await until(() => dest[d].delivered().some((e) => e.messageId === (d === "warehouse" ? id : hmac(id))), `the sentinel at ${d}`);
    const sent = dest.warehouse.delivered().filter(of(userId));
    assert.equal(sent.length, count, "the warehouse received each event once");
    return sent;
  }

  /**
   * Each gated destination received exactly the engine's output, with
   * `signals`, for each event the SDK sent (nothing for those it gates);
   * resolves to what each received.
   */
  function checkGated(userId, sent, signals = TEXAS) {
    const got = {};
    for (const d of ["analytics", "ads"]) {
      const expected = sent.map((e) => sanitizer.sanitizeJson(JSON.stringify(e), d, signals)).filter((e) => e !== null).map((e) => JSON.parse(e));
      got[d] = dest[d].delivered().filter(of(userId));
      assert.equal(got[d].length, expected.length, `${d}: one event for each the engine lets through`);
      for (const e of expected) assert.ok(got[d].some((g) => JSON.stringify(g) === JSON.stringify(e)), `${d} got ${JSON.stringify(e)}`);
    }
    return got;
  }

  const steps = (events) => events.map((e) => e.properties?.step ?? e.event ?? e.type);

  describe("in headless Chromium, from another origin", () => {
    let browser;
    let site;
    const scripts = {};

    before(async () => {
      for (const name of ["consent-tools", "rudderstack"]) {
        const bundled = await build({
          entryPoints: [join(root, `tests/js/sdk-page/${name}.mjs`)],
          bundle: true, format: "esm", platform: "browser", write: false, logLevel: "error",
        });
        scripts[name] = bundled.outputFiles[0].text;
      }
      site = createServer((req, res) => {
        const script = /^\/([a-z-]+)\.js$/.exec(req.url);
        if (script && scripts[script[1]]) res.writeHead(200, { "content-type": "text/javascript" }).end(scripts[script[1]]);
        else res.writeHead(200, { "content-type": "text/html" }).end(`<!doctype html><script type="module" src="${req.url}.js"></script>`);
      });
      await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
      browser = await launchChromium();
    });

    after(async () => {
      await browser?.close();
      site?.close();
    });

    /** A page of the site running `name`'s script; `outside` collects requests leaving 127.0.0.1. */
    async function open(name) {
      const page = await browser.newPage();
      const outside = [];
      page.on("request", (r) => {
        if (!r.url().startsWith("http://127.0.0.1:")) outside.push(r.url());
      });
      await page.goto(`http://127.0.0.1:${site.address().port}/${name}`);
      await page.waitForFunction(() => typeof window.send === "function");
      return { page, outside };
    }

    test("@segment/analytics-next wrapped by consent-tools: the categories stamped on every event, and a consent change", async () => {
      const userId = "patient-consent-tools";
      const adsBefore = dest.ads.requests.length;
      const { page, outside } = await open("consent-tools");
      let sent;
      try {
        const apiHost = `${dev.url.replace("http://", "")}/v1`;
        assert.equal(await page.evaluate((o) => window.start(o), { writeKey: WRITE_KEY, apiHost }), "loaded");
        // Analytics granted, advertising not, then advertising granted in the banner.
        assert.equal(await page.evaluate((u) => window.send(u, "before"), userId), "sent");
        assert.equal(await page.evaluate(() => window.grant("C0004")), "granted");
        assert.equal(await page.evaluate((u) => window.send(u, "after"), userId), "sent");
        // identify, track and page before; the consent change's own event; identify, track and page after.
        // (The page stays open until they are delivered: closing it would cancel what is still in flight.)
        sent = await settled(userId, 7);
      } finally {
        await page.close();
      }
      assert.deepEqual(outside, [], "nothing loaded from outside 127.0.0.1");
      assert.deepEqual(steps(sent).sort(), ["identify", "before", "before", "Segment Consent Preference Updated", "identify", "after", "after"].sort());
      for (const e of sent) {
        assert.equal(e.context.library.name, "analytics.js");
        const { C0001, C0002, C0004, ...rest } = e.context.consent.categoryPreferences;
        assert.deepEqual([C0001, C0002, rest], [true, true, {}], `the categories stamped on ${steps([e])}`);
        if (e.type !== "identify") assert.equal(C0004, e.properties.step !== "before", `advertising as stamped on ${steps([e])}`);
      }
      // One identify before the change (advertising false), one after.
      assert.deepEqual(sent.filter((e) => e.type === "identify").map((e) => e.context.consent.categoryPreferences.C0004).sort(), [false, true]);
      const got = checkGated(userId, sent);
      // Analytics throughout; advertising only from the change on.
      assert.equal(got.analytics.length, 7);
      assert.deepEqual(steps(got.ads).sort(), ["Segment Consent Preference Updated", "after", "after", "identify"].sort());
      for (const e of got.ads) assert.notEqual(e.properties?.step, "before");
      // The PHI the visitor typed before granting advertising never reached it.
      const adsText = dest.ads.requests.slice(adsBefore).map((r) => r.body).join("\n");
      assert.equal(adsText.split("HIV positive").length - 1, 1, "the one track event after the change");
      assert.equal(adsText.split("Jane Doe").length - 1, 1, "the one identify after the change");
    });

    test("@rudderstack/analytics-js with its custom consent manager: denied ids block, allowed ids pass, consent() changes them", async () => {
      const userId = "patient-rudderstack";
      const { page, outside } = await open("rudderstack");
      let sent;
      try {
        const start = { writeKey: WRITE_KEY, dataPlaneUrl: dev.url, allowed: ["C0002"], denied: ["C0004"] };
        assert.equal(await page.evaluate((o) => window.start(o), start), "loaded");
        assert.equal(await page.evaluate((u) => window.send(u, "analytics only"), userId), "sent");
        // The visitor now allows advertising and withdraws analytics.
        assert.equal(await page.evaluate(() => window.consent(["C0004"], ["C0002"])), "changed");
        assert.equal(await page.evaluate((u) => window.send(u, "advertising only"), userId), "sent");
        // Its callbacks run once an event is queued in the page, not sent:
        // the page stays open until the events are delivered.
        sent = await settled(userId, 6);
      } finally {
        await page.close();
      }
      assert.deepEqual(outside, [], "nothing loaded from outside 127.0.0.1 (its plugins are bundled, its source configuration given)");
      // Every event stamped with the ids in force when it was sent.
      const stamps = (e) => JSON.stringify([e.context.consentManagement.allowedConsentIds, e.context.consentManagement.deniedConsentIds]);
      const FIRST = JSON.stringify([["C0002"], ["C0004"]]);
      const SECOND = JSON.stringify([["C0004"], ["C0002"]]);
      for (const e of sent) {
        assert.equal(e.context.library.name, "RudderLabs JavaScript SDK");
        if (e.type !== "identify") assert.equal(stamps(e), e.properties.step === "analytics only" ? FIRST : SECOND, steps([e])[0]);
      }
      assert.deepEqual(sent.filter((e) => e.type === "identify").map(stamps).sort(), [FIRST, SECOND].sort());
      const got = checkGated(userId, sent);
      const stamped = (ids) => sent.filter((e) => e.context.consentManagement.allowedConsentIds.includes(ids)).length;
      assert.equal(got.analytics.length, stamped("C0002"));
      assert.equal(got.ads.length, stamped("C0004"));
      assert.equal(got.analytics.length, 3);
      assert.equal(got.ads.length, 3);
      assert.ok(got.analytics.every((e) => e.type === "identify" || e.properties.step === "analytics only"));
      assert.ok(got.ads.every((e) => e.type === "identify" || e.properties.step === "advertising only"));
    });
  });

  describe("@segment/analytics-node, consent passed by hand", () => {
    test("granted, denied and absent categories (absent: opt-in in Texas)", async () => {
      const analytics = new SegmentNode({ writeKey: WRITE_KEY, host: dev.url, path: "/v1/batch", flushInterval: 200, maxEventsInBatch: 10 });
      const errors = [];
      analytics.on("error", (e) => errors.push(e));
      const visitors = {
        "patient-node-granted": { consent: { categoryPreferences: { C0002: true, C0004: true } } },
        "patient-node-denied": { consent: { categoryPreferences: { C0002: false, C0004: false } } },
        "patient-node-partial": { consent: { categoryPreferences: { C0002: true, C0004: "yes" } } },
        "patient-node-none": {},
      };
      for (const [userId, context] of Object.entries(visitors)) {
        analytics.identify({ userId, traits: { plan: "Jane Doe" }, context });
        analytics.track({ userId, event: "Appointment Booked", properties: { plan: "gold", appointment_type: "HIV positive" }, context });
      }
      await analytics.closeAndFlush({ timeout: 10_000 });
      assert.deepEqual(errors, []);
      const counts = {};
      for (const userId of Object.keys(visitors)) {
        const sent = await settled(userId, 2);
        assert.equal(sent[0].context.library.name, "@segment/analytics-node");
        const got = checkGated(userId, sent);
        counts[userId] = [got.analytics.length, got.ads.length];
      }
      assert.deepEqual(counts, {
        "patient-node-granted": [2, 2],
        "patient-node-denied": [0, 0],
        "patient-node-partial": [2, 0],
        // Without region the policy's default (opt-out) would send them.
        "patient-node-none": [0, 0],
      });
    });

    test("Sec-GPC: 1 (which analytics-node cannot send: one request by hand) denies advertising the event grants", async () => {
      const granted = { consent: { categoryPreferences: { C0002: true, C0004: true } } };
      const event = (userId) => ({ userId, event: "Appointment Booked", messageId: `m-${userId}`, properties: { plan: "gold", appointment_type: "HIV positive" }, context: granted });
      await raw(event("patient-gpc"), { "Sec-GPC": "1" });
      await raw(event("patient-gpc-0"), { "Sec-GPC": "0" });
      const gpc = checkGated("patient-gpc", await settled("patient-gpc", 1), { ...TEXAS, gpc: true });
      assert.deepEqual([gpc.analytics.length, gpc.ads.length], [1, 0]);
      const none = checkGated("patient-gpc-0", await settled("patient-gpc-0", 1));
      assert.deepEqual([none.analytics.length, none.ads.length], [1, 1]);
    });

    test("/.well-known/gpc.json says GPC is honoured, with wrangler.toml's GPC_LAST_UPDATE", async () => {
      const res = await fetch(`${dev.url}/.well-known/gpc.json`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { gpc: true, lastUpdate: "2026-12-05" });
    });
  });
});
