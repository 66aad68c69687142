// The npm package "phimask" as a user gets it: `npm pack` of pkg/, the
// tarball installed into a fresh project, then one event sanitized in Node,
// in a Worker under `wrangler dev`, and in a page in headless Chromium
// with no bundler; the types checked with tsc. Each must give exactly what
// the engine of this repository gives.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Sanitizer } from "../../www/dev/node.mjs";
import { startServer } from "../../www/dev/serve.mjs";
import { launchChromium } from "./chromium.mjs";
import { quietEnv, root, wranglerDevIn } from "./worker-harness.mjs";

const run = promisify(execFile);
const KEY = "package-test-key-0123456789abcdefghijkl";
const policyText = readFileSync(join(root, "policies/production.json"), "utf8");
const eventText = readFileSync(join(root, "examples/events/track-appointment.json"), "utf8");
// What this repository's engine sends; every install must send the same.
const expected = new Sanitizer(policyText, KEY).sanitizeJson(eventText, "amplitude");
const version = /^version = "([^"]+)"/m.exec(readFileSync(join(root, "Cargo.toml"), "utf8"))[1];

let dir;
let app;
let tarball;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "phimask-package-"));
  const { stdout } = await run("npm", ["pack", join(root, "pkg"), "--pack-destination", dir, "--json"], { env: quietEnv });
  [tarball] = JSON.parse(stdout);
  app = join(dir, "app");
  mkdirSync(join(app, "src"), { recursive: true });
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  // No registry: the tarball has no dependencies.
  await run("npm", ["install", join(dir, tarball.filename), "--offline", "--no-audit", "--no-fund"], { cwd: app, env: quietEnv });
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe("the npm package", () => {
  test("npm pack gives the phimask tarball: the engine, its entries and types, nothing else", () => {
    assert.equal(tarball.name, "phimask");
    assert.equal(tarball.version, version, "package.json and Cargo.toml agree");
    assert.equal(tarball.filename, `phimask-${version}.tgz`);
    const files = tarball.files.map((f) => f.path).sort();
    assert.deepEqual(files, ["LICENSE", "README.md", "browser.js", "index.d.ts", "node.js", "package.json", "phimask.d.ts", "phimask.js", "phimask_bg.wasm", "workerd.js"]);
    const manifest = JSON.parse(readFileSync(join(app, "node_modules/phimask/package.json"), "utf8"));
    assert.deepEqual(Object.keys(manifest.exports["."]), ["types", "workerd", "browser", "node", "default"]);
  });

  test("index.d.ts re-exports every export of the engine's types but its init functions", () => {
    const engine = readFileSync(join(app, "node_modules/phimask/phimask.d.ts"), "utf8");
    const index = readFileSync(join(app, "node_modules/phimask/index.d.ts"), "utf8");
    const names = [...engine.matchAll(/^export (?:declare )?(?:type|interface|class|function) (\w+)/gm)].map((m) => m[1]);
    const init = new Set(["InitInput", "InitOutput", "SyncInitInput", "initSync"]);
    for (const name of names.filter((n) => !init.has(n))) assert.match(index, new RegExp(`\\b${name}\\b`), name);
    assert.ok(names.includes("Sanitizer") && names.includes("dataMap"));
  });

  test("Node: import, validate, sanitize, map", async () => {
    writeFileSync(join(app, "node-check.mjs"), `
      import { Sanitizer, validatePolicy, dataMap } from "phimask";
      import { readFileSync } from "node:fs";
      const [policy, event, key] = [readFileSync(process.argv[2], "utf8"), readFileSync(process.argv[3], "utf8"), process.argv[4]];
      const s = new Sanitizer(policy, key);
      let refused;
      try { s.sanitizeJson('{"type":"track","event":"jane@x.com"', "amplitude"); } catch (e) { refused = { code: e.code, message: e.message }; }
      console.log(JSON.stringify({ valid: validatePolicy(policy).valid, out: s.sanitizeJson(event, "amplitude"), map: dataMap(policy, "markdown"), refused }));
    `);
    const { stdout } = await run(process.execPath, ["node-check.mjs", join(root, "policies/production.json"), join(root, "examples/events/track-appointment.json"), KEY], { cwd: app });
    const got = JSON.parse(stdout);
    assert.equal(got.valid, true);
    assert.equal(got.out, expected);
    assert.match(got.map, /^# Data map: `production`/);
    assert.equal(got.refused.code, "invalid_json");
    assert.doesNotMatch(got.refused.message, /jane/);
  });

  test("TypeScript: the types resolve through the package's exports", async () => {
    writeFileSync(join(app, "check.ts"), `
      import { Sanitizer, validatePolicy, type Policy, type Explanation } from "phimask";
      const policy: Policy = { version: 1, environment: "p", hipaa: true, destinations: { a: { connection: "server-side", endpoint: "https://a.example/" } } };
      const ok: boolean = validatePolicy(policy).valid;
      const s = new Sanitizer(policy, "k".repeat(32));
      const e: Record<string, Explanation> = s.explain({ type: "track", event: "x", userId: "u" });
      // @ts-expect-error: a version the policy format does not have
      const bad: Policy = { version: 2, environment: "p", hipaa: true, destinations: {} };
      export { ok, e, bad };
    `);
    writeFileSync(join(app, "tsconfig.json"), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", lib: ["esnext", "dom"], types: [] }, files: ["check.ts"] }));
    await run(join(root, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], { cwd: app });
  });

  test("a Worker under wrangler dev: the workerd entry, its wasm bundled by wrangler", async () => {
    writeFileSync(join(app, "src/policy.json"), policyText);
    writeFileSync(join(app, "src/index.js"), `
      import { Sanitizer } from "phimask";
      import policy from "./policy.json";
      let sanitizer;
      export default {
        async fetch(request, env) {
          sanitizer ??= new Sanitizer(policy, env.PHI_MASKING_KEY);
          try {
            return new Response(sanitizer.sanitizeJson(await request.text(), "amplitude") ?? "null");
          } catch (e) {
            return new Response(JSON.stringify({ code: e.code, error: e.message }), { status: 400 });
          }
        },
      };
    `);
    writeFileSync(join(app, "wrangler.toml"), `name = "phimask-package-test"\nmain = "src/index.js"\ncompatibility_date = "2026-04-01"\n`);
    writeFileSync(join(app, ".dev.vars"), `PHI_MASKING_KEY=${JSON.stringify(KEY)}\n`);
    const dev = await wranglerDevIn(app);
    try {
      const res = await fetch(dev.url, { method: "POST", body: eventText });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), expected);
      const bad = await fetch(dev.url, { method: "POST", body: '{"type":"track","properties":{"ssn":"123-45-6789"' });
      assert.equal(bad.status, 400);
      const body = await bad.json();
      assert.equal(body.code, "invalid_json");
      assert.doesNotMatch(body.error, /6789/);
    } finally {
      await dev.stop();
    }
  });

  test("a page in headless Chromium, no bundler: the browser entry through an import map", async () => {
    mkdirSync(join(app, "web"), { recursive: true });
    writeFileSync(join(app, "web/index.html"), `<!doctype html>
      <script type="importmap">{ "imports": { "phimask": "/node_modules/phimask/browser.js" } }</script>
      <script type="module">
        import { Sanitizer, validatePolicy } from "phimask";
        const [policy, event] = await Promise.all(["policy.json", "event.json"].map((f) => fetch(f).then((r) => r.text())));
        window.result = { valid: validatePolicy(policy).valid, out: new Sanitizer(policy, ${JSON.stringify(KEY)}).sanitizeJson(event, "amplitude") };
      </script>`);
    writeFileSync(join(app, "web/policy.json"), policyText);
    writeFileSync(join(app, "web/event.json"), eventText);
    const server = await startServer(0, { from: app, served: ["web", "node_modules"] });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const requests = [];
      page.on("request", (r) => requests.push(r.url()));
      const errors = [];
      page.on("pageerror", (e) => errors.push(e.message));
      const base = `http://127.0.0.1:${server.address().port}`;
      await page.goto(`${base}/web/index.html`);
      await page.waitForFunction(() => window.result !== undefined, null, { timeout: 20_000 });
      const result = await page.evaluate(() => window.result);
      assert.deepEqual(errors, []);
      assert.equal(result.valid, true);
      assert.equal(result.out, expected);
      // The page, its two files, and the package's own files: nothing else.
      const paths = requests.map((u) => new URL(u)).map((u) => (u.origin === base ? u.pathname : u.href)).sort();
      assert.deepEqual(paths, ["/node_modules/phimask/browser.js", "/node_modules/phimask/phimask.js", "/node_modules/phimask/phimask_bg.wasm", "/web/event.json", "/web/index.html", "/web/policy.json"]);
    } finally {
      await browser.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
