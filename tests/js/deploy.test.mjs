// `wrangler deploy --dry-run` per environment, offline: the policy of the
// environment is validated by the build and bundled; an invalid policy
// stops the deploy with the validation messages.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Sanitizer } from "../../www/dev/node.mjs";
import { root, runWrangler, wranglerTables } from "./worker-harness.mjs";

const tmp = mkdtempSync(join(tmpdir(), "phimask-deploy-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The bundled script of a dry run: the entry module's text. */
function bundled(outdir) {
  const js = readdirSync(outdir).filter((f) => f.endsWith(".js"));
  assert.equal(js.length, 1, `one script in ${readdirSync(outdir)}`);
  return readFileSync(join(outdir, js[0]), "utf8");
}

describe("wrangler deploy --dry-run", () => {
  for (const env of ["production", "development"]) {
    test(`--env ${env} validates and bundles policies/${env}.json and prints the bundle size`, async () => {
      const outdir = join(tmp, env);
      const { code, output } = await runWrangler(["deploy", "--dry-run", "--env", env, "--outdir", outdir], root);
      assert.equal(code, 0, output);
      assert.match(output, new RegExp(`policies/${env}\\.json is valid`));
      assert.match(output, /Total Upload: [\d.]+ KiB \/ gzip: [\d.]+ KiB/);
      assert.match(output, /--dry-run: exiting now/);
      // Its own queues (so one account runs both environments), delivery
      // state (which holds the dead letters) and retry count are bound.
      for (const binding of [
        new RegExp(`env\\.DELIVERY \\(phimask-delivery-${env}\\)\\s+Queue`),
        new RegExp(`env\\.DEAD_LETTER \\(phimask-dead-letter-${env}\\)\\s+Queue`),
        new RegExp(`env\\.DELIVERY_STATE \\(phimask-delivery-state-${env}\\)\\s+D1 Database`),
        /env\.DELIVERY_MAX_RETRIES \("20"\)/,
      ]) {
        assert.match(output, binding);
      }
      const other = env === "production" ? "development" : "production";
      assert.ok(!output.includes(`-${other}`), `no binding of ${other}`);
      const policy = JSON.parse(readFileSync(join(root, "policies", `${env}.json`), "utf8"));
      const script = bundled(outdir);
      // The bundle carries this environment's policy, prepared: loaded
      // back, it names the policy's server-side destinations and endpoints.
      const prepared = [...script.matchAll(/environment: ?"(\w+)", ?prepared: ?"([A-Za-z0-9+/=]+)"/g)];
      assert.deepEqual(prepared.map((m) => m[1]), [env], "one prepared policy, of this environment");
      const loaded = Sanitizer.fromPrepared(Buffer.from(prepared[0][2], "base64"), "k".repeat(32));
      const serverSide = Object.entries(policy.destinations).filter(([, d]) => d.connection === "server-side");
      assert.deepEqual(loaded.destinations().sort(), serverSide.map(([name]) => name).sort());
      for (const [name, { endpoint }] of serverSide) assert.equal(loaded.endpoint(name), endpoint);
      assert.ok(!script.includes("validatePolicy"), "the Worker's engine has no validator");
      assert.ok(readdirSync(outdir).some((f) => f.endsWith(".wasm")), "the engine's wasm is uploaded with it");
    });
  }

  test("wrangler.toml: every environment declares its own queues, their consumers, its delivery state (with the dead letters), its evidence ledger and DELIVERY_MAX_RETRIES = max_retries", () => {
    const tables = wranglerTables();
    // The top level is the development Worker (phimask-development).
    for (const [env, name] of [["", "development"], ["env.development.", "development"], ["env.production.", "production"]]) {
      const of = (table) => tables.filter((t) => t.name === `${env}${table}`).map((t) => t.values);
      assert.deepEqual(of("queues.producers").map((p) => [p.binding, p.queue]), [["DELIVERY", `phimask-delivery-${name}`], ["DEAD_LETTER", `phimask-dead-letter-${name}`]], env || "top level");
      const [delivery, dead] = of("queues.consumers");
      assert.equal(delivery.queue, `phimask-delivery-${name}`);
      assert.equal(delivery.dead_letter_queue, `phimask-dead-letter-${name}`);
      assert.equal(dead.queue, `phimask-dead-letter-${name}`);
      assert.deepEqual(of("d1_databases").map((d) => [d.binding, d.database_name, d.migrations_dir]), [["DELIVERY_STATE", `phimask-delivery-state-${name}`, "migrations"], ["LEDGER", `phimask-ledger-${name}`, "migrations/ledger"]]);
      assert.equal(dead.dead_letter_queue, undefined, "the dead letters' own consumer is the last stop");
      // Dead letters live in DELIVERY_STATE (D1, strongly consistent), not in KV.
      assert.deepEqual(of("kv_namespaces"), []);
      assert.equal(of("vars")[0].DELIVERY_MAX_RETRIES, String(delivery.max_retries), "the consumer dead-letters after the queue's own retries");
    }
  });

  test("an invalid production policy fails the deploy and prints every validation message", async () => {
    // A copy of the project whose production policy is broken.
    const project = join(tmp, "broken");
    mkdirSync(join(project, "policies"), { recursive: true });
    for (const name of ["scripts", "www", "node_modules", "pkg", "pkg-worker"]) symlinkSync(join(root, name), join(project, name));
    copyFileSync(join(root, "wrangler.toml"), join(project, "wrangler.toml"));
    copyFileSync(join(root, "policies/development.json"), join(project, "policies/development.json"));
    const policy = JSON.parse(readFileSync(join(root, "policies/production.json"), "utf8"));
    policy.allowlists.event_properties.diagnosis = "keep";
    policy.destinations.amplitude.endpoint = "http://collector.example/batch";
    policy.destinations.meta = { connection: "client-side" };
    writeFileSync(join(project, "policies/production.json"), JSON.stringify(policy, null, 2));
    const stale = join(project, "build/production.policy.js");
    mkdirSync(join(project, "build"));
    writeFileSync(stale, 'export default { environment: "production", prepared: "" };\n');

    const outdir = join(project, "dist");
    const { code, output } = await runWrangler(["deploy", "--dry-run", "--env", "production", "--outdir", outdir], project);
    assert.notEqual(code, 0, output);
    assert.match(output, /allowlists\.event_properties\.diagnosis: unknown action "keep"/);
    assert.match(output, /destinations\.amplitude\.endpoint: /);
    assert.match(output, /destinations\.meta\.connection: client-side destinations cannot restrict PHI/);
    assert.match(output, /policies\/production\.json is invalid \(3 errors\); nothing was built/);
    assert.doesNotMatch(output, /Total Upload/);
    assert.throws(() => readdirSync(outdir), /ENOENT/, "no bundle was written");
    assert.ok(!existsSync(stale), "the prepared policy of an earlier build is removed, so nothing can bundle it");
  });
});
