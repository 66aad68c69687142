// The playground in headless Chromium (Debian's), as a policy author uses
// it: edit the policy and the event, see every field marked, the native
// body per format, warnings coming and going, and the data map following
// the edits; the examples one click (or key) away; and nothing typed ever
// leaves the page. A screenshot is saved to dist/artifacts/playground.png.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { dataMap, Sanitizer } from "../../www/dev/node.mjs";
import { launchChromium } from "./chromium.mjs";
import { startServer } from "../../www/dev/serve.mjs";
import { hmacHex } from "./vectors.mjs";

const KEY = "browser-test-key-0123456789abcdefghijkl";
const root = new URL("../../", import.meta.url).pathname;
const read = (path) => readFileSync(root + path, "utf8");
let server;
let browser;
let page;
let base;
const requests = [];

before(async () => {
  server = await startServer(0);
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
  page.on("request", (r) => requests.push({ url: r.url(), method: r.method(), body: r.postData() ?? "" }));
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e));
  await page.goto(`${base}/www/playground/playground.html`);
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

/** The sanitized event each destination card shows, as text. */
async function outputs() {
  return page.$$eval("#outputs section", (sections) =>
    Object.fromEntries(sections.map((s) => [s.dataset.destination, s.querySelector("details.sanitized pre")?.textContent ?? s.querySelector(".reason").textContent])),
  );
}

/** { field: mark } for one destination's card. */
async function marksOf(destination) {
  return page.$$eval(`#outputs section[data-destination="${destination}"] tbody tr`, (rows) =>
    Object.fromEntries(rows.map((r) => [r.dataset.field, r.dataset.mark])),
  );
}

async function problems() {
  return page.$$eval("#problems li", (lis) => lis.map((li) => ({ kind: li.className, path: li.dataset.path ?? null, text: li.textContent })));
}

/** The data map frame's text, once it shows `expect`. */
async function mapText(expect) {
  const frame = page.frameLocator("#map");
  await frame.locator("body", { hasText: expect }).waitFor({ timeout: 10_000 });
  return frame.locator("body").innerText();
}

const small = {
  version: 1, environment: "test", hipaa: true,
  allowlists: { event_properties: { plan: "allow", email: "mask", zip: "zip3" } },
  events: { Booked: "allow", "*": "drop" },
  destinations: {
    amplitude: { connection: "server-side", endpoint: "https://a.example/batch", format: "amplitude" },
    warehouse: { connection: "server-side", endpoint: "https://w.example/batch", restrict_phi: false, baa: true },
  },
};
const smallEvent = { type: "track", event: "Booked", userId: "patient-1", properties: { plan: "gold", email: "jane@example.com", zip: "02134", dx: "flu" } };

test("the page sanitizes in the browser exactly as the package does in Node", async () => {
  await setInputs({ policy: JSON.stringify(small), event: JSON.stringify(smallEvent), key: KEY });
  const shown = await outputs();
  assert.deepEqual(Object.keys(shown), ["amplitude", "warehouse"]);
  const amplitude = JSON.parse(shown.amplitude);
  assert.deepEqual(amplitude, {
    type: "track", event: "Booked", userId: hmacHex(KEY, "patient-1"),
    properties: { plan: "gold", email: hmacHex(KEY, "jane@example.com"), zip: "021" },
  });
  const node = new Sanitizer(small, KEY);
  assert.equal(JSON.stringify(amplitude), node.sanitizeJson(JSON.stringify(smallEvent), "amplitude"));
  assert.deepEqual(JSON.parse(shown.warehouse), smallEvent);
});

test("every field is marked passed, masked, transformed or dropped, and marks follow the policy", async () => {
  await setInputs({ policy: JSON.stringify(small), event: JSON.stringify(smallEvent), key: KEY });
  assert.deepEqual(await marksOf("amplitude"), {
    type: "passed", event: "passed", userId: "masked",
    "properties.plan": "passed", "properties.email": "masked", "properties.zip": "transformed", "properties.dx": "dropped",
  });
  // The unrestricted destination gets everything as it is.
  assert.ok(Object.values(await marksOf("warehouse")).every((m) => m === "passed"));
  // A dropped field shows no sent value; a masked one shows the mask.
  const email = await page.$$eval('section[data-destination="amplitude"] tr[data-field="properties.email"] td', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(email, ["properties.email", "masked", '"jane@example.com"', `"${hmacHex(KEY, "jane@example.com")}"`]);
  const dx = await page.$$eval('section[data-destination="amplitude"] tr[data-field="properties.dx"] td', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(dx, ["properties.dx", "dropped", '"flu"', "—"]);

  // Editing the policy: zip dropped, dx allowed.
  const edited = structuredClone(small);
  edited.allowlists.event_properties.zip = "drop";
  edited.allowlists.event_properties.dx = "allow";
  await setInputs({ policy: JSON.stringify(edited) });
  const after = await marksOf("amplitude");
  assert.equal(after["properties.zip"], "dropped");
  assert.equal(after["properties.dx"], "passed");
  // Editing the event: a new field appears, dropped.
  await setInputs({ event: JSON.stringify({ ...smallEvent, properties: { ...smallEvent.properties, ssn: "123-45-6789" } }) });
  assert.equal((await marksOf("amplitude"))["properties.ssn"], "dropped");
});

test("each card has the body its endpoint gets, in the destination's format", async () => {
  const policy = JSON.parse(read("policies/development.json"));
  await setInputs({ policy: JSON.stringify(policy), event: read("examples/events/track-appointment.json"), key: KEY });
  const bodies = await page.$$eval("#outputs section", (sections) =>
    Object.fromEntries(sections.map((s) => [s.dataset.destination, s.querySelector("details.native pre")?.textContent])),
  );
  // ads needs consent and takes only orders: its card has no body.
  assert.deepEqual(Object.keys(bodies).sort(), ["ads", "amplitude", "ga4", "mixpanel", "posthog", "warehouse"]);
  assert.equal(bodies.ads, undefined);
  const amplitude = JSON.parse(bodies.amplitude);
  assert.equal(amplitude.events[0].event_type, "Appointment Booked");
  assert.equal(amplitude.events[0].user_id, hmacHex(KEY, "patient-004217"));
  assert.equal(JSON.parse(bodies.mixpanel)[0].properties.distinct_id, hmacHex(KEY, "patient-004217"));
  assert.ok(JSON.parse(bodies.ga4).client_id);
  assert.ok(Array.isArray(JSON.parse(bodies.posthog).batch));
  assert.deepEqual(JSON.parse(bodies.warehouse).batch[0], JSON.parse(read("examples/events/track-appointment.json")));
});

test("a warning appears with its path and goes when the policy no longer earns it", async () => {
  await setInputs({ policy: JSON.stringify(small), event: JSON.stringify(smallEvent) });
  assert.deepEqual(await problems(), [{ kind: "ok", path: null, text: "valid, no warnings" }]);
  await setInputs({ policy: JSON.stringify({ ...small, identifiers: { userId: "allow" } }) });
  const warned = await problems();
  assert.equal(warned.length, 1);
  assert.equal(warned[0].kind, "warning");
  assert.equal(warned[0].path, "identifiers.userId");
  assert.match(warned[0].text, /^warning: identifiers\.userId: "allow" sends userId in clear/);
  assert.equal((await marksOf("amplitude")).userId, "passed");
  await setInputs({ policy: JSON.stringify(small) });
  assert.deepEqual(await problems(), [{ kind: "ok", path: null, text: "valid, no warnings" }]);
});

test("policy errors are listed with their paths; a refused event is sent nowhere", async () => {
  await setInputs({
    policy: JSON.stringify({ version: 1, environment: "p", hipaa: true, destinations: { ads: { connection: "client-side" } } }),
  });
  const errors = (await problems()).filter((p) => p.kind === "error");
  assert.deepEqual(errors, [{ kind: "error", path: "destinations.ads.connection", text: "error: destinations.ads.connection: client-side destinations cannot restrict PHI" }]);
  assert.deepEqual(await outputs(), {});
  await mapText("appears once the policy is valid");

  await setInputs({ policy: JSON.stringify(small), event: '{"type":"track","email":"jane@example.com"' });
  assert.deepEqual(await outputs(), {});
  assert.equal(await page.textContent("#event-status"), "the event is refused, and sent to no destination: event is not valid JSON: unexpected end of input at byte 42");
});

test("the data map is the edited policy's, as phimask map writes it, and can be saved", async () => {
  await setInputs({ policy: JSON.stringify(small), event: JSON.stringify(smallEvent) });
  let text = await mapText("Data map: test");
  assert.match(text, /properties\.zip\s+event_properties\s+zip3/);
  const edited = structuredClone(small);
  edited.environment = "edited";
  edited.allowlists.event_properties.zip = "year";
  edited.destinations.crm = { connection: "server-side", endpoint: "https://crm.example/" };
  await setInputs({ policy: JSON.stringify(edited) });
  text = await mapText("Data map: edited");
  assert.match(text, /properties\.zip\s+event_properties\s+year/);
  assert.match(text, /\bcrm\b/);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#save-markdown")]);
  assert.equal(download.suggestedFilename(), "phimask-data-map.md");
  const saved = readFileSync(await download.path(), "utf8");
  assert.equal(saved, dataMap(JSON.stringify(edited), "markdown"));
});

test("event and policy data are shown as text, never as markup", async () => {
  await setInputs({
    policy: JSON.stringify({
      version: 1, environment: "<img src=x onerror=window.pwned=1>", hipaa: true,
      allowlists: { event_properties: { "<b onmouseover=window.pwned=2>": "allow", html: "allow" } },
      destinations: { a: { connection: "server-side", endpoint: "https://a.example/" } },
    }),
    event: JSON.stringify({ type: "track", event: "E", userId: "u-1", properties: { html: "<img src=x onerror=window.pwned=1>" } }),
  });
  assert.match((await outputs()).a, /<img src=x onerror/);
  await mapText("<img src=x onerror");
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.equal(await page.$("#outputs img"), null);
  assert.equal(await page.frameLocator("#map").locator("img, b[onmouseover]").count(), 0);
});

test("the examples are one click or one key away", async () => {
  await page.click('button[data-policy="production"]');
  await page.waitForFunction(() => document.getElementById("policy").value.includes('"environment": "production"'));
  // From the keyboard: Tab to the event example, Enter.
  await page.focus('button[data-policy="production"]');
  let focused = "";
  for (let i = 0; i < 10 && focused !== "identify-patient"; i++) {
    await page.keyboard.press("Tab");
    focused = await page.evaluate(() => document.activeElement?.dataset?.event ?? "");
  }
  assert.equal(focused, "identify-patient");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.getElementById("event").value.includes('"type": "identify"'));
  const shown = await outputs();
  assert.deepEqual(Object.keys(shown), ["amplitude", "mixpanel", "warehouse"]);
  // Every control has a label a screen reader announces.
  const unlabelled = await page.$$eval("textarea, input", (els) => els.filter((e) => !e.labels?.length).map((e) => e.id));
  assert.deepEqual(unlabelled, []);
});

test("nothing typed leaves the page, and the key is kept nowhere", async () => {
  const marker = "typed-marker-3141592653";
  const key = `${marker}-key-abcdefghijklmnopqrstuvwxyz`;
  const before = requests.length;
  await setInputs({
    policy: JSON.stringify({ ...small, environment: marker }),
    event: JSON.stringify({ ...smallEvent, properties: { ...smallEvent.properties, email: `${marker}@example.com` } }),
    key,
  });
  await page.keyboard.type(" ");
  await mapText(marker);
  await Promise.all([page.waitForEvent("download"), page.click("#save-html")]);
  const during = requests.slice(before);
  assert.deepEqual(during.filter((r) => !r.url.startsWith("blob:")), [], "no request while typing, rendering and saving");
  for (const r of requests) {
    assert.ok(r.url.startsWith(`${base}/`) || r.url.startsWith("blob:") || r.url === "about:srcdoc", r.url);
    assert.ok(!r.url.includes(marker) && !r.body.includes(marker), r.url);
  }
  const kept = await page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie, url: location.href }));
  assert.deepEqual(kept, { local: 0, session: 0, cookie: "", url: `${base}/www/playground/playground.html` });
  assert.equal(await page.getAttribute("#key", "type"), "password");
  // The page's own rule: even a script injected into it could reach no
  // other origin.
  const blocked = await page.evaluate(async () => {
    try {
      await fetch("http://127.0.0.2:9/exfiltrate");
      return false;
    } catch {
      return true;
    }
  });
  assert.equal(blocked, true);
});

test("screenshot: the playground on a laptop screen (dist/artifacts/playground.png)", async () => {
  await page.click('button[data-policy="development"]');
  await page.waitForFunction(() => document.getElementById("policy").value.includes('"environment": "development"'));
  await page.click('button[data-event="track-appointment"]');
  await page.waitForFunction(() => document.querySelector('#outputs section[data-destination="amplitude"]'));
  await page.fill("#key", "playground-key-for-trying-policies-only");
  await page.evaluate(() => document.getElementById("policy").scrollTo(0, 0));
  mkdirSync(`${root}dist/artifacts`, { recursive: true });
  await page.evaluate(() => {
    document.activeElement?.blur();
    window.scrollTo(0, document.querySelector(".editors").offsetTop + 200);
  });
  const shot = await page.screenshot({ path: `${root}dist/artifacts/playground.png` });
  assert.ok(shot.length > 10_000);
});
