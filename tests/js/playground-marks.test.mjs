// The playground's field marks (www/playground/playground-marks.js) against the
// engine: for generated events of every corpus shape and the examples,
// through both shipped policies, each mark must agree with what the
// destination actually receives, and every value it receives must be on a
// row that is not "dropped".
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { varied } from "../../benches/corpus.mjs";
import { Sanitizer } from "../../www/dev/node.mjs";
import { at, leaves, marks, pattern } from "../../www/playground/playground-marks.js";

const KEY = "marks-test-key-0123456789abcdefghijklmno";
const root = new URL("../../", import.meta.url).pathname;
const HEX = /^[0-9a-f]{64}$/;

/** Checks one event's marks under the request's signals; returns the
 * destinations it was sent to. */
function check(sanitizer, text, label, signals) {
  const event = JSON.parse(text);
  const explained = sanitizer.explain(text, signals);
  const reached = [];
  for (const [name, explanation] of Object.entries(explained)) {
    if (!explanation.sent) continue;
    reached.push(name);
    const sent = JSON.parse(sanitizer.sanitizeJson(text, name, signals));
    const rows = marks(event, explanation, sent);
    const where = (r) => `${label} ${name} ${r.field}`;
    for (const r of rows) {
      const out = at(sent, r.path);
      switch (r.mark) {
        case "passed":
          assert.deepEqual(out, r.input, where(r));
          break;
        case "dropped":
          // Gone, or (an array element) null in its place.
          assert.ok(out === undefined || out === null || (typeof out === "object" && typeof r.input !== "object"), where(r));
          break;
        case "masked":
          if (r.input !== null && typeof r.input !== "object") assert.match(String(out), HEX, where(r));
          break;
        case "transformed":
          assert.notEqual(out, undefined, where(r));
          break;
        default:
          assert.fail(`${where(r)}: unknown mark ${r.mark}`);
      }
    }
    // Every leaf the destination receives is on a row that says it goes.
    const going = new Set(rows.filter((r) => r.mark !== "dropped").map((r) => JSON.stringify(r.path)));
    for (const leaf of leaves(sent)) {
      const before = at(event, leaf.path);
      if (leaf.value === null && before !== null) continue; // a dropped element's null
      if (typeof leaf.value === "object" && leaf.value !== null && typeof before === "object") continue; // emptied by filtering: sent as {}
      assert.ok(going.has(JSON.stringify(leaf.path)) || at(event, leaf.path) === undefined, `${label} ${name} ${pattern(leaf.path)} arrives but is not marked as sent`);
    }
  }
  return reached;
}

test("marks agree with what each destination receives: examples and 400 generated events, both policies", () => {
  const examples = readdirSync(`${root}examples/events`).map((f) => [f, readFileSync(`${root}examples/events/${f}`, "utf8")]);
  const generated = varied(11, 400).map((t, i) => [`generated ${i}`, t]);
  // In US-CA (opt-out) the development policy's consent-gated ads
  // destination gets events that say nothing, so its card has marks too.
  for (const [file, signals] of [["policies/production.json"], ["policies/development.json"], ["policies/development.json", { region: "US-CA" }]]) {
    const sanitizer = new Sanitizer(readFileSync(root + file, "utf8"), KEY);
    const reached = new Set();
    try {
      for (const [label, text] of [...examples, ...generated]) {
        for (const name of check(sanitizer, text, `${file} ${JSON.stringify(signals)} ${label}`, signals)) reached.add(name);
      }
    } finally {
      sanitizer.free();
    }
    if (signals) assert.ok(reached.has("ads"), "the ads card is checked too");
  }
});

test("leaves and paths: arrays, empty containers, keys that look like paths (not field names: [key])", () => {
  const value = { a: [1, { b: null }], "c.d": {}, e: [], "[x]": "y" };
  assert.deepEqual(leaves(value).map((l) => [pattern(l.path), l.value]), [
    ["a[]", 1], ["a[].b", null], ["c.d", {}], ["e", []], ["[key]", "y"],
  ]);
  assert.equal(at(value, ["a", 1, "b"]), null);
  assert.equal(at(value, ["a", 5]), undefined);
  assert.equal(at(value, ["c.d", "x"]), undefined);
  assert.equal(at("text", ["length"]), undefined, "no properties of non-objects");
  assert.equal(at({ a: {} }, ["a", "toString"]), undefined, "no inherited members");
});

test("the deepest path explain names decides; one that does not arrive is dropped", () => {
  const event = { properties: { address: { city: "Boston", street: "1 Main St" }, email: "jane@x.com", zip: "02134", gone: "x" } };
  const explanation = { dropped: ["properties.address.street"], masked: ["properties.email"], transformed: ["properties.zip"] };
  const sent = { properties: { address: { city: "Boston" }, email: "f".repeat(64), zip: "021" } };
  assert.deepEqual(
    Object.fromEntries(marks(event, explanation, sent).map((r) => [r.field, r.mark])),
    { "properties.address.city": "passed", "properties.address.street": "dropped", "properties.email": "masked", "properties.zip": "transformed", "properties.gone": "dropped" },
  );
  // A masked value that normalized to nothing does not arrive: dropped.
  const none = marks({ p: { email: "  " } }, { masked: ["p.email"] }, { p: {} });
  assert.equal(none[0].mark, "dropped");
});

test("a key that is not a field name is [key], as explain shows it; masked under mask, it is marked masked", () => {
  const event = { properties: { "Jane Doe HIV positive": 1, plan: "p", answers: { "HIV positive": "yes" } } };
  const explanation = { dropped: ["properties.[key]"], masked: ["properties.answers.[key]"] };
  const sent = { properties: { plan: "p", answers: { ["f".repeat(64)]: "a".repeat(64) } } };
  const rows = marks(event, explanation, sent);
  assert.deepEqual(rows.map((r) => [r.field, r.mark]), [
    ["properties.[key]", "dropped"], ["properties.plan", "passed"], ["properties.answers.[key]", "masked"],
  ]);
  assert.doesNotMatch(rows.map((r) => r.field).join(" "), /Jane|HIV/);
});
