// The shipped policies, and the examples the README and docs/policy.md show.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Sanitizer, validatePolicy } from "../../www/dev/node.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
const read = (p) => readFileSync(root + p, "utf8");
const KEY = "examples-test-key-0123456789abcdefghijkl";

// Clear values in the example events that no restricted destination may
// receive.
const PHI = [
  "jane", "Jane", "004217", "3f1c9a2e", "203.0.113.42", "198.51.100.7", "02118", "1984-07-19", "Boston", "chest pain",
  "1984-07-19", "MRN-", "RX-551234", "Elm St", "617 555", "Alan Grant", "office@backbay",
  "hiv-testing", "free hiv test", "iPhone", "1234567893", "2026-12-03", "Cardiology", "HIV Testing",
];

for (const env of ["development", "production"]) {
  test(`policies/${env}.json is valid, with no warnings`, () => {
    assert.deepEqual(validatePolicy(read(`policies/${env}.json`)), { valid: true, errors: [], warnings: [] });
  });
}

test("no restricted destination of the shipped policies receives PHI of the example events", () => {
  for (const env of ["development", "production"]) {
    const policy = JSON.parse(read(`policies/${env}.json`));
    const s = new Sanitizer(policy, KEY);
    const restricted = s.destinations().filter((d) => policy.destinations[d].restrict_phi !== false);
    assert.deepEqual(restricted, env === "development" ? ["amplitude", "mixpanel", "ga4", "posthog", "ads"] : ["amplitude", "mixpanel"]);
    for (const file of readdirSync(`${root}examples/events`)) {
      const text = read(`examples/events/${file}`);
      for (const d of restricted) {
        let out = s.sanitizeJson(text, d);
        if (d === "ads") {
          // Gated on advertising, opt-in: an event without consent goes nowhere near it.
          assert.equal(out, null, `${file}: no consent, nothing to the advertising destination`);
          const granted = JSON.parse(text);
          granted.context = { ...granted.context, consent: { categoryPreferences: { C0004: true } } };
          out = s.sanitizeJson(JSON.stringify(granted), d);
          assert.equal(s.sanitizeJson(JSON.stringify(granted), d, { gpc: true }), null, `${file}: GPC stops it`);
          // Its own events map and calls: only Order Completed tracks.
          if (file !== "track-order.json") {
            assert.equal(out, null, `${file}: not a track of Order Completed`);
            continue;
          }
          for (const marker of PHI) assert.ok(!out.includes(marker), `${env} ${file} ${d}: ${marker}`);
          continue;
        }
        // mixpanel's calls leave out group calls.
        if (d === "mixpanel" && file.startsWith("group-")) {
          assert.equal(out, null);
          continue;
        }
        for (const marker of PHI) assert.ok(!out.includes(marker), `${env} ${file} ${d}: ${marker}`);
        const { event, name } = JSON.parse(out);
        if (file === "track-appointment.json") assert.equal(event, "Appointment Booked", "renamed by the events map");
        if (file === "page-condition.json") assert.equal(name, "Service Page", "renamed by the events map");
        // Page paths by the policy's templates: never a slug or a record number.
        const page = JSON.parse(out).context?.page;
        if (file === "page-condition.json") assert.deepEqual(page, { url: "https://www.clinic.example/services/:service" });
        if (file === "track-appointment.json") {
          assert.equal(page.url, "https://portal.clinic.example/patients/:patient/appointments/:step");
          assert.equal(page.path, "/patients/:patient/appointments/:step");
        }
      }
      // The BAA destination gets the event unchanged.
      assert.deepEqual(JSON.parse(s.sanitizeJson(text, "warehouse")), JSON.parse(text));
    }
  }
});

test("the development policy's native bodies (Amplitude, Mixpanel, GA4, PostHog) carry no PHI of the example events", () => {
  const policy = JSON.parse(read("policies/development.json"));
  const s = new Sanitizer(policy, KEY);
  const vars = read(".dev.vars.example");
  for (const d of s.destinations()) {
    const secret = new RegExp(`^AUTH_${d.toUpperCase()}="([^"]*)"`, "m").exec(vars)?.[1];
    s.connect(d, secret ?? null);
  }
  const batch = readdirSync(`${root}examples/events`).map((f) => JSON.parse(read(`examples/events/${f}`)));
  const done = s.processRequest(new TextEncoder().encode(JSON.stringify({ batch })), "batch");
  assert.equal(done.accepted, batch.length);
  for (const d of ["amplitude", "mixpanel", "ga4", "posthog"]) {
    assert.ok(done.bodies[d].length > 0, d);
    for (const body of done.bodies[d]) for (const marker of PHI) assert.ok(!body.includes(marker), `${d}: ${marker}`);
  }
});

test("the README's `make examples` command prints what each destination receives", () => {
  const out = execFileSync(process.execPath, [`${root}www/dev/examples.mjs`, `${root}policies/development.json`, `${root}examples/events/identify-patient.json`], {
    encoding: "utf8",
    env: { ...process.env, PHI_MASKING_KEY: KEY },
  });
  assert.match(out, /key from PHI_MASKING_KEY/);
  assert.ok(!out.includes(KEY), "the key is never printed");
  for (const d of ["amplitude", "mixpanel", "warehouse"]) assert.match(out, new RegExp(`--- ${d}:`));
  assert.match(out, /"signup_year": 2024/);
});

test("the example policy of docs/policy.md is valid, with no warnings", () => {
  const doc = read("docs/policy.md");
  const at = doc.indexOf("\n## Policy reference");
  assert.ok(at >= 0, "docs/policy.md has its Policy reference section");
  const block = /```json\n([^]*?)```/.exec(doc.slice(at));
  assert.ok(block, "the example policy of docs/policy.md");
  assert.deepEqual(validatePolicy(block[1]), { valid: true, errors: [], warnings: [] });
});
