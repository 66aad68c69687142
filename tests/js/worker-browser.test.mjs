// The edge Worker as browser SDKs reach it: a page in headless Chromium on
// another origin sends events the way analytics.js (text/plain, no
// preflight) and RudderStack's SDK (Basic auth and AnonymousId headers,
// preflighted) do, to the bundled Worker in workerd.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, test } from "node:test";
import { Sanitizer } from "../../www/dev/node.mjs";
import { launchChromium } from "./chromium.mjs";
import { createServer } from "node:http";
import { bundle, startDestination, startWorker, until } from "./worker-harness.mjs";

const KEY = "worker-browser-test-key-0123456789abcdef";
const WRITE_KEY = "wk_browser";
const event = { event: "Appointment Booked", userId: "patient-8812", properties: { plan: "gold", email: "jane@example.com", reason: "chest pain" } };

let dest;
let built;
let worker;
let server;
let browser;
let page;
let sanitizer;

before(async () => {
  dest = await startDestination();
  const policy = {
    version: 1, environment: "test", hipaa: true,
    allowlists: { event_properties: { plan: "allow", email: "mask" } },
    destinations: { amplitude: { connection: "server-side", endpoint: dest.url } },
  };
  sanitizer = new Sanitizer(policy, KEY);
  built = await bundle(policy);
  worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
  // A site's page, of another origin than the Worker's.
  server = createServer((req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>a clinic's site</title>"));
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  browser = await launchChromium();
  page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
});

after(async () => {
  await browser?.close();
  server?.close();
  await worker?.mf.dispose();
  await dest?.close();
  built?.cleanup();
});

/** fetch() from the page: { status, body } or { error } when the browser blocks it. */
function send(path, init) {
  return page.evaluate(
    async ({ url, init }) => {
      try {
        const res = await fetch(url, init);
        return { status: res.status, body: await res.json() };
      } catch (e) {
        return { error: String(e) };
      }
    },
    { url: new URL(path, worker.url).href, init },
  );
}

// A restricted destination receives each messageId masked (HMAC-SHA256 hex).
const hmac = (v) => createHmac("sha256", KEY).update(v).digest("hex");
const delivered = (id) => dest.delivered().find((e) => e.messageId === hmac(id));

test("analytics.js style: text/plain with the write key in the body, no preflight", async () => {
  const body = JSON.stringify({ ...event, messageId: "ajs-1", writeKey: WRITE_KEY });
  const res = await send("/v1/t", { method: "POST", headers: { "Content-Type": "text/plain" }, body, keepalive: true });
  assert.deepEqual(res, { status: 200, body: { success: true } });
  await until(() => delivered("ajs-1"), "amplitude");
  assert.deepEqual(delivered("ajs-1"), JSON.parse(sanitizer.sanitizeJson(JSON.stringify({ ...event, messageId: "ajs-1", type: "track" }), "amplitude")));
});

test("RudderStack style: Basic auth, JSON and AnonymousId headers pass the preflight", async () => {
  const headers = {
    Authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`,
    "Content-Type": "application/json;charset=UTF-8",
    AnonymousId: Buffer.from("anon-77").toString("base64"),
  };
  const res = await send("/v1/track", { method: "POST", headers, body: JSON.stringify({ ...event, messageId: "rs-1" }) });
  assert.deepEqual(res, { status: 200, body: { success: true } });
  await until(() => delivered("rs-1"), "amplitude");
  assert.ok(!JSON.stringify(delivered("rs-1")).includes("jane"));
});

test("errors are readable by the page too; a header outside the CORS list is blocked by the browser", async () => {
  const bad = await send("/v1/track", { method: "POST", headers: { "Content-Type": "text/plain" }, body: "{" });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, "invalid_json");
  const unknown = await send("/v1/track", { method: "POST", headers: { "X-Patient": "jane" }, body: "{}" });
  assert.match(unknown.error, /Failed to fetch/);
});
