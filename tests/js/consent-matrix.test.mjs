// Consent gating through the JavaScript API, against the benchmark's
// JavaScript reference (written from the documented rules, independently
// of the engine): both modes, region overrides, GPC and every consent
// shape, for every destination; processRequest's bodies and its report's
// `consent` count; the signals argument refused when it is not what the
// API documents (a misspelt key must not be ignored: it would send what
// the visitor refused).
import assert from "node:assert/strict";
import { test } from "node:test";
import { referenceSanitizer } from "../../benches/reference.mjs";
import { Sanitizer } from "../../www/dev/node.mjs";

const KEY = "consent-matrix-js-key-0123456789abcdef";

const policy = (mode) => ({
  version: 1, environment: "t", hipaa: true,
  allowlists: { event_properties: { plan: "allow", note: "allow" } },
  events: { Booked: "allow", "*": "drop" },
  destinations: {
    plain: { connection: "server-side", endpoint: "https://plain.example/" },
    stats: { connection: "server-side", endpoint: "https://stats.example/", consent: ["analytics"], format: "amplitude" },
    ads: { connection: "server-side", endpoint: "https://ads.example/", consent: ["advertising"], format: "ga4" },
    both: { connection: "server-side", endpoint: "https://both.example/", consent: ["analytics", "advertising"], mask_scope: "both" },
    vault: { connection: "server-side", endpoint: "https://vault.example/", restrict_phi: false, baa: true, consent: ["analytics"] },
  },
  consent: {
    mode,
    categories: { analytics: ["C0002", "Analytics"], advertising: ["C0004", "Advertising"] },
    gpc: ["advertising"],
    regions: { "US-WA": { mode: "opt-in" }, "US-CA": { mode: "opt-out" }, US: { mode: "opt-out" }, DE: { mode: "opt-in" } },
  },
});

const seg = (prefs) => ({ consent: { categoryPreferences: prefs } });
const rud = (allowed, denied) => ({ consentManagement: { allowedConsentIds: allowed, deniedConsentIds: denied, provider: "custom" } });
const SHAPES = {
  absent: undefined,
  "empty context": {},
  "empty consent": { consent: {} },
  "consent a string": { consent: "granted" },
  "preferences an array": seg(["C0002"]),
  "preferences null": seg(null),
  "management an array": { consentManagement: ["C0002"] },
  "allowed a string": rud("C0002", []),
  "allowed beside a garbled denial": rud(["C0002", "C0004"], "C0004"),
  "denied null": rud(["C0002", "C0004"], null),
  "denied not strings": rud(["C0002"], [4, { C0004: true }]),
  "segment grants analytics": seg({ C0002: true }),
  "segment grants all": seg({ C0002: true, C0004: true }),
  "segment denies advertising": seg({ C0002: true, C0004: false }),
  "segment 'true' string": seg({ C0002: "true" }),
  "segment other case": seg({ c0002: true }),
  // Ids compare exactly: another case neither grants nor denies.
  "segment grants, other case denies": seg({ C0002: true, C0004: true, c0002: false, advertising: false }),
  "rudderstack allows, other case denied": rud(["C0002", "Advertising"], ["c0002", "ADVERTISING"]),
  // A garbled allowed list makes the whole object absent, its denial too.
  "denied beside an allowed object": rud({ C0002: true }, ["C0004"]),
  "segment by name": seg({ Analytics: true, Advertising: true }),
  "segment __proto__": JSON.parse('{"consent":{"categoryPreferences":{"__proto__":{"C0002":true},"C0004":true}}}'),
  "rudderstack allows all": rud(["C0002", "C0004"], []),
  "rudderstack denies advertising": rud(["C0002", "C0004"], ["C0004"]),
  "disagreeing": { ...seg({ C0002: true, C0004: true }), consentManagement: { deniedConsentIds: ["C0002"] } },
  "disagreeing the other way": { ...seg({ C0004: false }), ...rud(["C0004", "C0002"], []) },
};

const SIGNALS = [undefined, {}, { gpc: true }, { region: "us-wa" }, { region: "US-CA" }, { region: "US-CA", gpc: true }, { region: "US-TX" }, { region: "DE" }, { region: "FR" }];

const eventWith = (context) => ({
  type: "track", event: "Booked", userId: "patient-42", messageId: "m-1",
  properties: { plan: "gold", note: "Jane Doe, HIV positive", diagnosis: "HIV positive" },
  ...(context === undefined ? {} : { context }),
});

test("sanitizeJson agrees with the reference for every mode, region, signal, shape and destination", () => {
  let sent = 0;
  let gated = 0;
  for (const mode of ["opt-in", "opt-out"]) {
    const p = policy(mode);
    const s = new Sanitizer(p, KEY);
    const references = Object.fromEntries(
      Object.keys(p.destinations).filter((d) => d !== "vault").map((d) => [d, referenceSanitizer(p, d, KEY)]),
    );
    for (const signals of SIGNALS) {
      for (const [shape, context] of Object.entries(SHAPES)) {
        const text = JSON.stringify(eventWith(context));
        for (const d of Object.keys(p.destinations)) {
          const got = s.sanitizeJson(text, d, signals);
          const what = `${mode} ${JSON.stringify(signals)} ${shape} → ${d}`;
          // The BAA warehouse is unrestricted (the reference models the
          // restricted ones): it gets the event unchanged, or nothing.
          const want = d === "vault" ? (references.stats(text, signals ?? {}) === null ? null : text) : references[d](text, signals ?? {});
          assert.equal(got, want, what);
          // sanitize (objects) and explain say the same.
          assert.equal(s.sanitize(JSON.parse(text), d, signals) === null, want === null, what);
          const e = s.explain(text, signals)[d];
          assert.equal(e.sent, want !== null, what);
          if (want === null) {
            assert.equal(e.code, "consent", what);
            gated += 1;
          } else {
            sent += 1;
          }
        }
      }
    }
  }
  assert.ok(sent > 300 && gated > 300, `sent ${sent}, gated ${gated}`);
});

test("processRequest: each destination's bodies hold exactly the events consent lets through, and the report counts the rest", () => {
  const p = policy("opt-in");
  const s = new Sanitizer(p, KEY);
  const events = Object.values(SHAPES).map(eventWith);
  const body = new TextEncoder().encode(JSON.stringify({ batch: events }));
  for (const signals of SIGNALS) {
    const done = s.processRequest(body, "batch", undefined, signals);
    assert.equal(done.accepted, events.length);
    for (const d of Object.keys(p.destinations)) {
      const want = events.map((e, i) => [i, s.sanitizeJson(JSON.stringify(e), d, signals)]).filter(([, out]) => out !== null).map(([i]) => i);
      assert.deepEqual((done.events[d] ?? []).flat(), want, `${JSON.stringify(signals)} → ${d}`);
      assert.equal(done.report[d].events, want.length);
      assert.equal(done.report[d].consent, events.length - want.length, `${JSON.stringify(signals)} → ${d}`);
      const bodies = (done.bodies[d] ?? []).join("");
      // The note (allowed by the lists, PHI no detector sees) rides in
      // each event sent, in every format, and in no event consent kept back.
      assert.equal(bodies.split("Jane Doe").length - 1, want.length, `${JSON.stringify(signals)} → ${d}`);
      assert.equal(bodies.includes("diagnosis"), d === "vault" && want.length > 0, d);
    }
  }
});

test("explain lists each purpose's decision for gated destinations only", () => {
  const s = new Sanitizer(policy("opt-in"), KEY);
  const out = s.explain(eventWith({ ...seg({ C0002: true }), ...rud([], ["Advertising"]) }), { region: "US-WA" });
  assert.deepEqual(out.both.consent, [
    { purpose: "analytics", granted: true, by: "categoryPreferences", id: "C0002" },
    { purpose: "advertising", granted: false, by: "deniedConsentIds", id: "Advertising" },
  ]);
  assert.equal(out.both.code, "consent");
  assert.match(out.both.reason, /consent/);
  assert.equal(out.plain.consent, undefined);
  assert.deepEqual(s.explain(eventWith(undefined), { region: "us-wa", gpc: true }).both.consent, [
    { purpose: "analytics", granted: false, by: "opt-in", region: "US-WA" },
    { purpose: "advertising", granted: false, by: "gpc" },
  ]);
  assert.deepEqual(s.explain(eventWith(undefined)).stats.consent, [{ purpose: "analytics", granted: false, by: "opt-in" }]);
  // A grant from RudderStack's allowed list names that list and the id.
  assert.deepEqual(s.explain(eventWith(rud(["Analytics"], [])), {}).stats, {
    sent: true, reason: "sent, sanitized by its lists", code: "sanitized", dropped: ["properties.diagnosis", "context.consentManagement"], masked: ["userId", "messageId"], transformed: [],
    consent: [{ purpose: "analytics", granted: true, by: "allowedConsentIds", id: "Analytics" }],
  });
});

test("signals that are not { gpc: boolean, region: string } are refused, never ignored", () => {
  const s = new Sanitizer(policy("opt-in"), KEY);
  const text = JSON.stringify(eventWith(seg({ C0004: true })));
  const body = new TextEncoder().encode(text);
  for (const bad of [true, "gpc", 1, [], { GPC: true }, { gpc: "true" }, { gpc: 1 }, { region: 5 }, { region: "Washington" }, { region: "US-WASH" }, { region: "" }, { region: "<img src=x>" }, { gpc: true, extra: 1 }]) {
    for (const call of [() => s.sanitizeJson(text, "ads", bad), () => s.sanitize(JSON.parse(text), "ads", bad), () => s.explain(text, bad), () => s.processRequest(body, "track", undefined, bad)]) {
      assert.throws(call, (e) => e.code === "invalid_signals" && !e.message.includes("<img"), JSON.stringify(bad));
    }
  }
  // null and undefined are "no signals".
  assert.notEqual(s.sanitizeJson(text, "ads", null), null);
  assert.notEqual(s.sanitizeJson(text, "ads", undefined), null);
  assert.equal(s.sanitizeJson(text, "ads", { gpc: true }), null);
});

test("a policy without consent behaves exactly as before, whatever the signals", () => {
  const p = policy("opt-in");
  delete p.consent;
  for (const d of Object.values(p.destinations)) delete d.consent;
  const s = new Sanitizer(p, KEY);
  for (const context of Object.values(SHAPES)) {
    const text = JSON.stringify(eventWith(context));
    for (const d of Object.keys(p.destinations)) {
      const plain = s.sanitizeJson(text, d);
      assert.notEqual(plain, null);
      for (const signals of SIGNALS) assert.equal(s.sanitizeJson(text, d, signals), plain);
    }
  }
});
