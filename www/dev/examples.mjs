// Sanitizes the example events through the wasm package and prints what
// each destination of a policy would receive.
//   node www/dev/examples.mjs [policy.json] [event.json ...]
// The masking key comes from PHI_MASKING_KEY; without it a fixed
// development key is used (never use it in production).
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Sanitizer, validatePolicy } from "./node.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const [policyPath = `${root}policies/development.json`, ...eventPaths] = process.argv.slice(2);
const events = eventPaths.length
  ? eventPaths
  : readdirSync(`${root}examples/events`).sort().map((f) => `${root}examples/events/${f}`);

// The development key of .dev.vars.example, so pseudonyms match `make run`.
const DEV_KEY = "development-only-masking-key-do-not-use-in-production";
const key = process.env.PHI_MASKING_KEY ?? DEV_KEY;

const policyText = readFileSync(policyPath, "utf8");
const report = validatePolicy(policyText);
for (const w of report.warnings) console.log(`warning: ${w.path}: ${w.message}`);
if (!report.valid) {
  for (const e of report.errors) console.error(`error: ${e.path ? `${e.path}: ` : ""}${e.message}`);
  process.exit(1);
}
const sanitizer = new Sanitizer(policyText, key);
console.log(`policy ${policyPath} (${key === DEV_KEY ? "development key" : "key from PHI_MASKING_KEY"})`);
for (const path of events) {
  const text = readFileSync(path, "utf8");
  console.log(`\n=== ${path.replace(root, "")}`);
  for (const destination of sanitizer.destinations()) {
    try {
      const out = sanitizer.sanitizeJson(text, destination);
      console.log(`--- ${destination}:`);
      console.log(out === null ? "(nothing sent)" : JSON.stringify(JSON.parse(out), null, 2));
    } catch (e) {
      console.log(`--- ${destination}: refused: ${e.message}`);
    }
  }
}
