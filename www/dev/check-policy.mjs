// Validates a policy file with the engine itself, at build time: prints
// every error and warning with its path, exits 1 when the policy is
// invalid (so `wrangler deploy` and `wrangler dev` stop there). With an
// output path, also writes the prepared policy module a Worker entry
// imports (and removes it when the policy is invalid).
//   node www/dev/check-policy.mjs policies/production.json [build/production.policy.js]
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { validatePolicy } from "./node.mjs";
import { preparedPolicy } from "./prepared-module.mjs";

const [path, out] = process.argv.slice(2);
if (!path) {
  console.error("usage: node www/dev/check-policy.mjs POLICY.json [PREPARED.js]");
  process.exit(2);
}
// Whatever happens below, no stale prepared policy is left to bundle.
if (out) rmSync(out, { force: true });
let text;
try {
  text = readFileSync(path, "utf8");
} catch (e) {
  console.error(`phimask: cannot read policy ${path}: ${e.code ?? e.message}`);
  process.exit(1);
}
const { valid, errors, warnings } = validatePolicy(text);
const where = (p) => (p.path ? `${p.path}: ${p.message}` : p.message);
for (const w of warnings) console.error(`phimask: ${path}: warning: ${where(w)}`);
for (const e of errors) console.error(`phimask: ${path}: error: ${where(e)}`);
if (!valid) {
  console.error(`phimask: ${path} is invalid (${errors.length} error${errors.length === 1 ? "" : "s"}); nothing was built`);
  process.exit(1);
}
const { module, sha256 } = preparedPolicy(text, path);
if (out) {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, module);
}
console.error(`phimask: ${path} is valid${warnings.length ? ` (${warnings.length} warning${warnings.length === 1 ? "" : "s"})` : ""}; prepared policy sha256 ${sha256} (GET /health reports it)`);
