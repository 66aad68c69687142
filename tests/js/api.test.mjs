// The JavaScript API docs/javascript.md documents, as a user of the package calls it.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { callTypes, dataMap, limits, readRequest, Sanitizer, validatePolicy } from "../../www/dev/node.mjs";
import { hmacHex } from "./vectors.mjs";

const KEY = "js-api-test-key-0123456789abcdefghijkl";
const policy = {
  version: 1,
  environment: "production",
  hipaa: true,
  allowlists: { event_properties: { plan: "allow", email: "mask" } },
  events: { "Booked Visit": "allow", "*": "drop" },
  destinations: {
    amplitude: { connection: "server-side", endpoint: "https://api2.amplitude.example/batch" },
    warehouse: { connection: "server-side", endpoint: "https://ingest.example/segment", restrict_phi: false, baa: true },
    ga4: { connection: "client-side", restrict_phi: false, baa: true },
  },
};
const event = {
  type: "track",
  event: "Booked Visit",
  userId: "patient-8812",
  properties: { plan: "gold", email: "jane@example.com", condition: "hiv" },
  context: { ip: "203.0.113.7" },
};

test("the policy may be an object or JSON text", () => {
  for (const p of [policy, JSON.stringify(policy)]) {
    const s = new Sanitizer(p, KEY);
    assert.deepEqual(s.destinations(), ["amplitude", "warehouse"]);
    s.free();
  }
});

test("destinations() lists the server-side destinations in policy order; endpoint() gives their URL", () => {
  const s = new Sanitizer(policy, KEY);
  assert.deepEqual(s.destinations(), ["amplitude", "warehouse"]);
  assert.equal(s.endpoint("amplitude"), "https://api2.amplitude.example/batch");
  assert.equal(s.endpoint("ga4"), undefined);
});

test("sanitize() returns an object; sanitizeJson() returns JSON text; both agree", () => {
  const s = new Sanitizer(policy, KEY);
  const obj = s.sanitize(event, "amplitude");
  assert.deepEqual(obj, {
    type: "track",
    event: "Booked Visit",
    userId: hmacHex(KEY, "patient-8812"),
    properties: { plan: "gold", email: hmacHex(KEY, "jane@example.com") },
    // An object emptied by filtering is sent as {}.
    context: {},
  });
  assert.equal(s.sanitizeJson(JSON.stringify(event), "amplitude"), JSON.stringify(obj));
  // The caller's object is not modified.
  assert.equal(event.properties.email, "jane@example.com");
});

test("a BAA destination gets the event unchanged; a client-side one gets null", () => {
  const s = new Sanitizer(policy, KEY);
  assert.deepEqual(s.sanitize(event, "warehouse"), event);
  assert.equal(s.sanitize(event, "ga4"), null);
  assert.equal(s.sanitizeJson(JSON.stringify(event), "ga4"), null);
});

test("bad events throw Errors with a code, naming what was wrong and echoing nothing", () => {
  const s = new Sanitizer(policy, KEY);
  const cases = [
    [() => s.sanitizeJson('{"type":"track","email":"jane@example.com"', "amplitude"), "invalid_json"],
    [() => s.sanitizeJson(42, "amplitude"), "invalid_json"],
    [() => s.sanitize("jane@example.com", "amplitude"), "event_not_object"],
    [() => s.sanitize(undefined, "amplitude"), "event_not_object"],
    [() => s.sanitize({ type: "jane@example.com" }, "amplitude"), "unknown_type"],
    [() => s.sanitize({ email: "jane@example.com" }, "amplitude"), "missing_type"],
    [() => s.sanitize({ type: "track", big: "jane@example.com".repeat(3000) }, "amplitude"), "event_too_large"],
    [() => s.sanitize(event, "mixpanel"), "unknown_destination"],
  ];
  for (const [call, code] of cases) {
    assert.throws(call, (e) => {
      assert.ok(e instanceof Error);
      assert.equal(e.code, code, e.message);
      assert.ok(!e.message.includes("jane"), e.message);
      return true;
    });
  }
  const cyclic = { type: "track" };
  cyclic.self = cyclic;
  assert.throws(() => s.sanitize(cyclic, "amplitude"), (e) => e.code === "event_not_object");
});

test("the 32 KB limit: an event of exactly 32768 bytes passes, one byte more is refused", () => {
  const s = new Sanitizer(policy, KEY);
  const base = JSON.stringify({ type: "track", event: "Booked Visit", userId: "u", properties: { plan: "" } });
  const fit = JSON.stringify({ type: "track", event: "Booked Visit", userId: "u", properties: { plan: "x".repeat(32768 - base.length) } });
  assert.equal(Buffer.byteLength(fit), 32768);
  assert.ok(s.sanitizeJson(fit, "amplitude").includes("xxxx"));
  const over = fit.replace('"plan":"', '"plan":"y');
  assert.throws(() => s.sanitizeJson(over, "amplitude"), (e) => e.code === "event_too_large" && e.message === "event is larger than 32768 bytes");
});

test("the masking key: required when masking, at least 32 bytes, never echoed", () => {
  for (const missing of [undefined, null]) {
    assert.throws(() => new Sanitizer(policy, missing), (e) => e.code === "missing_key");
  }
  const short = "short-secret-key-31-bytes-long!";
  assert.equal(Buffer.byteLength(short), 31);
  assert.throws(() => new Sanitizer(policy, short), (e) => e.code === "key_too_short" && !e.message.includes(short));
  assert.throws(() => new Sanitizer(policy, 12345678901234567890123456789012345), (e) => e.code === "invalid_key");
  // 32 bytes of UTF-8 (16 two-byte characters) is enough.
  assert.doesNotThrow(() => new Sanitizer(policy, "é".repeat(16)));
  // A restricted destination may always mask (a messageId that is not
  // plain is masked), so it needs the key even when no rule masks.
  const noMaskingRules = {
    ...policy,
    identifiers: { userId: "drop", anonymousId: "drop", groupId: "allow", previousId: "drop" },
    allowlists: { event_properties: { plan: "allow" } },
  };
  assert.throws(() => new Sanitizer(noMaskingRules, undefined), (e) => e.code === "missing_key");
  // Without a restricted destination no key is needed.
  const { amplitude: _, ...unrestricted } = policy.destinations;
  const s = new Sanitizer({ ...policy, destinations: unrestricted }, undefined);
  assert.deepEqual(s.sanitize(event, "warehouse"), event);
});

test("invalid policies throw one Error listing every problem", () => {
  assert.throws(
    () => new Sanitizer({ version: 1, environment: "p", hipaa: true, destinations: { ads: { connection: "client-side" } }, extra: 1 }, KEY),
    (e) => {
      assert.equal(e.code, "invalid_policy");
      assert.deepEqual(e.errors, [
        { path: "extra", message: "unknown key; expected one of: version, environment, hipaa, identifiers, allowlists, events, scan, destinations, consent, bots" },
        { path: "destinations.ads.connection", message: "client-side destinations cannot restrict PHI" },
      ]);
      assert.match(e.message, /^invalid policy: extra: unknown key.*; destinations\.ads\.connection: client-side destinations cannot restrict PHI$/);
      return true;
    },
  );
  assert.throws(() => new Sanitizer(42, KEY), (e) => e.code === "invalid_policy");
});

test("validatePolicy never throws", () => {
  assert.deepEqual(validatePolicy(policy), { valid: true, errors: [], warnings: [] });
  for (const bad of [undefined, null, 7, "not json"]) {
    const r = validatePolicy(bad);
    assert.equal(r.valid, false);
    assert.ok(r.errors.length === 1 && typeof r.errors[0].message === "string");
  }
});

test("numbers keep their JSON text; sanitize(object) uses JavaScript's JSON text", () => {
  const p = { ...policy, allowlists: { event_properties: { n: "mask" } } };
  const s = new Sanitizer(p, KEY);
  const out = JSON.parse(s.sanitizeJson('{"type":"track","event":"Booked Visit","userId":"u","properties":{"n":1.50}}', "amplitude"));
  assert.equal(out.properties.n, hmacHex(KEY, "1.50"));
  // JSON.stringify writes 1.5 as "1.5".
  assert.equal(s.sanitize({ type: "track", event: "Booked Visit", userId: "u", properties: { n: 1.5 } }, "amplitude").properties.n, hmacHex(KEY, "1.5"));
});

test("explain() says per destination whether and why, with paths but no values; takeReport() counts", () => {
  const s = new Sanitizer(policy, KEY);
  const ev = { ...event, properties: { ...event.properties, note: "jane@example.com" } };
  const out = s.explain(ev);
  assert.deepEqual(out.amplitude, {
    sent: true, reason: "sent, sanitized by its lists", code: "sanitized",
    dropped: ["properties.condition", "properties.note", "context.ip"],
    masked: ["userId", "properties.email"], transformed: [],
  });
  assert.deepEqual(out.warehouse, { sent: true, reason: "sent unchanged: unrestricted, with a BAA", code: "unrestricted", dropped: [], masked: [], transformed: [] });
  assert.equal(out.ga4.sent, false);
  assert.equal(out.ga4.code, "client_side");
  assert.ok(!JSON.stringify(out).includes("jane"));
  assert.equal(s.explain({ ...ev, event: "Viewed HIV Results" }).amplitude.reason, 'not sent: its "events" map drops this name');
  s.takeReport();
  s.sanitizeJson(JSON.stringify(ev), "amplitude");
  s.sanitizeJson(JSON.stringify(ev), "amplitude");
  assert.deepEqual(s.takeReport(), { amplitude: { events: 2, dropped: 6, masked: 4, transformed: 0 } });
  assert.deepEqual(s.takeReport(), {});
});

test("limits() and callTypes(): the engine's limits and call types, one source for the Worker", () => {
  assert.deepEqual(limits(), { maxEventBytes: 32768, maxBatchBytes: 512000, maxDepth: 64, maxRejectedListed: 100 });
  assert.deepEqual(callTypes(), ["track", "identify", "group", "page", "screen", "alias"]);
});

test("routing, calls and the events map: null for a destination the event does not go to", () => {
  const s = new Sanitizer({ ...policy, destinations: { ...policy.destinations, amplitude: { ...policy.destinations.amplitude, calls: ["track"] } } }, KEY);
  assert.equal(s.sanitize({ ...event, integrations: { All: false } }, "amplitude"), null);
  assert.equal(s.sanitize({ ...event, integrations: { All: false } }, "warehouse"), null);
  assert.equal(s.sanitize({ ...event, integrations: { All: false, Amplitude: true } }, "warehouse"), null);
  assert.notEqual(s.sanitize({ ...event, integrations: { All: false, Amplitude: true } }, "amplitude"), null);
  assert.equal(s.sanitize({ ...event, event: "Viewed HIV Results" }, "amplitude"), null);
  assert.equal(s.sanitize({ type: "identify", userId: "u" }, "amplitude"), null);
  assert.throws(() => s.sanitize({ type: "track", userId: "u" }, "amplitude"), (e) => e.code === "incomplete_event");
});

/**
 * The package in an instance of its own (a fresh wasm memory, untouched by
 * the other tests), as a user loads it: { Sanitizer, memory }.
 */
async function freshEngine(tag) {
  const glue = await import(`../../pkg/phimask.js?${tag}`);
  const { memory } = glue.initSync({ module: readFileSync(new URL("../../pkg/phimask_bg.wasm", import.meta.url)) });
  return { Sanitizer: glue.Sanitizer, memory };
}

/** Growth of `memory` (bytes) over `cycles` of: a Sanitizer made, 20 events sanitized, freed if `free`. */
function growthOver(engine, cycles, free) {
  const kept = [];
  const cycle = () => {
    const s = new engine.Sanitizer(policy, KEY);
    for (let j = 0; j < 20; j++) assert.ok(s.sanitizeJson(JSON.stringify(event), "amplitude").includes('"plan":"gold"'));
    if (free) s.free();
    else kept.push(s);
  };
  // Warm up: the allocator's first pages are not growth.
  for (let i = 0; i < 10; i++) cycle();
  const start = engine.memory.buffer.byteLength;
  for (let i = 0; i < cycles; i++) cycle();
  return engine.memory.buffer.byteLength - start;
}

test("many sanitizers and events do not exhaust memory: 200 made and freed, 4,000 events, and the wasm memory stays the same", async () => {
  // Wasm memory never shrinks: what a cycle leaked stays as growth. One
  // 64 KiB page of slack for the allocator.
  const growth = growthOver(await freshEngine("freed"), 200, true);
  assert.ok(growth <= 65_536, `the wasm memory grew ${growth} bytes over 200 cycles`);
  // The gauge sees a leak of this size: the same cycles without free()
  // (each Sanitizer kept) grow the memory by more than the slack.
  const leaked = growthOver(await freshEngine("leaked"), 200, false);
  assert.ok(leaked > 65_536, `a Sanitizer never freed grew the memory only ${leaked} bytes`);
});

test("readRequest() gives the write key and each event's text as written; whole-request errors throw", () => {
  const r = readRequest('{"writeKey":"wk_1","type":"page","properties":{"v":1.50}}', "track");
  assert.deepEqual(r, { writeKey: "wk_1", events: [{ text: '{"type":"track","properties":{"v":1.50}}' }] });
  const b = readRequest('{"batch":[{"type":"track","writeKey":"wk_2"},7]}', "batch");
  assert.equal(b.writeKey, "wk_2");
  assert.deepEqual(b.events, [{ text: '{"type":"track"}' }, { code: "event_not_object", error: "event must be a JSON object" }]);
  for (const [body, call, code] of [
    ['{"email":"jane@example.com"', "track", "invalid_json"],
    ['["jane@example.com"]', "track", "invalid_body"],
    ['{"batch":[]}', "batch", "invalid_body"],
    ["{}", "launch", "unknown_type"],
  ]) {
    assert.throws(() => readRequest(body, call), (e) => e instanceof Error && e.code === code && !e.message.includes("jane"), body);
  }
});

/**
 * The phimask command: the one make test installed from the crate's
 * package (PHIMASK_BIN), or else this checkout's release build.
 */
function phimaskCommand(root) {
  if (process.env.PHIMASK_BIN) return process.env.PHIMASK_BIN;
  execFileSync("cargo", ["build", "--release", "--quiet", "--bin", "phimask"], { cwd: root, stdio: "inherit" });
  return `${root}target/release/phimask`;
}

test("dataMap is the data map `phimask map` prints, byte for byte; an invalid policy throws with every problem", () => {
  const root = new URL("../../", import.meta.url).pathname;
  for (const file of ["policies/production.json", "policies/development.json"]) {
    const text = readFileSync(root + file, "utf8");
    for (const format of ["markdown", "html"]) {
      const cli = execFileSync(phimaskCommand(root), ["map", file, "--format", format], { cwd: root, encoding: "utf8" });
      assert.equal(dataMap(text, format), cli, `${file} ${format}`);
    }
    assert.equal(dataMap(JSON.parse(text), "markdown"), dataMap(text, "markdown"), "object or text alike");
  }
  assert.throws(() => dataMap({ ...policy, hipaa: "yes" }, "markdown"), (e) => e.code === "invalid_policy" && e.errors.some((p) => p.path === "hipaa"));
  assert.throws(() => dataMap(policy, "pdf"), (e) => e.code === "invalid_format");
});

test("explain() and processRequest() never show a key that is not a field name; duplicates are refused", () => {
  const s = new Sanitizer({ ...policy, allowlists: { event_properties: { plan: "allow", answers: "mask" } } }, KEY);
  const ev = { type: "track", event: "Booked Visit", userId: "u", properties: { "Jane Doe HIV positive": 1, answers: { "Jane Doe HIV positive": "yes", q1: "no" } } };
  const out = s.explain(ev);
  assert.deepEqual(out.amplitude.dropped, ["properties.[key]"]);
  assert.deepEqual(out.amplitude.masked, ["userId", "properties.answers.[key]", "properties.answers.q1"]);
  assert.doesNotMatch(JSON.stringify(out), /Jane|HIV/);
  const sent = JSON.parse(s.sanitizeJson(JSON.stringify(ev), "amplitude"));
  assert.deepEqual(Object.keys(sent.properties.answers), [hmacHex(KEY, "Jane Doe HIV positive"), "q1"]);
  // A key written twice: JSON.parse would keep the last copy; the engine refuses.
  const dup = '{"type":"track","event":"Booked Visit","userId":"u","properties":{"Jane Doe":{"dx":"a","dx":"HIV"}}}';
  assert.throws(() => s.explain(dup), (e) => e.code === "duplicate_key" && /properties\.\[key\]/.test(e.message) && !/Jane|HIV/.test(e.message));
  const body = new TextEncoder().encode('{"batch":[],"batch":[{"type":"track","event":"Booked Visit","userId":"u"}]}');
  assert.throws(() => s.processRequest(body, "batch"), (e) => e.code === "duplicate_key");
  s.free();
});
