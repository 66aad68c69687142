// The wasm package in a real browser: the playground page in headless
// Chromium (Debian's), loading pkg/ with `await init()`.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Sanitizer } from "../../www/node.mjs";
import { launchChromium } from "./chromium.mjs";
import { startServer } from "../../www/serve.mjs";
import { hmacHex } from "./vectors.mjs";

const KEY = "browser-test-key-0123456789abcdefghijkl";
let server;
let browser;
let page;

before(async () => {
  server = await startServer(0);
  browser = await launchChromium();
  page = await browser.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e));
  await page.goto(`http://127.0.0.1:${server.address().port}/www/playground.html`);
  await page.waitForFunction(() => document.getElementById("status").textContent !== "loading…");
  assert.equal(await page.textContent("#status"), "ready", pageErrors.join("\n"));
});

after(async () => {
  await browser?.close();
  server?.close();
});

async function setInputs({ policy, event, key }) {
  if (policy !== undefined) await page.fill("#policy", policy);
  if (event !== undefined) await page.fill("#event", event);
  if (key !== undefined) await page.fill("#key", key);
}

async function outputs() {
  return page.$$eval("#outputs section", (sections) =>
    Object.fromEntries(sections.map((s) => [s.dataset.destination, s.querySelector("pre").textContent])),
  );
}

test("the page sanitizes in the browser exactly as the package does in Node", async () => {
  const policy = {
    version: 1, environment: "test", hipaa: true,
    allowlists: { event_properties: { plan: "allow", email: "mask" } },
    destinations: {
      amplitude: { connection: "server-side", endpoint: "https://a.example/batch" },
      warehouse: { connection: "server-side", endpoint: "https://w.example/batch", restrict_phi: false, baa: true },
    },
  };
  const event = { type: "track", event: "Booked", userId: "patient-1", properties: { plan: "gold", email: "jane@example.com", dx: "flu" } };
  await setInputs({ policy: JSON.stringify(policy), event: JSON.stringify(event), key: KEY });
  const shown = await outputs();
  assert.deepEqual(Object.keys(shown), ["amplitude", "warehouse"]);
  const amplitude = JSON.parse(shown.amplitude);
  assert.deepEqual(amplitude, {
    type: "track", event: "Booked", userId: hmacHex(KEY, "patient-1"),
    properties: { plan: "gold", email: hmacHex(KEY, "jane@example.com") },
  });
  const node = new Sanitizer(policy, KEY);
  assert.equal(JSON.stringify(amplitude), node.sanitizeJson(JSON.stringify(event), "amplitude"));
  assert.deepEqual(JSON.parse(shown.warehouse), event);
});

test("policy problems are listed with their paths; bad events are refused", async () => {
  await setInputs({
    policy: JSON.stringify({ version: 1, environment: "p", hipaa: true, destinations: { ads: { connection: "client-side" } } }),
  });
  const problems = await page.$$eval("#problems li.error", (lis) => lis.map((li) => li.textContent));
  assert.deepEqual(problems, ["error: destinations.ads.connection: client-side destinations cannot restrict PHI"]);
  assert.deepEqual(await outputs(), {});

  await setInputs({
    policy: JSON.stringify({ version: 1, environment: "p", hipaa: true, destinations: { a: { connection: "server-side", endpoint: "https://a.example/" } } }),
    event: '{"type":"track","email":"jane@example.com"',
  });
  const shown = await outputs();
  assert.match(shown.a, /^refused: event is not valid JSON: unexpected end of input at byte 42$/);
});

test("event data is shown as text, never as markup", async () => {
  await setInputs({
    policy: JSON.stringify({
      version: 1, environment: "p", hipaa: true,
      allowlists: { event_properties: { html: "allow" } },
      destinations: { a: { connection: "server-side", endpoint: "https://a.example/" } },
    }),
    event: JSON.stringify({ type: "track", event: "E", userId: "u-1", properties: { html: "<img src=x onerror=window.pwned=1>" } }),
  });
  assert.match((await outputs()).a, /<img src=x onerror/);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.equal(await page.$("#outputs img"), null);
});
