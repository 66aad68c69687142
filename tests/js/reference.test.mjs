// The benchmark's JavaScript reference (benches/reference.mjs) and the
// engine agree on every shared vector and example event, for every
// restricted server-side destination: the reference is written from the
// README's rules, independently, so each checks the other.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { corpus, varied } from "../../benches/corpus.mjs";
import { referenceSanitizer } from "../../benches/reference.mjs";
import { Sanitizer } from "../../www/dev/node.mjs";
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

/** The engine's output or refusal code, parsed for a comparison of values:
 * the engine copies strings as written (with their escapes), the
 * reference re-serializes them. */
function outcome(fn) {
  try {
    const out = fn();
    return { out: typeof out === "string" ? JSON.parse(out) : out };
  } catch (e) {
    return { code: e.code };
  }
}

test("differential: the engine and the reference agree on thousands of generated events, adversarial shapes included", () => {
  const key = "reference-test-key-0123456789abcdefghij";
  // Every shape of the benchmark's corpus (wide, deeply nested, escaped,
  // detector near misses, distinct masked values) at random sizes, and
  // the corpus itself up to 32 KB.
  const events = [...varied(20261201, 3000), ...corpus(3, 16 * 1024).flatMap((s) => s.events)];
  let compared = 0;
  let sent = 0;
  for (const env of ["development", "production"]) {
    const policy = JSON.parse(readFileSync(`${root}policies/${env}.json`, "utf8"));
    const sanitizer = new Sanitizer(policy, key);
    for (const destination of restricted(policy)) {
      const reference = referenceSanitizer(policy, destination, key);
      for (const [i, text] of events.entries()) {
        const engine = outcome(() => sanitizer.sanitizeJson(text, destination));
        if (engine.code !== undefined && !MODELLED.has(engine.code)) continue;
        assert.deepEqual(outcome(() => reference(text)), engine, `${env} → ${destination}: generated event ${i}`);
        compared += 1;
        if (engine.out) sent += 1;
      }
    }
  }
  // Nearly all are comparable (none too large or malformed), and most are
  // sent: the comparison is of sanitized output, not of refusals.
  assert.ok(compared >= 0.95 * events.length * 3, `only ${compared} comparisons`);
  assert.ok(sent >= 0.5 * compared, `only ${sent} of ${compared} sent`);
});
