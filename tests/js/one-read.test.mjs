// The Worker's engine reads a batch's events where they stand in the
// request body when the request rewrites nothing of them, and copies them
// when it does (a writeKey inside): processRequest gives the same bodies,
// event indexes (plain arrays of numbers) and errors either way.
import assert from "node:assert/strict";
import { test } from "node:test";
import { preparePolicy } from "../../www/dev/node.mjs";
import { edge } from "./worker-engine.mjs";

const KEY = "one-read-key-0123456789abcdefghijklmnop";
const policy = {
  version: 1, environment: "t", hipaa: true,
  allowlists: {
    event_properties: { plan: "allow", email: { action: "mask", normalize: "email" } },
    user_properties: { tier: "allow" },
  },
  destinations: {
    amp: { connection: "server-side", endpoint: "https://amp.example/2/httpapi", format: "amplitude" },
    mix: { connection: "server-side", endpoint: "https://mix.example/import", format: "mixpanel" },
    ga: { connection: "server-side", endpoint: "https://ga.example/mp/collect", format: "ga4" },
    lake: { connection: "server-side", endpoint: "https://lake.example/in", format: "ndjson", restrict_phi: false, baa: true },
  },
};

function engine() {
  const s = edge.Sanitizer.fromPrepared(preparePolicy(policy), KEY);
  s.connect("amp", "0123456789abcdef0123456789abcdef");
  s.connect("mix", "mix-secret");
  s.connect("ga", "G-ONEREAD1:ga-secret");
  s.connect("lake", null);
  return s;
}

const events = [];
for (let i = 0; i < 30; i++) {
  events.push(`{ "type" : "${i % 4 === 3 ? "page" : "track"}" , "event":"Booked", "name":"Home",` +
    ` "userId":"u-${i % 3}", "messageId":"m-${i}", "timestamp":"2026-11-23T10:00:00Z",` +
    ` "properties": { "plan" : "p${i}", "email":"Jane${i}@X.com", "ssn":"123-45-6789" },` +
    ` "context":{"traits":{"tier":"gold"}} }`);
}
events.push(`{"type":"track","userId":"u"}`, `{"type":"track","event":"Deep","userId":"u","properties":{"x":${"[".repeat(70)}${"]".repeat(70)}}}`);

test("events read in the body go out as copied ones do", () => {
  const s = engine();
  const inBody = new TextEncoder().encode(`{"writeKey":"wk","batch":[ ${events.join(" ,\n ")} ]}`);
  const copied = events.map((e) => e.replace("{", `{"writeKey":"ev",`));
  const viaCopy = new TextEncoder().encode(`{"writeKey":"wk","batch":[${copied.join(",")}]}`);
  const a = s.processRequest(inBody, "batch");
  const b = s.processRequest(viaCopy, "batch");
  assert.deepStrictEqual(a, b);
  assert.equal(a.accepted, 30);
  assert.deepStrictEqual(a.rejected.map((r) => [r.index, r.code]), [[30, "incomplete_event"], [31, "event_too_deep"]]);
  for (const [name, lists] of Object.entries(a.events)) {
    for (const list of lists) {
      assert.ok(Array.isArray(list), name);
      assert.ok(list.every((i) => typeof i === "number"), name);
    }
  }
  assert.deepStrictEqual(a.events.amp, [Array.from({ length: 30 }, (_, i) => i)]);
  // The unrestricted destination gets the event's members with nothing
  // between them; the write key is in no body.
  assert.ok(a.bodies.lake[0].startsWith(`{"type":"track","event":"Booked","name":"Home","userId":"u-0",`));
  for (const bodies of Object.values(b.bodies)) for (const body of bodies) assert.ok(!body.includes("writeKey"));
  s.free();
});
