// Consent gating attacked through the JavaScript API and the edge Worker,
// as a careless integrator and a hostile visitor would: signals objects
// whose properties throw, hide from Object.keys, ride on a prototype or
// are no plain object at all (a Map); Sec-GPC sent twice as separate
// headers; request.cf codes that only look like a region; many requests
// with different signals at once on the one shared engine; a batch whose
// shared consent an event's malformed context would drop; and hostile
// paths to /.well-known/gpc.json. PHI no detector sees ("Jane Doe", "HIV
// positive") rides in every event: a gated-out destination must receive
// nothing of it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Sanitizer } from "../../www/dev/node.mjs";
import { bundle, startDestination, startWorker, until } from "./worker-harness.mjs";

const KEY = "consent-attacks-masking-key-0123456789ab";
const WRITE_KEY = "wk_consent_attacks";
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;

const policyWith = (dest) => ({
  version: 1, environment: "consent-attacks", hipaa: true,
  allowlists: { event_properties: { note: "allow" } },
  consent: {
    mode: "opt-in",
    categories: { analytics: ["C0002"], advertising: ["C0004"] },
    gpc: ["advertising"],
    regions: { "US-CA": { mode: "opt-out" } },
  },
  destinations: {
    ads: { connection: "server-side", endpoint: dest.ads, consent: ["advertising"] },
    plain: { connection: "server-side", endpoint: dest.plain },
  },
});
const PHI = "Jane Doe HIV positive";
const GRANTED = { consent: { categoryPreferences: { C0002: true, C0004: true } } };
const event = (context, id = "m1") => ({ type: "track", event: "Booked", userId: "u1", messageId: id, properties: { note: PHI }, context });

describe("signals objects a careless integrator passes", () => {
  const s = new Sanitizer(policyWith({ ads: "https://ads.example/", plain: "https://plain.example/" }), KEY);
  const text = JSON.stringify(event(GRANTED));
  const body = new TextEncoder().encode(text);
  // Every call that takes signals, as a function of them.
  const calls = {
    sanitize: (signals) => s.sanitize(JSON.parse(text), "ads", signals),
    sanitizeJson: (signals) => s.sanitizeJson(text, "ads", signals),
    explain: (signals) => s.explain(JSON.parse(text), signals),
    processRequest: (signals) => s.processRequest(body, "track", undefined, signals),
  };

  test("the same granted event reaches ads without signals and not under GPC", () => {
    assert.notEqual(calls.sanitizeJson(undefined), null);
    assert.equal(calls.sanitizeJson({ gpc: true }), null);
    // A null prototype and a frozen object are plain objects all the same.
    const bare = Object.assign(Object.create(null), { gpc: true });
    assert.equal(calls.sanitizeJson(bare), null);
    assert.equal(calls.sanitizeJson(Object.freeze({ gpc: true })), null);
  });

  const throwing = {
    "a gpc getter that throws": () => ({ get gpc() { throw new Error("not ready"); } }),
    "a region getter that throws": () => ({ get region() { throw new Error("not ready"); } }),
    "gpc on the prototype": () => Object.create({ gpc: true }),
    "region on the prototype": () => Object.create({ region: "US-CA" }),
    "a misspelt key hidden from Object.keys": () => Object.defineProperty({}, "GPC", { value: true, enumerable: false }),
    "a symbol key": () => ({ [Symbol.for("gpc")]: true }),
    "a Map": () => new Map([["gpc", true]]),
    "a Date": () => new Date(),
    "a class instance": () => new (class Signals { constructor() { this.gpc = true; } })(),
    "a Proxy whose keys throw": () => new Proxy({ gpc: true }, { ownKeys() { throw new Error("trap"); } }),
    "a Proxy whose reads throw": () => new Proxy({ gpc: true }, { get() { throw new Error("trap"); } }),
    "a region object with toString": () => ({ region: { toString: () => "US-CA" } }),
    "a region String object": () => ({ region: new String("US-CA") }),
    "a gpc Boolean object": () => ({ gpc: new Boolean(true) }),
  };
  for (const [what, make] of Object.entries(throwing)) {
    test(`${what} throws invalid_signals, never reads as "no GPC"`, () => {
      for (const [name, call] of Object.entries(calls)) {
        assert.throws(() => call(make()), (e) => e.code === "invalid_signals", `${name}: ${what}`);
      }
      // The engine is usable after: nothing half-done stays behind.
      assert.equal(calls.sanitizeJson({ gpc: true }), null);
      assert.notEqual(calls.sanitizeJson({}), null);
    });
  }

  test("region codes that only look like one are refused", () => {
    for (const region of ["US-C\u0661", "US-CA\u0000", "US-\u0421A", "US-", "-CA", "US-CA ", "U\u017f-CA", `US-${"A".repeat(5000)}`, "us-ca\u0131"]) {
      assert.throws(() => calls.sanitizeJson({ region }), (e) => e.code === "invalid_signals", JSON.stringify(region));
    }
    // Lower case is the same region: opt-out there, so the event without stamps passes.
    const bare = JSON.stringify(event(undefined));
    assert.notEqual(s.sanitizeJson(bare, "ads", { region: "us-ca" }), null);
    assert.equal(s.sanitizeJson(bare, "ads", { region: "us-ca", gpc: true }), null);
  });

  test("a batch's shared denial survives an event whose own context is not an object", () => {
    for (const own of ["x", null, [], 0, [{ consent: { categoryPreferences: { C0004: true } } }]]) {
      const batch = { batch: [{ ...event(own) }], context: { consent: { categoryPreferences: { C0004: false } } } };
      const out = s.processRequest(new TextEncoder().encode(JSON.stringify(batch)), "batch", undefined, { region: "US-CA" });
      assert.equal(out.accepted, 1);
      assert.equal(out.report.ads.consent, 1, JSON.stringify(own));
      assert.deepEqual(out.bodies.ads, []);
      assert.equal(out.bodies.plain.length, 1);
    }
  });
});

describe("the edge Worker under hostile signals", () => {
  const dest = {};
  let built;
  let worker;
  let n = 0;

  /** Posts a track event; `headers` as [name, value] pairs (a name may repeat). */
  const post = (body, { headers = [], cf = { country: undefined, regionCode: undefined } } = {}) =>
    worker.mf.dispatchFetch("http://edge.test/v1/track", {
      method: "POST",
      headers: [["Content-Type", "application/json"], ["Authorization", basic(WRITE_KEY)], ...headers],
      body: JSON.stringify(body),
      cf,
    });
  // The note is allowlisted (so in clear at ads, where messageId is masked): it names the event.
  const notes = (d) => dest[d].delivered().map((e) => e.properties?.note);
  const tagged = (context, tag) => ({ ...event(context, tag), properties: { note: `${PHI} ${tag}` } });

  /** Sends events (tag → context, headers, cf) and checks ads received exactly `toAds` of them. */
  async function exactly(cases, toAds) {
    const before = { ads: notes("ads").length, plain: notes("plain").length };
    const answers = await Promise.all(cases.map(({ tag, context, headers, cf }) =>
      post(tagged(context, tag), { headers, cf }).then(async (r) => [r.status, await r.text()])));
    for (const [status, text] of answers) assert.equal(status, 200, text);
    await until(() => notes("plain").length >= before.plain + cases.length, "every event at plain");
    // A last granted event, sent after the others: once it is at ads, so is everything before it.
    const sentinel = `sentinel-${++n}`;
    assert.equal((await post(tagged(GRANTED, sentinel))).status, 200);
    await until(() => notes("ads").includes(`${PHI} ${sentinel}`), "the sentinel at ads");
    const got = notes("ads").slice(before.ads).filter((note) => !note.endsWith(sentinel));
    assert.deepEqual(got.sort(), toAds.map((tag) => `${PHI} ${tag}`).sort());
  }

  before(async () => {
    dest.ads = await startDestination();
    dest.plain = await startDestination();
    built = await bundle(policyWith({ ads: dest.ads.url, plain: dest.plain.url }));
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, GPC_LAST_UPDATE: "2026-12-05" });
  });

  after(async () => {
    await worker?.mf.dispose();
    await Promise.all(Object.values(dest).map((d) => d?.close()));
    built?.cleanup();
  });

  test("many requests at once, some under GPC, some from California: no request's signals reach another's events", async () => {
    const cases = [];
    for (let i = 0; i < 48; i++) {
      const gpc = i % 2 === 0;
      const california = i % 3 === 0;
      const stamped = i % 4 < 2;
      cases.push({
        tag: `c${i}`,
        // Granted events reach ads unless GPC; unstamped ones only in California (opt-out) without GPC.
        toAds: !gpc && (stamped || california),
        context: stamped ? GRANTED : undefined,
        headers: gpc ? [["Sec-GPC", "1"]] : [],
        cf: california ? { country: "US", regionCode: "CA" } : { country: "US", regionCode: "WA" },
      });
    }
    const toAds = cases.filter((c) => c.toAds).map((c) => c.tag);
    assert.ok(toAds.length > 0 && toAds.length < cases.length);
    await exactly(cases, toAds);
  });

  test("Sec-GPC as two separate headers, or its name in any case, is a GPC signal", async () => {
    await exactly([
      { tag: "twice", context: GRANTED, headers: [["Sec-GPC", "0"], ["Sec-GPC", "1"]] },
      { tag: "lower", context: GRANTED, headers: [["sec-gpc", "1"]] },
      { tag: "upper", context: GRANTED, headers: [["SEC-GPC", "1"]] },
      { tag: "none", context: GRANTED, headers: [["Sec-GPC", "0"], ["Sec-GPC", "0"]] },
    ], ["none"]);
  });

  test("request.cf codes that only look like California's are not its opt-out", async () => {
    const fake = [
      // Miniflare carries cf in a header: look-alikes within Latin-1.
      { country: "US", regionCode: "C\u00c0" },
      { country: "US", regionCode: "CA\u0000" },
      { country: "US", regionCode: "CA\u00a0" },
      { country: "US", regionCode: "US-CA" },
      { country: "US-CA", regionCode: undefined },
      { country: "U\u00df", regionCode: "CA" },
      { country: "US", regionCode: "CA".padEnd(4000, "A") },
      { country: { toString: () => "US" }, regionCode: "CA" },
    ];
    await exactly([
      ...fake.map((cf, i) => ({ tag: `fake${i}`, cf })),
      { tag: "real", cf: { country: "us", regionCode: "ca" } },
    ], ["real"]);
  });

  test("a batch whose shared context refuses advertising: an event's own context that is not an object does not drop the refusal (California, opt-out)", async () => {
    const before = { ads: notes("ads").length, plain: notes("plain").length };
    const own = ["x", null, [], 7];
    const batch = {
      context: { consent: { categoryPreferences: { C0004: false } } },
      batch: own.map((context, i) => tagged(context, `own${i}`)),
    };
    const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: basic(WRITE_KEY) },
      body: JSON.stringify(batch),
      cf: { country: "US", regionCode: "CA" },
    });
    assert.equal(res.status, 200, await res.text());
    await until(() => notes("plain").length >= before.plain + own.length, "the batch at plain");
    const sentinel = `sentinel-${++n}`;
    assert.equal((await post(tagged(GRANTED, sentinel))).status, 200);
    await until(() => notes("ads").includes(`${PHI} ${sentinel}`), "the sentinel at ads");
    assert.deepEqual(notes("ads").slice(before.ads), [`${PHI} ${sentinel}`]);
  });

  test("/.well-known/gpc.json under hostile paths: only its own path answers, and nothing of the policy or secrets leaks", async () => {
    const fetchText = async (path, init) => {
      const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, init);
      return { status: res.status, text: await res.text() };
    };
    for (const path of ["/.well-known/gpc.json?x=1", "/.well-known/gpc.json#frag", "/x/../.well-known/gpc.json"]) {
      const { status, text } = await fetchText(path);
      assert.equal(status, 200, path);
      assert.deepEqual(JSON.parse(text), { gpc: true, lastUpdate: "2026-12-05" }, path);
    }
    for (const path of ["//.well-known/gpc.json", "/.well-known/gpc.json/", "/.well-known/%67pc.json", "/.well-known/gpc.json%00", "/.well-known/gpc.json;x", "/.well-known//gpc.json"]) {
      const { status, text } = await fetchText(path);
      assert.equal(status, 404, path);
      for (const secret of [KEY, WRITE_KEY, "C0004", "advertising", "US-CA", "lastUpdate"]) assert.ok(!text.includes(secret), `${path}: ${secret}`);
    }
    const posted = await fetchText("/.well-known/gpc.json", { method: "POST", body: "{}", headers: { Authorization: basic(WRITE_KEY) } });
    assert.equal(posted.status, 405);
    assert.ok(!posted.text.includes(WRITE_KEY) && !posted.text.includes("C0004"));
  });
});
