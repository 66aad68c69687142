// The benchmark's JavaScript reference (benches/reference.mjs) and the
// engine agree on every shared vector and example event, for every
// restricted server-side destination: the reference is written from the
// README's rules, independently, so each checks the other.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { referenceSanitizer } from "../../benches/reference.mjs";
import { Sanitizer } from "../../www/node.mjs";
import { eventText, vectorFiles } from "./vectors.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
/** Refusals the reference models; the others are about JSON syntax and size. */
const MODELLED = new Set(["incomplete_event", "invalid_integrations"]);

function restricted(policy) {
  return Object.entries(policy.destinations)
    .filter(([, d]) => d.connection === "server-side" && (d.restrict_phi ?? policy.hipaa))
    .map(([name]) => name);
}

/** Engine and reference on the same text: equal output, or the same refusal. */
function agree(sanitizer, reference, text, destination, what) {
  let engine;
  try {
    engine = { out: sanitizer.sanitizeJson(text, destination) };
  } catch (e) {
    engine = { code: e.code };
  }
  if (engine.code !== undefined && !MODELLED.has(engine.code)) return false;
  let model;
  try {
    model = { out: reference(text) };
  } catch (e) {
    model = { code: e.code };
  }
  assert.deepEqual(model, engine, what);
  return true;
}

test("the reference agrees with the engine on every shared vector", () => {
  let compared = 0;
  for (const { file, doc } of vectorFiles().filter((f) => f.doc.kind === "sanitize")) {
    const sanitizer = new Sanitizer(doc.policy, doc.key);
    for (const destination of restricted(doc.policy)) {
      const reference = referenceSanitizer(doc.policy, destination, doc.key);
      for (const c of doc.cases) {
        let text;
        try {
          // Both read the same text: JSON.parse would rewrite numbers such as 1.50.
          text = JSON.stringify(JSON.parse(eventText(c)));
        } catch {
          continue;
        }
        if (agree(sanitizer, reference, text, destination, `${file}: ${c.name} → ${destination}`)) compared += 1;
      }
    }
  }
  assert.ok(compared >= 130, `only ${compared} comparisons`);
});

test("the reference agrees with the engine on the example events and shipped policies", () => {
  const key = "reference-test-key-0123456789abcdefghij";
  for (const env of ["development", "production"]) {
    const policy = JSON.parse(readFileSync(`${root}policies/${env}.json`, "utf8"));
    const sanitizer = new Sanitizer(policy, key);
    for (const destination of restricted(policy)) {
      const reference = referenceSanitizer(policy, destination, key);
      for (const file of readdirSync(`${root}examples/events`)) {
        const text = JSON.stringify(JSON.parse(readFileSync(`${root}examples/events/${file}`, "utf8")));
        assert.ok(agree(sanitizer, reference, text, destination, `${env} ${file} ${destination}`));
      }
    }
  }
});
