// What `processRequest` gives the delivery ledger and the path inventory,
// from both wasm packages (pkg/ from a policy, pkg-worker/ from the
// prepared policy): per destination, labels, `of` parallel to `events`
// and `notSent`, every event counted once; inventory paths with counts;
// never a name the policy does not list, nor a value.
import assert from "node:assert/strict";
import { test } from "node:test";
import { preparePolicy, Sanitizer } from "../../www/dev/node.mjs";
import { edge } from "./worker-engine.mjs";

const KEY = "js-ledger-test-key-0123456789abcdefghij";
const CANARIES = ["Viewed HIV Testing", "Jane Doe", "123-45-6789", "jane@example.com", "wk_canary"];

const POLICY = {
  version: 1,
  environment: "production",
  hipaa: true,
  allowlists: { event_properties: { plan: "allow", visit: "allow" } },
  events: { Booked: "allow", Cancelled: { rename: "Visit Cancelled" }, "*": "drop" },
  destinations: {
    amplitude: { connection: "server-side", endpoint: "https://amp.example/2/httpapi" },
    warehouse: { connection: "server-side", endpoint: "https://wh.example/in", format: "ndjson", restrict_phi: false, baa: true },
    ads: { connection: "server-side", endpoint: "https://ads.example/", calls: ["track"], consent: ["advertising"] },
    browser: { connection: "client-side", restrict_phi: false, baa: true },
  },
  consent: { mode: "opt-out", categories: { advertising: ["C0004"] }, gpc: ["advertising"] },
  bots: "drop",
};

const EVENTS = [
  { type: "track", event: "Booked", userId: "u1", properties: { plan: "pro", diagnosis: "Viewed HIV Testing", "Jane Doe": 1, visit: { x: "Jane Doe" } } },
  { type: "track", event: "Viewed HIV Testing", userId: "u1", properties: { patient: { ssn: "123-45-6789" } } },
  { type: "track", event: "Cancelled", userId: "u1" },
  { type: "identify", userId: "u1", traits: { email: "jane@example.com" } },
  { type: "track", event: "Booked", userId: "u1", context: { userAgent: "curl/8.4.0" } },
  7,
  { type: "track", event: "Jane Doe", properties: { refused: "123-45-6789" } },
  { type: "track", event: "Booked", anonymousId: "a1", "jane@example.com": "x", writeKey: "wk_canary" },
];

const body = new TextEncoder().encode(JSON.stringify({ batch: EVENTS }));

const engines = () => [
  ["pkg", new Sanitizer(POLICY, KEY)],
  ["pkg-worker", edge.Sanitizer.fromPrepared(preparePolicy(POLICY), KEY)],
];

const label = (ledger, i) => ledger.labels[i];

for (const [name, s] of engines()) {
  test(`${name}: processRequest() returns the ledger, every event counted once per destination`, () => {
    const done = s.processRequest(body, "batch", undefined, { gpc: true });
    assert.deepEqual(Object.keys(done.ledger).sort(), ["ads", "amplitude", "warehouse"]);
    for (const [dest, ledger] of Object.entries(done.ledger)) {
      assert.deepEqual(Object.keys(ledger).sort(), ["labels", "notSent", "of"]);
      // `of` is parallel to `events`, made of plain arrays of indexes.
      assert.deepEqual(ledger.of.map((b) => b.length), done.events[dest].map((b) => b.length));
      for (const list of ledger.of) {
        assert.ok(Array.isArray(list));
        for (const i of list) assert.ok(Number.isInteger(i) && i < ledger.labels.length);
      }
      for (const l of ledger.labels) {
        assert.ok(Array.isArray(l) && l.length === 2);
        assert.ok(l[0] === null || typeof l[0] === "string");
        assert.ok(l[1] === null || typeof l[1] === "string");
      }
      const sent = ledger.of.flat().length;
      const notSent = ledger.notSent.reduce((n, [, , count]) => n + count, 0);
      assert.equal(sent + notSent, EVENTS.length, dest);
      for (const [i, reason, count] of ledger.notSent) {
        assert.ok(Number.isInteger(i) && i < ledger.labels.length);
        assert.ok(["routing", "call_type", "event_name", "consent", "bot", "unmapped", "refused"].includes(reason));
        assert.ok(count > 0);
      }
    }
    const rows = (dest) => done.ledger[dest].notSent.map(([i, r, n]) => [...label(done.ledger[dest], i), r, n]);
    const amp = done.ledger.amplitude;
    assert.deepEqual(amp.of.flat().map((i) => amp.labels[i]), [
      ["track", "Booked"], ["track", "Visit Cancelled"], ["identify", null], ["track", "Booked"],
    ]);
    assert.deepEqual(rows("amplitude"), [
      ["track", null, "event_name", 1], ["track", "Booked", "bot", 1], [null, null, "refused", 2],
    ]);
    // Unrestricted: the listed name as sent (no rename); others under null.
    const wh = done.ledger.warehouse;
    assert.deepEqual(wh.of.flat().map((i) => wh.labels[i]), [
      ["track", "Booked"], ["track", null], ["track", "Cancelled"], ["identify", null], ["track", "Booked"],
    ]);
    assert.deepEqual(rows("ads"), [
      ["track", "Booked", "consent", 2], ["track", null, "event_name", 1], ["track", "Visit Cancelled", "consent", 1],
      ["identify", null, "call_type", 1], ["track", "Booked", "bot", 1], [null, null, "refused", 2],
    ]);
    assert.deepEqual(done.inventory, [
      ["properties.diagnosis", 1], ["properties.[key]", 1], ["properties.patient", 1], ["traits.email", 1],
      ["context.userAgent", 1], ["[key]", 1],
    ]);
    const text = JSON.stringify([done.ledger, done.inventory]);
    for (const canary of CANARIES) assert.ok(!text.includes(canary), canary);
  });

  test(`${name}: a request with no unnamed paths has an empty inventory; a hostile name never labels`, () => {
    const one = new TextEncoder().encode(JSON.stringify({ type: "track", event: "__proto__", userId: "u", properties: { plan: "x" } }));
    const done = s.processRequest(one, "track");
    assert.deepEqual(done.inventory, []);
    assert.deepEqual(done.ledger.amplitude.labels, [["track", null]]);
    assert.deepEqual(done.ledger.amplitude.notSent, [[0, "event_name", 1]]);
    // Keys named like prototype members are paths like any other.
    const odd = new TextEncoder().encode(JSON.stringify({ batch: [JSON.parse('{"type":"track","event":"Booked","userId":"u","properties":{"__proto__":{"a":1},"constructor":"Jane Doe"}}')] }));
    const got = s.processRequest(odd, "batch");
    assert.deepEqual(got.inventory, [["properties.__proto__", 1], ["properties.constructor", 1]]);
    assert.deepEqual(got.ledger.amplitude.labels, [["track", "Booked"]]);
  });
}
