// Real SDKs, pinned, against the Worker under `wrangler dev` (as `make run`
// runs it): @segment/analytics-node, @rudderstack/rudder-sdk-node with its
// default settings (gzip), PyPI segment-analytics-python with gzip on and
// off, and @segment/analytics-next in headless Chromium from another
// origin, standard and batching, including a retry after a failed first
// attempt. Each sends every call type; each destination must receive
// exactly what the engine makes of what the SDK sent (the BAA warehouse
// receives it unchanged), and no PHI in clear.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { Analytics as SegmentNode } from "@segment/analytics-node";
import RudderNode from "@rudderstack/rudder-sdk-node";
import { build } from "esbuild";
import { Sanitizer } from "../../www/dev/node.mjs";
import { launchChromium } from "./chromium.mjs";
import { root, startDestination, startProxy, startWranglerDev, until } from "./worker-harness.mjs";

const KEY = "sdk-test-masking-key-0123456789abcdefgh";
const WRITE_KEY = "wk_sdk_test";
const CALLS = ["identify", "track", "page", "screen", "group", "alias"];
const PHI = ["jane", "Jane", "chest pain", "483920", "HIV", "Cardiology"];
const hmac = (v) => createHmac("sha256", KEY).update(v).digest("hex");

describe("real SDKs against wrangler dev", () => {
  const dest = {};
  let policy;
  let sanitizer;
  let dev;
  let proxy;

  before(async () => {
    for (const name of ["amplitude", "mixpanel", "warehouse"]) dest[name] = await startDestination();
    policy = {
      version: 1, environment: "sdk-test", hipaa: true,
      allowlists: {
        event_properties: { plan: "allow", email: "mask" },
        user_properties: { plan: "allow", email: "mask" },
        group_properties: { name: "allow", employees: "allow" },
      },
      events: {
        "Booked Cardiology Appointment": { rename: "Appointment Booked" },
        "HIV Testing": { rename: "Service Page" },
        Services: "allow",
        "*": "drop",
      },
      destinations: {
        amplitude: { connection: "server-side", endpoint: dest.amplitude.url },
        mixpanel: { connection: "server-side", endpoint: dest.mixpanel.url, calls: ["track", "identify"] },
        warehouse: { connection: "server-side", endpoint: dest.warehouse.url, restrict_phi: false, baa: true },
      },
    };
    sanitizer = new Sanitizer(policy, KEY);
    dev = await startWranglerDev(policy, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
    // Records what reaches the Worker (Content-Encoding, retries).
    proxy = await startProxy(dev.url);
  });

  after(async () => {
    await proxy?.close();
    await dev?.stop();
    await Promise.all(Object.values(dest).map((d) => d.close()));
  });

  /**
   * Waits for the six calls of `userId` at the warehouse, then checks that
   * amplitude and mixpanel received exactly the engine's output for each
   * (mixpanel only track and identify), with names renamed and no PHI.
   */
  async function checkDelivered(userId) {
    const mine = (e) => e.userId === userId || e.userId === hmac(userId);
    await until(() => dest.warehouse.delivered().filter(mine).length >= CALLS.length, `the warehouse to receive ${userId}'s calls`, 30_000);
    const sent = dest.warehouse.delivered().filter(mine);
    assert.deepEqual(sent.map((e) => e.type).sort(), [...CALLS].sort(), "each call type once, unchanged at the BAA destination");
    for (const d of ["amplitude", "mixpanel"]) {
      const expected = sent.map((e) => sanitizer.sanitizeJson(JSON.stringify(e), d)).filter((e) => e !== null).map((e) => JSON.parse(e));
      assert.equal(expected.length, d === "mixpanel" ? 2 : 6, d);
      await until(() => dest[d].delivered().filter(mine).length >= expected.length, `${d} to receive ${userId}'s calls`);
      const got = dest[d].delivered().filter(mine);
      assert.equal(got.length, expected.length, `${d}: nothing more`);
      for (const e of expected) assert.ok(got.some((g) => JSON.stringify(g) === JSON.stringify(e)), `${d} got ${JSON.stringify(e)}`);
      const text = JSON.stringify(got);
      for (const phi of [...PHI, userId]) assert.ok(!text.includes(phi), `${d} got ${phi} in clear`);
      assert.ok(got.filter((e) => e.type === "track").every((e) => e.event === "Appointment Booked"), "renamed");
    }
    const page = dest.amplitude.delivered().find((e) => mine(e) && e.type === "page");
    assert.equal(page.name, "Service Page");
    assert.equal(page.category, "Services");
  }


  test("@segment/analytics-node", async () => {
    const userId = "patient-node-1";
    const analytics = new SegmentNode({ writeKey: WRITE_KEY, host: proxy.url, path: "/v1/batch", flushInterval: 200, maxEventsInBatch: 10 });
    const errors = [];
    analytics.on("error", (e) => errors.push(e));
    analytics.identify({ userId, traits: { email: "jane.doe@example.com", plan: "gold", name: "Jane Doe" } });
    analytics.track({ userId, event: "Booked Cardiology Appointment", properties: { plan: "gold", reason: "chest pain", email: "jane.doe@example.com" } });
    analytics.page({ userId, category: "Services", name: "HIV Testing", properties: { url: "https://clinic.example/patients/483920", plan: "gold" } });
    analytics.screen({ userId, category: "Services", name: "HIV Testing", properties: { plan: "gold" } });
    analytics.group({ userId, groupId: "clinic-77", traits: { name: "Northside Clinic", employees: 12 } });
    analytics.alias({ userId, previousId: `anon-prev-${userId}` });
    await analytics.closeAndFlush({ timeout: 10_000 });
    assert.deepEqual(errors, []);
    await checkDelivered(userId);
  });

  test("@rudderstack/rudder-sdk-node with its defaults (gzip)", async () => {
    const userId = "patient-rudder-1";
    const before = proxy.seen.length;
    const errors = [];
    const client = new RudderNode(WRITE_KEY, { dataPlaneUrl: proxy.url, flushAt: 6, flushInterval: 200, logLevel: "error", errorHandler: (e) => errors.push(e) });
    client.identify({ userId, traits: { email: "jane.doe@example.com", plan: "gold", name: "Jane Doe" } });
    client.track({ userId, event: "Booked Cardiology Appointment", properties: { plan: "gold", reason: "chest pain", email: "jane.doe@example.com" } });
    client.page({ userId, category: "Services", name: "HIV Testing", properties: { url: "https://clinic.example/patients/483920", plan: "gold" } });
    client.screen({ userId, category: "Services", name: "HIV Testing", properties: { plan: "gold" } });
    client.group({ userId, groupId: "clinic-77", traits: { name: "Northside Clinic", employees: 12 } });
    // A callback, as its flush throws on a 4xx otherwise.
    await new Promise((resolve) => client.alias({ userId, previousId: `anon-prev-${userId}` }, () => resolve()));
    await new Promise((resolve) => client.flush(() => resolve()));
    assert.deepEqual(errors, []);
    await checkDelivered(userId);
    const posts = proxy.seen.slice(before).filter((r) => r.method === "POST");
    assert.ok(posts.length > 0 && posts.every((r) => r.encoding === "gzip"), `sent ${JSON.stringify(posts)}`);
  });

  for (const encoding of ["gzip", "plain"]) {
    test(`segment-analytics-python (${encoding})`, async () => {
      const userId = `patient-python-${encoding}`;
      const before = proxy.seen.length;
      await promisify(execFile)(join(root, ".venv/bin/python"), [join(root, "tests/sdk/send.py"), WRITE_KEY, proxy.url, userId, encoding], { timeout: 60_000 });
      await checkDelivered(userId);
      const posts = proxy.seen.slice(before).filter((r) => r.method === "POST");
      assert.ok(posts.length > 0 && posts.every((r) => (r.encoding ?? "identity") === (encoding === "gzip" ? "gzip" : "identity")), JSON.stringify(posts));
    });
  }

  describe("@segment/analytics-next in headless Chromium, from another origin", () => {
    let browser;
    let site;

    before(async () => {
      const bundled = await build({
        entryPoints: [join(root, "tests/js/sdk-page/analytics-next.mjs")],
        bundle: true, format: "esm", platform: "browser", write: false, logLevel: "error",
      });
      const script = bundled.outputFiles[0].text;
      site = createServer((req, res) => {
        if (req.url === "/analytics.js") res.writeHead(200, { "content-type": "text/javascript" }).end(script);
        else res.writeHead(200, { "content-type": "text/html" }).end('<!doctype html><script type="module" src="/analytics.js"></script>');
      });
      await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
      browser = await launchChromium();
    });

    after(async () => {
      await browser?.close();
      site?.close();
    });

    for (const batching of [false, true]) {
      test(`${batching ? "batching" : "standard"} delivery, with a failed first attempt retried`, async () => {
        const userId = `patient-browser-${batching ? "batching" : "standard"}`;
        const before = proxy.seen.length;
        const page = await browser.newPage();
        try {
          await page.goto(`http://127.0.0.1:${site.address().port}/`);
          await page.waitForFunction(() => typeof window.sendAll === "function");
          // The first send fails (503): the retry carries X-Retry-Count,
          // which the Worker's CORS preflight must allow.
          proxy.failNext(1);
          const apiHost = `${proxy.url.replace("http://", "")}/v1`;
          assert.equal(await page.evaluate((o) => window.sendAll(o), { writeKey: WRITE_KEY, apiHost, userId, batching }), "sent");
          await checkDelivered(userId);
        } finally {
          await page.close();
        }
        const seen = proxy.seen.slice(before);
        assert.ok(seen.some((r) => r.method === "POST" && r.retry !== undefined), `a retry was sent: ${JSON.stringify(seen)}`);
        assert.ok(seen.some((r) => r.method === "OPTIONS"), "the retry was preflighted");
      });
    }
  });
});
