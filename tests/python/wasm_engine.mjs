// The wasm engine (pkg/, as Node loads it) over many events at once, for
// the Python tests that compare the wheel with it byte for byte:
//
//   PHI_MASKING_KEY=... node wasm_engine.mjs POLICY.json DESTINATION [SIGNALS] < in > out
//
// SIGNALS, when given, is the JSON of the request's signals every event is
// decided with ({"gpc": true, "region": "US-CA", "userAgent": ..., "botScore": 5}).
//
// Each input line is a JSON string: one event's text. Each output line is
// what `sanitizeJson(text, DESTINATION)` gave for it: the text (a JSON
// string), null when nothing is sent, or {"error": code, "message": ...}
// when it threw. One process for a whole corpus: starting Node per event
// would take minutes.
import { readFileSync } from "node:fs";
import { Sanitizer } from "../../pkg/node.js";

const [policyPath, destination, signalsJson] = process.argv.slice(2);
const signals = signalsJson === undefined ? undefined : JSON.parse(signalsJson);
if (!policyPath || !destination) {
  process.stderr.write("usage: node wasm_engine.mjs POLICY.json DESTINATION [SIGNALS] < events\n");
  process.exit(2);
}
const key = process.env.PHI_MASKING_KEY;
const sanitizer = new Sanitizer(readFileSync(policyPath, "utf8"), key === undefined ? undefined : key);

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = Buffer.concat(chunks).toString("utf8");

const out = [];
for (const line of input.split("\n")) {
  if (line === "") continue;
  const text = JSON.parse(line);
  let result;
  try {
    result = sanitizer.sanitizeJson(text, destination, signals);
  } catch (e) {
    // An engine error has a code; anything else is a failure of this
    // script, which must not pass for a refusal.
    if (typeof e?.code !== "string") throw e;
    result = { error: e.code, message: e.message };
  }
  out.push(JSON.stringify(result));
}
process.stdout.write(out.length ? out.join("\n") + "\n" : "");
