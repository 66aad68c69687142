// The shared vectors, run against the built wasm package: the same files
// cargo test runs against the Rust engine. Masked values are checked
// against Node's crypto (an HMAC independent of the engine's).
import assert from "node:assert/strict";
import { test } from "node:test";
import { preparePolicy, Sanitizer, validatePolicy } from "../../www/dev/node.mjs";
import { eventText, hmacHex, resolveMasks, vectorFiles } from "./vectors.mjs";
import { edge } from "./worker-engine.mjs";
import { warmUp } from "../../www/worker/warm-up.js";

const files = vectorFiles();

test("vector files are present", () => {
  assert.ok(files.length >= 5);
});

test("the Worker's engine has no validator: it loads prepared policies only", () => {
  assert.equal(edge.validatePolicy, undefined);
  assert.equal(edge.preparePolicy, undefined);
  assert.throws(
    () => edge.Sanitizer.fromPrepared(new TextEncoder().encode('{"version": 1}'), "k".repeat(32)),
    (e) => e.code === "invalid_policy" && /prepare it again/.test(e.message),
  );
});

test("the Worker's start-up run never throws, and leaves nothing behind", () => {
  // It runs at module scope: an exception there would stop the Worker
  // from starting at all, instead of answering 503 as configured.
  const doc = files.find((f) => f.doc.kind === "sanitize").doc;
  const prepared = preparePolicy(doc.policy);
  const hostile = [new Uint8Array(0), new TextEncoder().encode('{"version": 1}'), new Uint8Array(4096).fill(0xff), prepared.slice(0, 40), prepared.slice(0, -1)];
  for (const bytes of hostile) assert.doesNotThrow(() => warmUp(edge.Sanitizer, bytes));
  // A real policy: run, then the engine is as before (a sanitizer
  // compiled for real gives the same output as one compiled without the run).
  const event = new TextEncoder().encode('{"batch":[{"type":"track","event":"Signed Up","userId":"u-1","properties":{"plan":"pro"}}]}');
  const before = edge.Sanitizer.fromPrepared(prepared, doc.key).processRequest(event, "batch");
  for (let i = 0; i < 3; i++) warmUp(edge.Sanitizer, prepared);
  assert.deepEqual(edge.Sanitizer.fromPrepared(prepared, doc.key).processRequest(event, "batch"), before);
});

test("masking is HMAC-SHA256 at every key and value length around SHA-256's block, in both engines", () => {
  // The engine writes HMAC over SHA-256's compression: keys shorter than,
  // equal to and longer than the 64-byte block (hashed first), values
  // whose padding takes one block or two; hostile bytes in the values.
  const policy = { version: 1, environment: "x", hipaa: true, destinations: { d: { connection: "server-side", endpoint: "https://d.example/" } } };
  const prepared = preparePolicy(policy);
  let checked = 0;
  for (const keyLength of [32, 55, 56, 63, 64, 65, 100, 128, 129, 300]) {
    const key = Array.from({ length: keyLength }, (_, i) => String.fromCharCode(33 + ((i * 7) % 90))).join("");
    const full = new Sanitizer(policy, key);
    const worker = edge.Sanitizer.fromPrepared(prepared, key);
    // Byte lengths (one byte a character, escaped in the JSON), then
    // multi-byte text.
    const values = [1, 2, 54, 55, 56, 57, 63, 64, 65, 118, 119, 120, 128].map((n) => Array.from({ length: n }, (_, i) => ["a", "\u0000", '"', "\\", "\u007f"][i % 5]).join(""));
    values.push("é💉".repeat(9), "é💉".repeat(250));
    for (const value of values) {
      const valueLength = Buffer.byteLength(value);
      const event = JSON.stringify({ type: "track", event: "Signed Up", userId: value });
      const want = hmacHex(key, value);
      assert.equal(JSON.parse(full.sanitizeJson(event, "d")).userId, want, `key ${keyLength}, value ${valueLength}`);
      const body = worker.processRequest(new TextEncoder().encode(`{"batch":[${event}]}`), "batch").bodies.d[0];
      assert.equal(JSON.parse(body).batch[0].userId, want, `Worker: key ${keyLength}, value ${valueLength}`);
      checked += 1;
    }
  }
  assert.equal(checked, 150);
});

/**
 * The Worker's path: the event alone in a batch through processRequest;
 * its Segment body's one event, as text, or null; throws as sanitizeJson
 * would (a whole-request error keeps the code, not the message).
 */
function viaWorker(worker, text, destination) {
  const done = worker.processRequest(new TextEncoder().encode(`{"batch":[${text}]}`), "batch");
  const [refused] = done.rejected;
  if (refused) throw Object.assign(new Error(refused.error), { code: refused.code });
  const [body, more] = done.bodies[destination] ?? [];
  assert.equal(more, undefined);
  if (body === undefined) return null;
  assert.ok(body.startsWith('{"batch":[') && body.endsWith("]}"));
  return body.slice('{"batch":['.length, -"]}".length);
}

for (const { file, doc } of files.filter((f) => f.doc.kind === "sanitize")) {
  const sanitizer = new Sanitizer(doc.policy, doc.key);
  // The Worker's engine with the policy prepared as its build prepares it.
  const worker = edge.Sanitizer.fromPrepared(preparePolicy(doc.policy), doc.key);
  for (const c of doc.cases) {
    test(`${file}: ${c.name}`, () => {
      const text = eventText(c);
      if (c.error) {
        assert.throws(
          () => sanitizer.sanitizeJson(text, c.destination),
          (e) => e instanceof Error && e.code === c.error && e.message === c.message,
        );
        // (The Worker only ever processes for the policy's destinations.)
        if (c.error !== "unknown_destination") {
          assert.throws(
            () => viaWorker(worker, text, c.destination),
            (e) => e instanceof Error && e.code === c.error,
            "the Worker's engine refuses it too",
          );
        }
        if (c.event) {
          assert.throws(() => sanitizer.sanitize(c.event, c.destination), (e) => e.code === c.error);
        }
        return;
      }
      const expected = resolveMasks(c.expected, doc.key);
      const out = sanitizer.sanitizeJson(text, c.destination);
      assert.equal(viaWorker(worker, text, c.destination), out, "the Worker's engine agrees");
      if (expected === null) {
        assert.equal(out, null);
        return;
      }
      // Compared as text so that key order counts too.
      assert.equal(JSON.stringify(JSON.parse(out)), JSON.stringify(expected));
      assert.equal(sanitizer.sanitizeJson(text, c.destination), out, "deterministic");
      if (c.event) {
        assert.equal(JSON.stringify(sanitizer.sanitize(c.event, c.destination)), JSON.stringify(expected));
      }
    });
  }
}

for (const { file, doc } of files.filter((f) => f.doc.kind === "policy")) {
  for (const c of doc.cases) {
    test(`${file}: ${c.name}`, () => {
      const policy = typeof c.policy_json === "string" ? c.policy_json : c.policy;
      const result = validatePolicy(policy);
      assert.deepEqual(result, { valid: c.errors.length === 0, errors: c.errors, warnings: c.warnings });
      if (c.errors.length > 0) {
        assert.throws(
          () => new Sanitizer(policy, "k".repeat(32)),
          (e) => e instanceof Error && e.code === "invalid_policy" && JSON.stringify(e.errors) === JSON.stringify(c.errors),
        );
      }
    });
  }
}

for (const { file, doc } of files.filter((f) => f.doc.kind === "known-answers")) {
  const policy = {
    version: 1, environment: "test", hipaa: true,
    identifiers: { userId: "drop", anonymousId: "drop" },
    allowlists: { event_properties: { v: "mask" } },
    destinations: { d: { connection: "server-side", endpoint: "https://d.example/" } },
  };
  const sanitizer = new Sanitizer(policy, doc.key);
  for (const c of doc.cases) {
    test(`${file}: ${c.json}`, () => {
      const out = sanitizer.sanitizeJson(`{"type":"track","event":"E","anonymousId":"a","properties":{"v":${c.json}}}`, "d");
      assert.equal(out, `{"type":"track","event":"E","properties":{"v":"${c.masked}"}}`);
      // Node's crypto agrees with the pinned value.
      const clear = JSON.parse(c.json);
      if (typeof clear === "string") assert.equal(hmacHex(doc.key, clear), c.masked);
    });
  }
}
