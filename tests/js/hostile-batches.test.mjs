// Hostile batches against reading a batch's events where they stand in
// the body (one read) and copying them (a writeKey inside, or a
// shared context/integrations): hostile formatting, escaped and repeated
// keys, writeKey at any depth and spelling, the depth and size limits,
// PHI planted where no list names it. The Worker's engine (pkg-worker) is
// compared with itself (in place / copied / single call) and with the
// whole package's per-event engine (readRequest + sanitizeJson).
import assert from "node:assert/strict";
import { test } from "node:test";
import { preparePolicy, readRequest, Sanitizer } from "../../www/dev/node.mjs";
import { edge } from "./worker-engine.mjs";

const KEY = "hostile-batches-key-0123456789abcdefghij";
const policy = {
  version: 1, environment: "t", hipaa: true,
  allowlists: {
    event_properties: {
      plan: "allow", email: { action: "mask", normalize: "email" }, notes: { action: "allow", scan: true },
      "items[].sku": "allow", meta: "mask", zip: "zip3", url: "url", birth: "year",
    },
    user_properties: { tier: "allow", age: "age" },
    group_properties: { size: "allow" },
    context: { "library.name": "allow", ip: "ip", "page.url": "url", locale: "allow" },
    integrations: { "amp.session_id": "allow" },
  },
  events: { Secret: "drop", "*": "allow" },
  destinations: {
    amp: { connection: "server-side", endpoint: "https://amp.example/2/httpapi", format: "amplitude" },
    mix: { connection: "server-side", endpoint: "https://mix.example/import", format: "mixpanel", allowlists: { event_properties: { plan2: "allow" } } },
    ga: { connection: "server-side", endpoint: "https://ga.example/mp/collect", format: "ga4", mask_scope: "g" },
    ph: { connection: "server-side", endpoint: "https://ph.example/batch/", format: "posthog", calls: ["track", "identify"] },
    seg: { connection: "server-side", endpoint: "https://seg.example/v1/batch", format: "segment" },
    nd: { connection: "server-side", endpoint: "https://nd.example/in", format: "ndjson", allowlists: { user_properties: { city: "allow" } } },
    lake: { connection: "server-side", endpoint: "https://lake.example/in", format: "ndjson", restrict_phi: false, baa: true },
  },
};
const RESTRICTED = ["amp", "mix", "ga", "ph", "seg", "nd"];
const CREDS = { amp: "0123456789abcdef0123456789abcdef", mix: "mix-secret", ga: "G-HOSTILE1:ga-secret", ph: "phc_0123456789abcdef0123456789abcdef", seg: null, nd: null, lake: null };
const prepared = preparePolicy(policy);

function worker() {
  const s = edge.Sanitizer.fromPrepared(prepared, KEY);
  for (const [d, c] of Object.entries(CREDS)) s.connect(d, c);
  return s;
}
const reference = new Sanitizer(policy, KEY);
const enc = (s) => new TextEncoder().encode(s);
function run(s, body, call = "batch") {
  try {
    const r = s.processRequest(enc(body), call);
    delete r.writeKey;
    return r;
  } catch (e) {
    return { thrown: e.code };
  }
}

// Deterministic hostile formatting: CR/LF/tab runs between tokens, keys
// and values with \u escapes (upper and lower hex), escaped slashes.
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
}
function writer(r) {
  const pick = (a) => a[Math.floor(r() * a.length)];
  const ws = () => (r() < 0.5 ? "" : Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick([" ", "\t", "\n", "\r", "\r\n"])).join(""));
  const str = (s) => {
    let o = '"';
    for (const ch of s) {
      const u = ch.codePointAt(0);
      if (ch === '"') o += '\\"';
      else if (ch === "\\") o += "\\\\";
      else if (ch === "/" && r() < 0.3) o += "\\/";
      else if (u < 0x10000 && r() < 0.15) o += "\\u" + (r() < 0.5 ? u.toString(16) : u.toString(16).toUpperCase()).padStart(4, "0");
      else o += ch;
    }
    return o + '"';
  };
  const text = (v) => {
    if (v && v.raw !== undefined) return v.raw;
    if (v === null || typeof v !== "object") return typeof v === "string" ? str(v) : String(v);
    if (Array.isArray(v)) return "[" + ws() + v.map((x) => ws() + text(x) + ws()).join(",") + "]";
    return "{" + ws() + Object.entries(v).map(([k, x]) => ws() + str(k) + ws() + ":" + ws() + text(x) + ws()).join(",") + ws() + "}";
  };
  const event = () => {
    const type = pick(["track", "track", "identify", "group", "page", "screen", "alias"]);
    const e = { type, userId: pick(["u-1", "PHIUID-x", { raw: "12345678901234567890123" }]) };
    if (type === "track") e.event = pick(["Booked", "Secret"]);
    if (type === "page" || type === "screen") e.name = "Home";
    if (type === "group") e.groupId = "g-1";
    if (type === "alias") e.previousId = "p-1";
    if (r() < 0.5) e.messageId = "m-" + Math.floor(r() * 100);
    if (r() < 0.5) e.timestamp = "2026-11-23T10:00:00Z";
    if (r() < 0.8) e.properties = { plan: "pro", email: "Jane@X.com", diag: "HIV positive", notes: "call 555-867-5309", items: [{ sku: "s1", name: "Jane Doe" }], meta: { a: [1, { raw: "1e400" }, "Jane Doe"] }, zip: "02139", url: "https://x.example/p?name=Jane%20Doe", birth: "1980-01-02" };
    if (r() < 0.5) e.traits = { tier: "gold", name: "Jane Doe", size: 3, age: 44, diag: "HIV positive" };
    if (r() < 0.6) e.context = { traits: { tier: "gold", name: "Jane Doe" }, ip: "10.1.2.3", library: { name: "analytics.js" }, page: { url: "https://x.example/?ssn=123-45-6789" }, diag: "HIV positive" };
    if (r() < 0.4) e.integrations = pick([{ All: false, seg: true }, { amp: false }, { All: true, amp: { session_id: 5, diag: "HIV positive" } }, {}]);
    if (r() < 0.3) e.diagnosis = "HIV positive";
    const entries = Object.entries(e);
    for (let i = entries.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [entries[i], entries[j]] = [entries[j], entries[i]]; }
    return text(Object.fromEntries(entries));
  };
  return { event, ws, pick };
}
const withWriteKey = (e, member) => e.replace("{", `{${member},`);
const PHI = ["Jane Doe", "HIV positive", "867-5309", "123-45-6789", "PHIUID", "Jane@X"];

function noLeaks(res, label) {
  for (const [d, bodies] of Object.entries(res.bodies ?? {})) {
    for (const body of bodies) {
      assert.ok(!body.includes("WKSECRET"), `${label}: a write key in ${d}`);
      if (RESTRICTED.includes(d)) for (const v of PHI) assert.ok(!body.includes(v), `${label}: ${v} reached ${d}`);
    }
  }
}

test("events read in place give the bytes of copied ones, whatever the formatting", () => {
  const s = worker();
  for (let seed = 1; seed <= 150; seed++) {
    const r = rng(seed * 7919);
    const w = writer(r);
    const events = Array.from({ length: 1 + Math.floor(r() * 5) }, () => w.event());
    const inPlace = `{${w.ws()}"batch"${w.ws()}:${w.ws()}[${events.map((e) => w.ws() + e + w.ws()).join(",")}]${w.ws()}}`;
    const spellings = ['"writeKey":"WKSECRET"', '"write\\u004bey":"WKSECRET"', '"\\u0077riteKey" : {"a":["WKSECRET"]}'];
    const copied = `{"batch":[${events.map((e) => withWriteKey(e, w.pick(spellings))).join(",")}]}`;
    // Some in place, some copied, in one batch.
    const mixed = `{"batch":[${events.map((e, i) => (i % 2 ? withWriteKey(e, spellings[0]) : e)).join(",")}]}`;
    const a = run(s, inPlace);
    // Compared only when the request went through: two equal refusals prove nothing.
    assert.ok(!("thrown" in a) && a.accepted > 0, `seed ${seed}: ${JSON.stringify(a.thrown ?? a.rejected)}`);
    assert.deepStrictEqual(a, run(s, copied), `seed ${seed}`);
    assert.deepStrictEqual(a, run(s, mixed), `seed ${seed} (mixed)`);
    noLeaks(a, `seed ${seed}`);
  }
  s.free();
});

test("events read in place give what the per-event engine gives (readRequest + sanitizeJson)", () => {
  const s = worker();
  for (let seed = 1; seed <= 150; seed++) {
    const r = rng(seed * 104729 + 3);
    const w = writer(r);
    const events = Array.from({ length: 1 + Math.floor(r() * 4) }, () => w.event());
    const body = `{"batch":[${events.map((e) => w.ws() + e + w.ws()).join(",")}]}`;
    const res = run(s, body);
    const texts = readRequest(body, "batch").events;
    for (const dest of ["seg", "nd", "lake"]) {
      const items = [];
      const indexes = [];
      texts.forEach((e, i) => {
        if (!("text" in e)) return;
        let out = null;
        try { out = reference.sanitizeJson(e.text, dest); } catch { out = null; }
        if (out !== null) { items.push(out); indexes.push(i); }
      });
      const expected = items.length
        ? [[indexes], [dest === "seg" ? `{"batch":[${items.join(",")}]}` : items.map((t) => t.replace(/[\r\n]/g, " ")).join("\n") + "\n"]]
        : [[], []];
      assert.deepStrictEqual([res.events[dest], res.bodies[dest]], expected, `seed ${seed} ${dest}`);
    }
  }
  s.free();
});

test("writeKey in any spelling, at any depth, in place or copied or single, is in no body", () => {
  const s = worker();
  const inner = [
    '{"writeKey":"WKSECRET"}',
    '{"a":1,"write\\u004bey":"WKSECRET"}',
    '[{"x":[{"\\u0077\\u0072\\u0069\\u0074\\u0065\\u004b\\u0065\\u0079":"WKSECRET","b":2}]}]',
    '{"writeKey":{"writeKey":"WKSECRET"}}',
    '{ "writeKey" : "WKSECRET" , "z":1 }',
    '{"z":1 , "writeKey" : "WKSECRET" }',
    '[{"writeKey":"WKSECRET"},{"writeKey":"WKSECRET"}]',
  ];
  for (const v of inner) {
    for (const where of ["properties", "context", "integrations", "unlisted"]) {
      const ev = `{"type":"track","event":"E","userId":"u",\r\n"${where}":{"plan":${v}}}`;
      for (const [body, call] of [
        [`{"batch":[${ev},\n${ev}]}`, "batch"],
        [`{"batch":[${ev}],"context":{"writeKey":"WKSECRET","k":1}}`, "batch"],
        [`{"batch":[${ev}],"integrations":{"writeKey":"WKSECRET"}}`, "batch"],
        [ev, "track"],
      ]) {
        const res = run(s, body, call);
        assert.ok(!res.thrown, `${body}: ${res.thrown}`);
        assert.ok(res.accepted > 0, body);
        for (const bodies of Object.values(res.bodies)) for (const b of bodies) assert.ok(!b.includes("WKSECRET"), `${body}\n${b}`);
        for (const e of readRequest(body, call).events) assert.ok(!e.text.includes("WKSECRET"), body);
      }
    }
  }
  // At the top of an event, first, last or only.
  for (const ev of [
    '{ "writeKey" : "WKSECRET" , "type":"track","event":"E","userId":"u"}',
    '{"type":"track","event":"E","userId":"u" , "write\\u004Bey" : "WKSECRET" }',
  ]) {
    const res = run(s, `{"batch":[${ev}]}`);
    assert.equal(res.accepted, 1);
    for (const bodies of Object.values(res.bodies)) for (const b of bodies) assert.ok(!b.includes("WKSECRET"), b);
  }
  s.free();
});

test("a key written twice (one copy escaped) refuses the event in place and copied, the request when single", () => {
  const s = worker();
  const good = '{"type":"track","event":"E","userId":"ok"}';
  const many = (k) => Array.from({ length: 20 }, (_, i) => `"k${i}":${i}`).join(",") + "," + k;
  for (const ev of [
    '{"type":"track","event":"E","userId":"u","properties":{"plan":1,"pl\\u0061n":"HIV positive"}}',
    '{"type":"track","event":"E","userId":"u","properties":{"plan":{"a":[{"b":1,"\\u0062":"HIV positive"}]}}}',
    `{"type":"track","event":"E","userId":"u","properties":{${many('"k\\u0033":"HIV positive"')}}}`,
    '{"type":"track","event":"E","userId":"u","us\\u0065rId":"HIV positive"}',
    `{"type":"track","event":"E","userId":"u",${many('"userId":"HIV positive"')}}`,
    '{"type":"track","event":"E","userId":"u","integrations":{"All":false,"A\\u006cl":true}}',
    '{"type":"track","event":"E","userId":"u","properties":{"writeKey":"a","write\\u004bey":"HIV positive"}}',
  ]) {
    for (const body of [`{"batch":[${good},${ev},${good}]}`, `{"batch":[${good},${ev},${good}],"context":{"z":1}}`, `{"batch":[${good},${withWriteKey(ev, '"writeKey":"w"')},${good}]}`]) {
      const res = run(s, body);
      assert.equal(res.accepted, 2, body);
      assert.deepStrictEqual(res.rejected.map((r) => [r.index, r.code]), [[1, "duplicate_key"]], body);
      noLeaks(res, body);
    }
    assert.equal(run(s, ev, "track").thrown, "duplicate_key");
  }
  for (const body of [
    `{"batch":[${good}],"b\\u0061tch":[${good}]}`,
    `{${many(`"batch":[${good}]`)},"batch":[{"type":"track","event":"E","userId":"u","properties":{"diag":"HIV positive"}}]}`,
    `{"batch":[${good}],"context":{"a":1,"\\u0061":2}}`,
  ]) assert.equal(run(s, body).thrown, "duplicate_key", body);
  s.free();
});

test("the depth and size limits hold alike in place, copied, single and per event", () => {
  const s = worker();
  const outcomes = [];
  const objs = (n) => '{"a":'.repeat(n) + "1" + "}".repeat(n);
  const arrays = (n) => "[".repeat(n) + " \r\n " + "]".repeat(n);
  for (const where of ["properties", "integrations", "context", "unlisted"]) {
    for (const nest of [objs, arrays]) {
      for (const n of [62, 63, 64]) {
        const ev = `{"type":"track","event":"E","userId":"u","${where}":${nest(n)}}`;
        let expected = "ok";
        try { reference.sanitizeJson(ev, "seg"); } catch (e) { expected = e.code; }
        outcomes.push(`${where} ${nest.name} ${n}: ${expected}`);
        for (const [body, call] of [[`{"batch":[${ev}]}`, "batch"], [`{"batch":[${withWriteKey(ev, '"writeKey":"x"')}]}`, "batch"], [ev, "track"]]) {
          const res = run(s, body, call);
          assert.equal(res.rejected[0]?.code ?? "ok", expected, `${where} ${nest.name} ${n} ${call}`);
        }
      }
    }
  }
  const members = (pad) => ['"type":"track"', '"event":"E"', '"userId":"u"', `"properties":{"plan":"${"x".repeat(pad)}"}`];
  const baseLen = `{${members(0).join(",")}}`.length;
  for (const size of [32767, 32768, 32769]) {
    const m = members(size - baseLen);
    // White space between members is not the event's.
    const spaced = "{ \r\n" + m.map((x) => x.replace(/^("[^"]*"):/, "$1 \t:\n ")).join(" \r\n , \n") + " \n}";
    const expected = size > 32768 ? "event_too_large" : "ok";
    for (const [body, call] of [[`{"batch":[${spaced}]}`, "batch"], [`{"batch":[${withWriteKey(spaced, '"writeKey":"x"')}]}`, "batch"], [spaced, "track"]]) {
      assert.equal(run(s, body, call).rejected[0]?.code ?? "ok", expected, `${size} ${call}`);
    }
  }
  // What the per-event engine said, pinned: 64 levels are too deep
  // before anything else (integrations must be an object, so nested
  // arrays there are refused when not too deep).
  const pinned = [];
  for (const where of ["properties", "integrations", "context", "unlisted"]) {
    for (const nest of ["objs", "arrays"]) {
      for (const n of [62, 63, 64]) {
        const code = n === 64 ? "event_too_deep" : where === "integrations" && nest === "arrays" ? "invalid_integrations" : "ok";
        pinned.push(`${where} ${nest} ${n}: ${code}`);
      }
    }
  }
  assert.deepStrictEqual(outcomes, pinned);
  s.free();
});

test("shared context and integrations (All:false) copy every event: routing and lists hold", () => {
  const s = worker();
  const ev = (id, extra = "") => `{"type":"track","event":"E","userId":"${id}","properties":{"plan":"p","diag":"HIV positive"}${extra}}`;
  const body = `{"batch":[${ev("a")},${ev("b", ',"integrations":{"amp":true}')},${withWriteKey(ev("c"), '"writeKey":"WKSECRET"')}],` +
    `"context":{"diag":"HIV positive","traits":{"tier":"t","name":"Jane Doe"},"writeKey":"WKSECRET"},"integrations":{"All":false,"seg":true}}`;
  const res = run(s, body);
  assert.equal(res.accepted, 3);
  noLeaks(res, "shared");
  // Events without their own integrations take the batch's (seg only);
  // one with its own is routed by it alone (All absent: every one).
  assert.deepStrictEqual(res.events.seg, [[0, 1, 2]]);
  for (const d of ["amp", "nd", "lake"]) assert.deepStrictEqual(res.events[d].flat(), [1], d);
  s.free();
});

// White space the client put between a value's tokens is copied as
// written; an NDJSON body (restricted or under a BAA) must still hold one
// event a line, so no value can end a line and plant an event of its own.
test("every NDJSON line is one JSON event, whatever line breaks the client put inside values", () => {
  const s = worker();
  const ev = '{"type":"track","event":"Booked","userId":"u-1","properties":{"plan":[\r\n{"type":"track","event":"Forged","userId":"victim","properties":{"diag":"HIV positive"}}\n]}}';
  const res = run(s, `{"batch":[${ev},{"type":"track","event":"Booked",\n"userId":"u-2"}]}`);
  for (const d of ["nd", "lake"]) {
    const lines = res.bodies[d].flatMap((body) => body.split(/\r?\n|\r/).filter(Boolean));
    assert.equal(lines.length, 2, `${d}: one line per event`);
    for (const line of lines) assert.equal(typeof JSON.parse(line).type, "string", `${d}: ${line}`);
    assert.ok(!lines.some((l) => l.startsWith('{"type":"track","event":"Forged"')), `${d}: a planted line`);
  }
  s.free();
});
