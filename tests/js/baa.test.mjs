// The BAA register through the JavaScript API: `baaRegister()` of a
// Sanitizer made from a policy, and of the edge Worker's engine from the
// prepared policy; the register form's validation and the data map.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { dataMap, preparePolicy, Sanitizer, validatePolicy } from "../../www/dev/node.mjs";
import { edge } from "./worker-engine.mjs";

const KEY = "js-baa-test-key-0123456789abcdefghijkl";

function policy(baa) {
  return {
    version: 1,
    environment: "production",
    hipaa: true,
    events: { "*": "allow" },
    destinations: {
      amplitude: { connection: "server-side", endpoint: "https://api2.amplitude.example/batch" },
      warehouse: { connection: "server-side", endpoint: "https://ingest.example/segment", restrict_phi: false, baa },
      ga4: { connection: "client-side", restrict_phi: false, baa: true },
    },
  };
}

const REGISTER = [
  { destination: "warehouse", signed: "2026-01-15", ref: "MSA-2026-014" },
  { destination: "ga4", signed: null, ref: null },
];

test("baaRegister() lists every destination under a BAA, with its date and reference", () => {
  const s = new Sanitizer(policy({ signed: "2026-01-15", ref: "MSA-2026-014" }), KEY);
  assert.deepEqual(s.baaRegister(), REGISTER);
  // The edge Worker's engine has it from the prepared policy alone.
  const prepared = preparePolicy(policy({ signed: "2026-01-15", ref: "MSA-2026-014" }));
  assert.deepEqual(edge.Sanitizer.fromPrepared(prepared, KEY).baaRegister(), REGISTER);
  assert.deepEqual(Sanitizer.fromPrepared(prepared, KEY).baaRegister(), REGISTER);
  // No BAA: an empty register.
  const none = policy(true);
  delete none.destinations.warehouse;
  delete none.destinations.ga4;
  assert.deepEqual(new Sanitizer(none, KEY).baaRegister(), []);
});

test("the shipped policies keep their register in the prepared form", () => {
  for (const [file, ref] of [["policies/development.json", "BAA-DEV-0001"], ["policies/production.json", "BAA-EXAMPLE-0001"]]) {
    const text = readFileSync(new URL(`../../${file}`, import.meta.url), "utf8");
    const register = edge.Sanitizer.fromPrepared(preparePolicy(text), KEY).baaRegister();
    assert.deepEqual(register.find((e) => e.destination === "warehouse"), { destination: "warehouse", signed: "2026-01-15", ref }, file);
  }
});

test("hostile register objects are refused at their paths, never echoing the value", () => {
  const cases = [
    [{ signed: "2026-01-15", ref: "Jane Doe\nSSN 123-45-6789" }, "destinations.warehouse.baa.ref", "must be one line without control characters"],
    [{ signed: "2026-01-15", ref: "x".repeat(10 * 1024) }, "destinations.warehouse.baa.ref", "must be at most 200 characters"],
    [{ signed: "2026-01-15", ref: "MSA\u0007" }, "destinations.warehouse.baa.ref", "must be one line without control characters"],
    [{ signed: "2026-01-15", ref: 14 }, "destinations.warehouse.baa.ref", "must be a string, not a number"],
    [{ signed: "2026-02-30", ref: "MSA" }, "destinations.warehouse.baa.signed", 'must be a calendar date written YYYY-MM-DD ("2026-01-15")'],
    [{ signed: "Jane Doe", ref: "MSA" }, "destinations.warehouse.baa.signed", 'must be a calendar date written YYYY-MM-DD ("2026-01-15")'],
    [{}, "destinations.warehouse.baa.signed", 'missing; the day the BAA was signed, as "YYYY-MM-DD"'],
    ["yes", "destinations.warehouse.baa", 'must be true, false or {"signed": "YYYY-MM-DD", "ref": "…"}, not a string'],
  ];
  for (const [baa, path, message] of cases) {
    const { valid, errors } = validatePolicy(policy(baa));
    assert.equal(valid, false);
    assert.ok(errors.some((e) => e.path === path && e.message === message), JSON.stringify(errors));
    // Invalid: no BAA, so restrict_phi false is refused too.
    assert.ok(errors.some((e) => e.path === "destinations.warehouse.restrict_phi"), JSON.stringify(errors));
    assert.ok(!JSON.stringify(errors).includes("Jane"));
    assert.throws(() => new Sanitizer(policy(baa), KEY), (e) => e.code === "invalid_policy" && !e.message.includes("Jane"));
  }
});

test("dataMap shows the register in both forms", () => {
  const p = policy({ signed: "2026-01-15", ref: "MSA-2026-014" });
  const md = dataMap(p, "markdown");
  assert.match(md, /\| \*\*unrestricted\*\* \| signed 2026-01-15, ref MSA-2026-014 \|/);
  assert.match(md, /\*\*BAA:\*\* none/);
  assert.match(md, /\*\*BAA:\*\* yes \(no date recorded\)/);
  assert.match(dataMap(p, "html"), /signed 2026-01-15, ref MSA-2026-014/);
});
