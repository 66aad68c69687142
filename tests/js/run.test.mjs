// The README's run command (its quick start) as a user runs it: `scripts/run.sh` (make run)
// starts `wrangler dev` with the development policy and the local sink;
// each example event sent with the README's write key reaches each
// development destination exactly as the engine sanitizes it, and the
// evidence report (GET /evidence, `phimask evidence`) balances for every
// destination.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Sanitizer } from "../../www/dev/node.mjs";
import { quietEnv, root, until } from "./worker-harness.mjs";

const EDGE = "http://127.0.0.1:8787";
const SINK = "http://127.0.0.1:8788";

/** A value of the .dev.vars file wrangler dev reads. */
function devVar(name) {
  const text = readFileSync(join(root, ".dev.vars"), "utf8");
  const m = new RegExp(`^${name}="?([^"\\n]*)"?$`, "m").exec(text);
  assert.ok(m, `${name} in .dev.vars`);
  return m[1];
}

/** A secret of .dev.vars, or null. */
function devVarOr(name) {
  const m = new RegExp(`^${name}="?([^"\\n]*)"?$`, "m").exec(readFileSync(join(root, ".dev.vars"), "utf8"));
  return m ? m[1] : null;
}

/** The events a fake keeps of a body, as www/dev/fakes.mjs does. */
const GA4_WINDOW_MS = 72 * 3_600_000;

function accepted(format, body) {
  switch (format) {
    case "amplitude": return body.events;
    case "mixpanel": return body;
    // GA4 drops events backdated more than 72 hours: the Worker dead-letters
    // them (outside_ga4_window) instead of sending them.
    case "ga4": return body.events.filter((e) => e.timestamp_micros === undefined || e.timestamp_micros / 1000 > Date.now() - GA4_WINDOW_MS).map((e) => ({ client_id: body.client_id, ...(body.user_id === undefined ? {} : { user_id: body.user_id }), ...e }));
    case "posthog": return body.batch;
    default: return body.batch;
  }
}

describe("make run (scripts/run.sh)", () => {
  let child;
  let output = "";

  before(async () => {
    child = spawn(join(root, "scripts/run.sh"), [], { cwd: root, env: quietEnv, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    for (const s of [child.stdout, child.stderr]) s.on("data", (c) => (output += c));
    await until(() => /Ready on http:\/\/127\.0\.0\.1:8787/.test(output) || child.exitCode !== null, "wrangler dev to be ready", 120_000);
    assert.equal(child.exitCode, null, output);
  });

  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(-child.pid, "SIGTERM");
      await exited;
    }
  });

  test("it serves the playground, with the engine and the examples it loads", async () => {
    const page = await fetch("http://127.0.0.1:8080/www/playground/playground.html");
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>phimask playground<\/title>/);
    for (const [path, type] of [["/pkg/phimask_bg.wasm", "application/wasm"], ["/www/playground/playground.js", "text/javascript"], ["/policies/production.json", "application/json"], ["/examples/events/track-order.json", "application/json"]]) {
      const res = await fetch(`http://127.0.0.1:8080${path}`);
      assert.equal(res.status, 200, path);
      assert.ok(res.headers.get("content-type").startsWith(type), path);
    }
    // Only the folders the page needs: not the sources, not .dev.vars.
    for (const path of ["/.dev.vars", "/src/lib.rs", "/Cargo.toml", "/www/../.dev.vars"]) {
      assert.equal((await fetch(`http://127.0.0.1:8080${path}`)).status, 404, path);
    }
    assert.match(output, /http:\/\/127\.0\.0\.1:8080\/www\/playground\/playground\.html/);
  });

  test("the README's curl answers as shown, and amplitude receives what the README shows", async () => {
    // The README's quick start, where a reader meets them.
    const whole = readFileSync(join(root, "README.md"), "utf8");
    const start = whole.indexOf("\n## Quick start\n");
    assert.ok(start >= 0, "the README's Quick start");
    const end = whole.indexOf("\n## ", start + 1);
    const readme = whole.slice(start, end < 0 ? undefined : end);
    const block = /```sh\n(curl -s http:\/\/127\.0\.0\.1:8787\/v1\/track[^]*?)```/.exec(readme);
    assert.ok(block, "the README's curl example");
    const lines = block[1].trimEnd().split("\n");
    const last = lines.findIndex((l) => !l.endsWith("\\"));
    const command = lines.slice(0, last + 1).join("\n");
    const answer = lines.slice(last + 1).join("\n");
    const out = execFileSync("bash", ["-c", command], { cwd: root, encoding: "utf8" });
    assert.equal(out.trim(), answer.trim());
    const shown = /\[amplitude\] amplitude body, 1 event accepted[^\n]*\n(\{[^]*?\n\})\n/.exec(readme);
    assert.ok(shown, "the README's amplitude output");
    const [event] = JSON.parse(shown[1]).events;
    await until(() => output.includes(`"insert_id": "${event.insert_id}"`), "the fake to print it");
    const received = (await (await fetch(SINK)).json()).amplitude;
    assert.deepEqual(received.find((e) => e.insert_id === event.insert_id), event);
  });

  test("each example event reaches each development destination as the engine sanitizes it", async () => {
    const policy = JSON.parse(readFileSync(join(root, "policies/development.json"), "utf8"));
    const sanitizer = new Sanitizer(policy, devVar("PHI_MASKING_KEY"));
    for (const d of sanitizer.destinations()) sanitizer.connect(d, devVarOr(`AUTH_${d.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`));
    const writeKey = devVar("WRITE_KEYS").split(",")[0].trim();
    const files = readdirSync(join(root, "examples/events")).filter((f) => f.endsWith(".json")).sort();
    const expected = Object.fromEntries(sanitizer.destinations().map((d) => [d, []]));
    const earlier = await (await fetch(SINK)).json();
    let tooOld = 0;
    // And the order again with the visitor's consent to advertising, as
    // Segment's consent tools stamp it: only that one reaches ads.
    const order = JSON.parse(readFileSync(join(root, "examples/events/track-order.json"), "utf8"));
    order.context = { ...order.context, consent: { categoryPreferences: { C0002: true, C0004: true } } };
    const texts = [...files.map((file) => [file, readFileSync(join(root, "examples/events", file), "utf8")]), ["order with consent", JSON.stringify(order)]];
    for (const [file, text] of texts) {
      const { type } = JSON.parse(text);
      // As in the README: curl -u KEY: -d @examples/events/FILE http://127.0.0.1:8787/v1/TYPE
      const res = await fetch(`${EDGE}/v1/${type}`, {
        method: "POST",
        headers: { Authorization: `Basic ${Buffer.from(`${writeKey}:`).toString("base64")}`, "Content-Type": "application/json" },
        body: text,
      });
      assert.equal(res.status, 200, `${file}: ${await res.clone().text()}`);
      assert.deepEqual(await res.json(), { success: true });
      // What each destination's API takes of the bodies the engine makes.
      const done = sanitizer.processRequest(new TextEncoder().encode(text), type);
      for (const [d, bodies] of Object.entries(done.bodies)) {
        for (const body of bodies) {
          const events = accepted(sanitizer.format(d), JSON.parse(body));
          expected[d].push(...events);
          if (sanitizer.format(d) === "ga4") tooOld += JSON.parse(body).events.length - events.length;
        }
      }
    }
    const count = (r) => Object.values(r).reduce((n, list) => n + list.length, 0);
    const want = count(expected);
    // What the sink received since this test began.
    const since = async () => {
      const all = await (await fetch(SINK)).json();
      return Object.fromEntries(Object.keys(expected).map((d) => [d, (all[d] ?? []).slice(earlier[d]?.length ?? 0)]));
    };
    let got = {};
    for (let i = 0; i < 300 && count(got) < want; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      got = await since();
    }
    // Each event once, as the engine made it; in any order: the queue's
    // consumer sends the bodies of several requests at once.
    const sorted = (r) => Object.fromEntries(Object.entries(r).map(([d, list]) => [d, list.map((e) => JSON.stringify(e)).sort()]));
    assert.deepEqual(sorted(got), sorted(expected));
    assert.equal(expected.ads.length, 1, "ads: only the order its visitor consented to");
    assert.match(output, /\[amplitude\] amplitude body, 1 event accepted, answered 200 \(headers: cf-worker, content-length, content-type, host\)/);
    assert.ok(!/does not follow/.test(output), "every body follows its API's rules");
    // The examples' timestamps are fixed: GA4's share of those past its window is a dead letter, not lost.
    if (tooOld > 0) assert.match(output, /"phimask":"dead letter","destination":"ga4".*"outside_ga4_window"/);
  });

  test("the evidence report of the example events balances for every destination; phimask evidence writes the same", async () => {
    const operatorKey = devVar("OPERATOR_KEY");
    const writeKey = devVar("WRITE_KEYS").split(",")[0].trim();
    const day = new Date().toISOString().slice(0, 10);
    const evidence = async (format = "json") => {
      const res = await fetch(`${EDGE}/evidence?from=${day}&to=${day}&format=${format}`, { headers: { Authorization: `Bearer ${operatorKey}` } });
      assert.equal(res.status, 200);
      return format === "json" ? res.json() : res.text();
    };
    const policy = JSON.parse(readFileSync(join(root, "policies/development.json"), "utf8"));
    const serverSide = Object.entries(policy.destinations).filter(([, d]) => d.connection === "server-side").map(([n]) => n);
    const line = (r, d) => r.reconciliation.find((c) => c.destination === d) ?? { received: 0, delivered: 0 };
    const settled = (r) => serverSide.every((d) => line(r, d).in_flight === 0);
    // Earlier tests sent events too: wait for them, then count from here.
    let before = await evidence();
    for (let i = 0; i < 300 && !settled(before); i++) {
      await new Promise((r) => setTimeout(r, 100));
      before = await evidence();
    }
    const sinkBefore = await (await fetch(SINK)).json();
    const files = readdirSync(join(root, "examples/events")).filter((f) => f.endsWith(".json")).sort();
    const texts = files.map((f) => readFileSync(join(root, "examples/events", f), "utf8"));
    for (const text of texts) {
      const res = await fetch(`${EDGE}/v1/${JSON.parse(text).type}`, {
        method: "POST",
        headers: { Authorization: `Basic ${Buffer.from(`${writeKey}:`).toString("base64")}`, "Content-Type": "application/json" },
        body: text,
      });
      assert.equal(res.status, 200);
    }
    let after = await evidence();
    for (let i = 0; i < 300 && !(settled(after) && serverSide.every((d) => line(after, d).received - line(before, d).received === texts.length)); i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await evidence();
    }
    const sink = await (await fetch(SINK)).json();
    for (const d of serverSide) {
      const c = line(after, d);
      assert.equal(c.balanced, true, `${d}: ${JSON.stringify(c)}`);
      assert.equal(c.in_flight, 0, d);
      assert.equal(c.received - line(before, d).received, texts.length, `${d}: each example event received once`);
      // What the ledger says was delivered is what the destination's fake took.
      assert.equal(c.delivered - line(before, d).delivered, (sink[d] ?? []).length - (sinkBefore[d] ?? []).length, `${d}: delivered`);
    }
    // No value of the example events in any form of the report.
    const forms = [JSON.stringify(after), await evidence("markdown"), await evidence("html")];
    for (const text of texts) {
      const event = JSON.parse(text);
      const values = [event.userId, event.anonymousId, event.traits?.email, event.properties?.email, event.context?.ip].filter((v) => typeof v === "string" && v.length > 3);
      for (const v of values) for (const form of forms) assert.ok(!form.includes(v), `${v} in the report`);
    }
    // The command fetches the same report (but for the time it was made).
    const dir = mkdtempSync(join(tmpdir(), "phimask-evidence-"));
    try {
      const out = join(dir, "report.md");
      execFileSync(phimaskCommand(), ["evidence", "--url", EDGE, "--from", day, "--to", day, "--format", "markdown", "-o", out], { env: { ...process.env, PHIMASK_OPERATOR_KEY: operatorKey } });
      const generated = (t) => t.replace(/Generated [0-9T:.Z-]+\./, "Generated (time).");
      assert.equal(generated(readFileSync(out, "utf8")), generated(await evidence("markdown")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The phimask command: the one make test installed (PHIMASK_BIN), or this checkout's release build. */
function phimaskCommand() {
  if (process.env.PHIMASK_BIN) return process.env.PHIMASK_BIN;
  execFileSync("cargo", ["build", "--release", "--quiet", "--bin", "phimask"], { cwd: root, stdio: "inherit" });
  return join(root, "target/release/phimask");
}
