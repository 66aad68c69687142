// Consent in the playground, in headless Chromium (Debian's), as a policy
// author uses it: the request's Sec-GPC and region, Segment's and
// RudderStack's consent stamped into the event or typed by hand, and each
// destination card saying whether consent gates it and why. In every
// state every card must agree with the engine's own explain(event,
// signals) computed here in Node, and what a gated destination would get
// must appear nowhere. A screenshot is saved to
// dist/artifacts/playground-consent.png.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { Sanitizer } from "../../www/dev/node.mjs";
import { stamp } from "../../www/playground/playground-consent.js";
import { launchChromium } from "./chromium.mjs";
import { startServer } from "../../www/dev/serve.mjs";

const KEY = "consent-test-key-0123456789abcdefghijklmn";
const root = new URL("../../", import.meta.url).pathname;
const read = (path) => readFileSync(root + path, "utf8");
const POLICY = read("policies/development.json");
const ORDER = read("examples/events/track-order.json");
let server;
let browser;
let page;
let base;
const requests = [];
const pageErrors = [];

before(async () => {
  server = await startServer(0);
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on("request", (r) => requests.push({ url: r.url(), body: r.postData() ?? "" }));
  page.on("pageerror", (e) => pageErrors.push(e));
  await page.goto(`${base}/www/playground/playground.html`);
  await page.waitForFunction(() => document.getElementById("status").textContent !== "loading…");
  assert.equal(await page.textContent("#status"), "ready", pageErrors.join("\n"));
});

after(async () => {
  // No state of any test may have thrown in the page.
  assert.deepEqual(pageErrors.map(String), []);
  await browser?.close();
  server?.close();
});

/** The development policy, an event and the request's signals, set in the
 * page's controls; ticked consent ids cleared. */
async function start({ policy = POLICY, event = ORDER, gpc = false, region = "" } = {}) {
  await page.fill("#policy", policy);
  await page.fill("#event", event);
  await page.fill("#key", KEY);
  await page.setChecked("#gpc", gpc);
  await page.fill("#region", region);
  for (const box of await page.$$("#consent-ids input[type=checkbox]")) await box.setChecked(false);
}

/** Every destination card: sent, code, its consent list (undefined when it
 * has no consent block), that block's text, and the sanitized event. */
async function cards() {
  return page.$$eval("#outputs section", (sections) =>
    Object.fromEntries(sections.map((s) => {
      const block = s.querySelector(".consent");
      const consent = block
        ? [...block.querySelectorAll("li")].map((li) => ({
            purpose: li.dataset.purpose, granted: li.dataset.granted === "true", by: li.dataset.by,
            ...(li.dataset.id !== undefined && { id: li.dataset.id }),
            ...(li.dataset.region !== undefined && { region: li.dataset.region }),
          }))
        : undefined;
      return [s.dataset.destination, {
        sent: s.dataset.sent === "true", code: s.dataset.code, consent,
        gated: block?.dataset.gated, text: block?.textContent ?? "", lines: block ? [...block.querySelectorAll("li")].map((li) => li.textContent) : [],
        sanitized: s.querySelector("details.sanitized pre")?.textContent ?? null,
        native: s.querySelector("details.native pre")?.textContent ?? null,
      }];
    })),
  );
}

/** Checks every card against the engine in Node for the page's event and
 * `signals`, and returns the cards. */
async function agree(signals, policy = POLICY) {
  const eventText = await page.inputValue("#event");
  const node = new Sanitizer(policy, KEY);
  try {
    const expected = node.explain(eventText, signals);
    const shown = await cards();
    assert.deepEqual(Object.keys(shown), Object.keys(expected));
    for (const [name, e] of Object.entries(expected)) {
      const c = shown[name];
      const where = `${name} under ${JSON.stringify(signals)}`;
      assert.equal(c.sent, e.sent, where);
      assert.equal(c.code, e.code, where);
      assert.deepEqual(c.consent, e.consent, where);
      if (e.consent) assert.equal(c.gated, String(e.consent.some((d) => !d.granted)), where);
      const sent = node.sanitizeJson(eventText, name, signals);
      if (e.sent) {
        assert.deepEqual(JSON.parse(c.sanitized), JSON.parse(sent), where);
        // The native body is made under the same signals: a Segment batch
        // holds the sanitized event itself.
        if (node.format(name) === "segment") assert.deepEqual(JSON.parse(c.native).batch[0], JSON.parse(sent), where);
      } else assert.equal(c.sanitized, null, where);
      if (e.code === "consent") assert.equal(sent, null, where);
    }
    return shown;
  } finally {
    node.free();
  }
}

async function tick(ids) {
  for (const box of await page.$$("#consent-ids input[type=checkbox]")) await box.setChecked(ids.includes(await box.getAttribute("data-id")));
}

const eventNow = async () => JSON.parse(await page.inputValue("#event"));

test("Sec-GPC gates the ads card, whatever the event grants; destinations without consent show nothing new", async () => {
  await start();
  await tick(["C0004"]);
  await page.click("#stamp-segment");
  let shown = await agree({ gpc: false });
  assert.equal(shown.ads.sent, true);
  assert.deepEqual(shown.ads.consent, [{ purpose: "advertising", granted: true, by: "categoryPreferences", id: "C0004" }]);
  assert.match(shown.ads.lines[0], /^advertising granted by categoryPreferences C0004/);

  await page.check("#gpc");
  shown = await agree({ gpc: true });
  assert.equal(shown.ads.sent, false);
  assert.equal(shown.ads.code, "consent");
  assert.deepEqual(shown.ads.consent, [{ purpose: "advertising", granted: false, by: "gpc" }]);
  assert.match(shown.ads.text, /^Gated by consent/);
  assert.match(shown.ads.lines[0], /^advertising denied by gpc \(the request's Sec-GPC: 1\)/);
  assert.equal(shown.ads.native, null);
  // The others need no consent: no consent block, and sent as before.
  for (const name of ["amplitude", "mixpanel", "ga4", "posthog", "warehouse"]) {
    assert.equal(shown[name].consent, undefined, name);
    assert.equal(shown[name].sent, true, name);
    assert.equal(await page.$(`section[data-destination="${name}"] .consent`), null);
  }
  await page.uncheck("#gpc");
  assert.equal((await agree({ gpc: false })).ads.sent, true);
});

test("the region decides an event that says nothing: opt-out in US-CA, opt-in in US-WA and elsewhere", async () => {
  await start();
  const cases = [
    ["", false, "opt-in", undefined],
    ["US-CA", true, "opt-out", "US-CA"],
    ["us-ca", true, "opt-out", "US-CA"],
    ["US-WA", false, "opt-in", "US-WA"],
    ["US-TX", false, "opt-in", undefined],
    ["DE", false, "opt-in", undefined],
  ];
  for (const [region, sent, by, matched] of cases) {
    await page.fill("#region", region);
    const signals = region ? { gpc: false, region } : { gpc: false };
    const shown = await agree(signals);
    assert.equal(shown.ads.sent, sent, region);
    assert.deepEqual(shown.ads.consent, [{ purpose: "advertising", granted: sent, by, ...(matched && { region: matched }) }], region);
    if (matched) assert.match(shown.ads.lines[0], new RegExp(`region ${matched} is ${by}`));
  }
  // GPC wins over a region's opt-out.
  await page.fill("#region", "US-CA");
  await page.check("#gpc");
  assert.deepEqual((await agree({ gpc: true, region: "US-CA" })).ads.consent, [{ purpose: "advertising", granted: false, by: "gpc" }]);
});

test("Segment's categoryPreferences stamped into the event: C0004 granted sends, denied gates even where opt-out", async () => {
  await start();
  await tick(["C0004"]);
  await page.click("#stamp-segment");
  const stamped = await eventNow();
  assert.deepEqual(stamped.context.consent, { categoryPreferences: { C0004: true, C0002: false, Analytics: false } });
  // The rest of the event is as it was.
  const { consent, ...context } = stamped.context;
  assert.deepEqual({ ...stamped, context }, JSON.parse(ORDER));
  assert.equal((await agree({ gpc: false })).ads.sent, true);

  await tick([]);
  await page.click("#stamp-segment");
  assert.deepEqual((await eventNow()).context.consent.categoryPreferences, { C0002: false, Analytics: false, C0004: false, Advertising: false, DataSharing: false });
  await page.fill("#region", "US-CA");
  const shown = await agree({ gpc: false, region: "US-CA" });
  assert.equal(shown.ads.code, "consent");
  assert.deepEqual(shown.ads.consent, [{ purpose: "advertising", granted: false, by: "categoryPreferences", id: "C0004" }]);
  assert.match(shown.ads.lines[0], /^advertising denied by categoryPreferences C0004 \(the event does not grant C0004\)/);
});

test("RudderStack's consentManagement stamped into the event; with Segment's, a denial wins; remove restores the event", async () => {
  await start();
  await tick(["Advertising"]);
  await page.click("#stamp-rudderstack");
  assert.deepEqual((await eventNow()).context.consentManagement, {
    allowedConsentIds: ["Advertising"], deniedConsentIds: ["C0002", "Analytics"], provider: "custom", resolutionStrategy: "and",
  });
  let shown = await agree({ gpc: false });
  assert.deepEqual(shown.ads.consent, [{ purpose: "advertising", granted: true, by: "allowedConsentIds", id: "Advertising" }]);

  await tick([]);
  await page.click("#stamp-rudderstack");
  assert.deepEqual((await eventNow()).context.consentManagement.deniedConsentIds, ["C0002", "Analytics", "C0004", "Advertising", "DataSharing"]);
  shown = await agree({ gpc: false });
  assert.deepEqual(shown.ads.consent, [{ purpose: "advertising", granted: false, by: "deniedConsentIds", id: "C0004" }]);

  // Segment grants, RudderStack denies: not sent.
  await tick(["C0004"]);
  await page.click("#stamp-segment");
  const both = await eventNow();
  assert.equal(both.context.consent.categoryPreferences.C0004, true);
  assert.ok(both.context.consentManagement.deniedConsentIds.includes("C0004"));
  assert.equal((await agree({ gpc: false })).ads.code, "consent");

  await page.click("#stamp-remove");
  assert.deepEqual(await eventNow(), JSON.parse(ORDER));
  assert.deepEqual((await agree({ gpc: false })).ads.consent, [{ purpose: "advertising", granted: false, by: "opt-in" }]);
});

test("consent typed by hand counts; a malformed consent object counts as absent; PHI never reaches a gated card", async () => {
  const order = JSON.parse(ORDER);
  const withContext = (extra) => JSON.stringify({ ...order, properties: { ...order.properties, notes: "Jane Doe, HIV positive" }, context: { ...order.context, ...extra } });
  const cases = [
    // [context, region, ads sent, by]
    [{ consent: { categoryPreferences: "yes" } }, "", false, "opt-in"],
    [{ consent: { categoryPreferences: "yes" } }, "US-CA", true, "opt-out"],
    [{ consent: { categoryPreferences: ["C0004"] } }, "US-WA", false, "opt-in"],
    [{ consent: null, consentManagement: "C0004" }, "US-CA", true, "opt-out"],
    [{ consentManagement: { allowedConsentIds: "C0004", deniedConsentIds: {} } }, "", false, "opt-in"],
    // Non-string elements are skipped; ids compare exactly.
    [{ consentManagement: { allowedConsentIds: [4, null, "C0004"], deniedConsentIds: [7, {}] } }, "", true, "allowedConsentIds"],
    // A list of the wrong type: RudderStack's object is absent whole.
    [{ consentManagement: { allowedConsentIds: ["C0004"], deniedConsentIds: "Advertising" } }, "", false, "opt-in"],
    [{ consent: { categoryPreferences: { c0004: true } } }, "", false, "opt-in"],
    [{ consent: { categoryPreferences: { C0004: "true" } } }, "US-CA", false, "categoryPreferences"],
    [{ consent: { categoryPreferences: { "<img src=x onerror=window.pwned=1>": true, C0004: true } } }, "", true, "categoryPreferences"],
  ];
  await start();
  for (const [extra, region, sent, by] of cases) {
    await page.fill("#event", withContext(extra));
    await page.fill("#region", region);
    const where = `${JSON.stringify(extra)} in ${region || "no region"}`;
    const shown = await agree(region ? { gpc: false, region } : { gpc: false });
    assert.equal(shown.ads.sent, sent, where);
    assert.equal(shown.ads.consent[0].by, by, where);
    const adsText = await page.textContent('section[data-destination="ads"]');
    if (!sent) assert.ok(!adsText.includes("Jane Doe") && !adsText.includes("HIV"), where);
  }
  assert.equal(await page.evaluate(() => window.pwned), undefined);
});

test("a stamp onto an event it cannot change says why and changes nothing", async () => {
  await start();
  for (const text of ['{"type":"track","event":"Order Completed"', '["not", "an", "event"]', '{"type":"track","event":"Order Completed","context":"web"}']) {
    await page.fill("#event", text);
    await page.click("#stamp-segment");
    assert.equal(await page.inputValue("#event"), text);
    assert.match(await page.textContent("#stamp-status"), /^not stamped: the event/);
  }
  await page.fill("#event", ORDER);
  await page.click("#stamp-remove");
  assert.equal(await page.textContent("#stamp-status"), "");
  // The same function in Node: unchanged fields, and no context left
  // behind when consent was all it held.
  const bare = { type: "track", event: "E", userId: "u" };
  const stamped = stamp(JSON.stringify(bare), "segment", { allowed: ["C0004"], denied: [] });
  assert.deepEqual(JSON.parse(stamped), { ...bare, context: { consent: { categoryPreferences: { C0004: true } } } });
  assert.deepEqual(JSON.parse(stamp(stamped, "remove")), bare);
});

test("hostile input is shown as text: a region, an id in the policy, and the page never crashes", async () => {
  await start({ region: "<img src=x onerror=window.pwned=1>" });
  assert.equal(await page.textContent("#signals-status"), 'region "<img src=x onerror=window.pwned=1>" is not valid: must be an ISO 3166-2 code such as "US-WA", or a country code such as "US"');
  assert.equal(await page.getAttribute("#region", "aria-invalid"), "true");
  assert.deepEqual(await cards(), {});
  assert.match(await page.textContent("#event-status"), /no destination is shown until the region is valid/);
  for (const bad of ["USA", "US-", "U", "US_CA", "  "]) {
    await page.fill("#region", bad);
    if (bad.trim() === "") assert.equal((await agree({ gpc: false })).ads.code, "consent");
    else assert.deepEqual(await cards(), {}, bad);
  }
  await page.fill("#region", "");
  assert.equal(await page.textContent("#signals-status"), "");
  assert.equal(await page.getAttribute("#region", "aria-invalid"), null);

  const policy = JSON.parse(POLICY);
  const hostile = "<img src=x onerror=window.pwned=2>";
  policy.consent.categories.advertising.unshift(hostile);
  await start({ policy: JSON.stringify(policy) });
  const labels = await page.$$eval("#consent-ids label", (ls) => ls.map((l) => l.textContent.trim()));
  assert.ok(labels.includes(hostile), labels.join("|"));
  await page.click("#stamp-segment");
  assert.equal((await eventNow()).context.consent.categoryPreferences[hostile], false);
  const shown = await agree({ gpc: false }, JSON.stringify(policy));
  assert.deepEqual(shown.ads.consent, [{ purpose: "advertising", granted: false, by: "categoryPreferences", id: hostile }]);
  assert.ok(shown.ads.lines[0].includes(hostile));

  // A purpose name with markup is a policy error, listed as text.
  policy.consent.categories["<b onmouseover=window.pwned=3>"] = ["C0009"];
  await page.fill("#policy", JSON.stringify(policy));
  const errors = await page.$$eval("#problems li.error", (lis) => lis.map((li) => li.textContent));
  assert.ok(errors.some((e) => e.includes("consent.categories.<b onmouseover=window.pwned=3>")), errors.join("\n"));
  assert.deepEqual(await cards(), {});
  assert.equal(await page.$("img, b[onmouseover]"), null);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
});

test("nothing typed leaves the page while signals and consent change", async () => {
  const marker = "consent-marker-2718281828";
  await start();
  const before = requests.length;
  const order = JSON.parse(ORDER);
  await page.fill("#event", JSON.stringify({ ...order, properties: { ...order.properties, notes: marker }, context: { consent: { categoryPreferences: { [marker]: true } } } }));
  await page.check("#gpc");
  await page.fill("#region", "US-CA");
  await page.fill("#region", `${marker}<img src=x>`);
  await page.fill("#region", "US-WA");
  await tick(["C0004"]);
  await page.click("#stamp-segment");
  await page.click("#stamp-rudderstack");
  await page.click("#stamp-remove");
  assert.deepEqual(requests.slice(before), [], "no request while changing signals and consent");
  for (const r of requests) {
    assert.ok(r.url.startsWith(`${base}/`) || r.url === "about:srcdoc", r.url);
    assert.ok(!r.url.includes(marker) && !r.body.includes(marker), r.url);
  }
  // The controls are labelled, so a screen reader names them.
  const unlabelled = await page.$$eval("#signals input, #consent-stamp input", (els) => els.filter((e) => !e.labels?.length).map((e) => e.id || e.dataset.id));
  assert.deepEqual(unlabelled, []);
});

test("screenshot: a gated destination beside a sent one (dist/artifacts/playground-consent.png)", async () => {
  // Two destinations, so the ads card sits beside amplitude under the controls.
  const policy = JSON.parse(POLICY);
  policy.destinations = { amplitude: policy.destinations.amplitude, ads: policy.destinations.ads };
  await start({ policy: JSON.stringify(policy, null, 2), region: "US-CA" });
  await tick(["C0004"]);
  await page.click("#stamp-segment");
  await page.check("#gpc");
  const shown = await agree({ gpc: true, region: "US-CA" }, JSON.stringify(policy));
  assert.equal(shown.ads.code, "consent");
  await page.evaluate(() => {
    document.activeElement?.blur();
    window.scrollTo(0, document.getElementById("signals").offsetTop - 12);
  });
  mkdirSync(`${root}dist/artifacts`, { recursive: true });
  const shot = await page.screenshot({ path: `${root}dist/artifacts/playground-consent.png` });
  assert.ok(shot.length > 10_000);
});
