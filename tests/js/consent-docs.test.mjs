// docs/consent.md as a reader checks it: its example policy is the one in
// examples/consent/, every decision, call and message it shows is what the
// engine gives, and its region example is valid. Hostile shapes (consent
// objects of the wrong type, ids in the wrong case) are in its table of
// cases, so a change in how they count shows here as well as in the engine's
// own tests.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { dataMap, Sanitizer, validatePolicy } from "../../www/dev/node.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
const read = (p) => readFileSync(root + p, "utf8");
const doc = read("docs/consent.md");
const KEY = "consent-docs-test-key-0123456789abcdefgh";

/** The text of the section under `heading` (to the next heading of its level or higher). */
function section(heading) {
  const at = doc.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `docs/consent.md has "${heading}"`);
  const level = /^#+/.exec(heading)[0].length;
  const rest = doc.slice(at + heading.length + 2);
  const end = rest.search(new RegExp(`^#{1,${level}} `, "m"));
  return end < 0 ? rest : rest.slice(0, end);
}

/** The fenced blocks of `text` in `language`, in order. */
const blocks = (text, language) => [...text.matchAll(new RegExp("```" + language + "\\n([^]*?)```", "g"))].map((m) => m[1]);

const policy = JSON.parse(read("examples/consent/policy.json"));
const event = (name) => JSON.parse(read(`examples/consent/${name}.json`));
const segmentTrack = event("segment-track");
const rudderstackTrack = event("rudderstack-track");
const noConsent = event("no-consent-track");

test("the page's example policy is examples/consent/policy.json, valid with no warnings", () => {
  const [shown] = blocks(section("## A policy with consent"), "json");
  assert.deepEqual(JSON.parse(shown), policy);
  assert.deepEqual(validatePolicy(policy), { valid: true, errors: [], warnings: [] });
});

test("the page's example events are the files it names", () => {
  const [segment] = blocks(section("### Segment: `context.consent.categoryPreferences`"), "json");
  const [rudderstack] = blocks(section("### RudderStack: `context.consentManagement`"), "json");
  assert.deepEqual(JSON.parse(segment), segmentTrack);
  assert.deepEqual(JSON.parse(rudderstack), rudderstackTrack);
});

/** A decision as `phimask explain` writes it after the purpose. */
const decision = (c) => `${c.granted ? "granted" : "denied"} by ${c.by}${c.id ? ` (${c.id})` : ""}${c.region ? ` (region ${c.region})` : ""}`;

test("every case of the page's table is decided as it says", () => {
  const text = section("### Every case");
  const [shown] = blocks(text, "json");
  const s = new Sanitizer(shown, KEY);
  const rows = [...text.matchAll(/^\| `(\{.*?\})` \| `(\{.*?\})` \| (.+?) \|$/gm)];
  assert.ok(rows.length >= 15, `the table has its rows (${rows.length})`);
  let granted = 0;
  for (const [, context, signals, expected] of rows) {
    const e = s.explain({ type: "track", event: "E", userId: "u", context: JSON.parse(context) }, JSON.parse(signals)).ads;
    assert.equal(decision(e.consent[0]), expected, `${context} ${signals}`);
    assert.equal(e.sent, expected.startsWith("granted"), `${context} ${signals}: sent only when granted`);
    if (e.sent) granted += 1;
  }
  assert.ok(granted > 0 && granted < rows.length, "the table shows both outcomes");
});

test("the page's JavaScript calls give what it shows", () => {
  const s = new Sanitizer(policy, KEY);
  const body = new TextEncoder().encode(JSON.stringify({ batch: [segmentTrack, rudderstackTrack, noConsent] }));
  const calls = {
    's.sanitize(segmentTrack, "meta_capi")': () => s.sanitize(segmentTrack, "meta_capi"),
    's.sanitize(noConsent, "meta_capi", { region: "US-CA" }).properties': () => s.sanitize(noConsent, "meta_capi", { region: "US-CA" }).properties,
    's.sanitize(noConsent, "meta_capi", { region: "US-CA", gpc: true })': () => s.sanitize(noConsent, "meta_capi", { region: "US-CA", gpc: true }),
    "s.explain(segmentTrack, { gpc: true }).meta_capi.consent": () => s.explain(segmentTrack, { gpc: true }).meta_capi.consent,
    's.explain(noConsent, { region: "us-ca" }).meta_capi.consent': () => s.explain(noConsent, { region: "us-ca" }).meta_capi.consent,
    "s.explain(segmentTrack).meta_capi": () => s.explain(segmentTrack).meta_capi,
    "s.explain(rudderstackTrack).meta_capi.consent": () => s.explain(rudderstackTrack).meta_capi.consent,
    's.processRequest(body, "batch", undefined, { region: "US-CA" }).report.meta_capi': () =>
      s.processRequest(body, "batch", undefined, { region: "US-CA" }).report.meta_capi,
    's.processRequest(body, "batch", undefined, { gpc: true }).report.meta_capi': () =>
      s.processRequest(body, "batch", undefined, { gpc: true }).report.meta_capi,
  };
  const shown = blocks(doc, "js").join("\n");
  for (const [call, run] of Object.entries(calls)) {
    assert.ok(shown.includes(`${call}\n// -> ${JSON.stringify(run())}\n`), `${call}\n// -> ${JSON.stringify(run())}`);
  }
  // The PHI the page says never reaches the advertising destination, granted or not.
  const granted = { ...segmentTrack, context: { consent: { categoryPreferences: { C0004: true, C0005: true } } } };
  const out = s.sanitizeJson(JSON.stringify(granted), "meta_capi");
  assert.ok(out !== null && !out.includes("HIV") && !out.includes("telehealth") && !out.includes("p-004217"), out);
});

test("the page's invalid_signals messages are the engine's", () => {
  const s = new Sanitizer(policy, KEY);
  const rows = [...section("### In JavaScript").matchAll(/^\| `(.+?)` \| `(.+?)` \|$/gm)];
  assert.equal(rows.length, 5);
  for (const [, signals, message] of rows) {
    // The table writes signals as JavaScript literals; these are JSON once keys are quoted.
    const value = JSON.parse(signals.replace(/(\w+):/g, '"$1":'));
    assert.throws(() => s.explain(noConsent, value), (e) => e.code === "invalid_signals" && e.message === message, signals);
  }
});

test("the page's region example is valid, and matches a subdivision by its country", () => {
  const [consent] = blocks(section("## Opt-in and opt-out by region"), "json");
  const withRegions = { ...policy, consent: JSON.parse(consent) };
  assert.deepEqual(validatePolicy(withRegions), { valid: true, errors: [], warnings: [] });
  assert.equal(Object.keys(withRegions.consent.regions).length, 2 + 27, "Washington, California and the 27 EU countries");
  const s = new Sanitizer(withRegions, KEY);
  const by = (region) => s.explain(noConsent, { region }).meta_capi.consent[0];
  assert.deepEqual(by("DE-BY"), { purpose: "advertising", granted: false, by: "opt-in", region: "DE" });
  assert.deepEqual(by("US-CA"), { purpose: "advertising", granted: true, by: "opt-out", region: "US-CA" });
  assert.deepEqual(by("US-OR"), { purpose: "advertising", granted: false, by: "opt-in" });
});

test("the page's data map excerpt is the data map's Consent section", () => {
  // The excerpt has headings of its own: found by its fence, not its section.
  const [excerpt] = blocks(doc, "markdown");
  assert.ok(dataMap(policy, "markdown").includes(excerpt), excerpt);
});

test("the page's validation messages are those validation gives, in order", () => {
  const text = section("## Validation messages");
  const policies = blocks(text, "json");
  const outputs = blocks(text, "text");
  assert.equal(policies.length, 2);
  assert.equal(outputs.length, 2);
  policies.forEach((p, i) => {
    const r = validatePolicy(p);
    const lines = [...r.errors.map((e) => `error: ${e.path}: ${e.message}`), ...r.warnings.map((w) => `warning: ${w.path}: ${w.message}`)];
    assert.deepEqual(lines, outputs[i].trimEnd().split("\n"));
    assert.equal(r.valid, i === 1, "the first has errors, the second only warnings");
  });
  // The table's other messages: each is given for its path.
  const bad = {
    "consent.categories": [{}, { categories: {} }],
    "consent.categories.P": [{ categories: { P: "C0002" } }, { categories: { P: [] } }],
    "consent.categories.P[0]": [{ categories: { P: ["x".repeat(129)] } }],
    "consent.gpc": [{ categories: { P: ["x"] }, gpc: "P" }],
  };
  const messages = [];
  for (const cases of Object.values(bad)) {
    for (const consent of cases) {
      const r = validatePolicy({ version: 1, environment: "p", hipaa: true, events: { "*": "drop" }, destinations: { a: { connection: "server-side", endpoint: "https://a.example/" } }, consent });
      messages.push(...r.errors.map((e) => `${e.path} ${e.message}`));
    }
  }
  for (const [path, message] of [
    ["consent.categories", 'missing; map each purpose to the consent category ids that stand for it, e.g. {"advertising": ["C0004"]}'],
    ["consent.categories", "no purposes; name at least one"],
    ["consent.categories.P", 'must be an array of consent category ids (e.g. ["C0004", "Advertising"]), not a string'],
    ["consent.categories.P", "empty; list the consent category ids that stand for this purpose"],
    ["consent.categories.P[0]", "category id must be at most 128 bytes, without control characters"],
    ["consent.gpc", "must be an array of purpose names, not a string"],
  ]) {
    assert.ok(messages.includes(`${path} ${message}`), `${path}: ${message}`);
    assert.ok(text.includes("`" + message + "`"), `the page lists ${message}`);
  }
  const orphan = validatePolicy({
    version: 1, environment: "p", hipaa: true, events: { "*": "drop" },
    destinations: { a: { connection: "server-side", endpoint: "https://a.example/", consent: ["analytics"] } },
  });
  const message = 'no top-level "consent" section defines purposes; add one with "categories"';
  assert.deepEqual(orphan.errors, [{ path: "destinations.a.consent", message }]);
  assert.ok(text.includes("`" + message + "`"));
});

test("the advertising-tool hosts and words the page lists are those that warn", () => {
  const text = section("## Validation messages");
  const list = (intro) => {
    const at = text.indexOf(intro);
    assert.ok(at >= 0, intro);
    // The bullet: to the next one or to the end of the list.
    const ends = ["\n- ", "\n\n"].map((s) => text.indexOf(s, at)).filter((i) => i > 0);
    const item = text.slice(at, Math.min(...ends));
    return [...item.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
  };
  const hosts = list("its endpoint's host");
  const words = list("a word of its name").filter((w) => !/[ _"]/.test(w) && w !== "integration" && w !== "amplitude" && w !== "metadata");
  assert.equal(hosts.length, 16);
  assert.equal(words.length, 16);
  const warned = (destination) =>
    validatePolicy({ version: 1, environment: "p", hipaa: true, events: { "*": "drop" }, destinations: { ...destination } }).warnings.some((w) =>
      w.message.startsWith("this looks like an advertising tool"),
    );
  for (const host of hosts) assert.ok(warned({ d: { connection: "server-side", endpoint: `https://api.${host}/x` } }), host);
  for (const word of words) assert.ok(warned({ [`x_${word}`]: { connection: "server-side", endpoint: "https://a.example/" } }), word);
  for (const plain of ["amplitude", "metadata"]) assert.ok(!warned({ [plain]: { connection: "server-side", endpoint: "https://a.example/" } }), plain);
  assert.ok(warned({ conv: { connection: "server-side", endpoint: "https://a.example/", integration: "Google Ads Conversions" } }));
});

test("docs/javascript.md's signals examples, under policies/development.json, give what it shows", () => {
  const js = read("docs/javascript.md");
  const dev = new Sanitizer(read("policies/development.json"), KEY);
  const order = { type: "track", event: "Order Completed", userId: "u1", properties: { value: 40 }, context: { consent: { categoryPreferences: { C0004: true } } } };
  const sent = dev.sanitize(order, "ads");
  assert.deepEqual({ ...sent, userId: "7d06…" }, { type: "track", event: "Order Completed", userId: "7d06…", properties: { value: 40 }, context: {} });
  assert.ok(js.includes('dev.sanitize(order, "ads");                    // -> { type: "track", event: "Order Completed", userId: "7d06…", properties: { value: 40 }, context: {} }'));
  assert.equal(dev.sanitize(order, "ads", { gpc: true }), null);
  const explained = dev.explain(order, { gpc: true }).ads;
  assert.deepEqual(explained, {
    sent: false, reason: 'not sent: consent: a purpose its "consent" lists is not granted', code: "consent",
    consent: [{ purpose: "advertising", granted: false, by: "gpc" }], dropped: [], masked: [], transformed: [],
  });
  assert.ok(js.includes(`reason: '${explained.reason}', code: "consent",`));
  const bare = '{"type":"track","event":"Order Completed","userId":"u1"}';
  assert.equal(dev.sanitizeJson(bare, "ads"), null);
  assert.match(dev.sanitizeJson(bare, "ads", { region: "us-ca" }), /^\{"type":"track",/);
  assert.throws(() => dev.explain(order, { GPC: true }), (e) => e.code === "invalid_signals" && js.includes(`throws invalid_signals: ${e.message}`));
});
