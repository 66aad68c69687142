// Reads the shared vectors of tests/vectors/ (the Rust tests read the same
// files) and resolves {"$mask": clear} with Node's own HMAC-SHA256.
import { createHmac } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dir = fileURLToPath(new URL("../vectors/", import.meta.url));

export function vectorFiles() {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => ({ file, doc: JSON.parse(readFileSync(dir + file, "utf8")) }));
}

export function hmacHex(key, clear) {
  return createHmac("sha256", Buffer.from(key, "utf8")).update(Buffer.from(clear, "utf8")).digest("hex");
}

export function resolveMasks(expected, key) {
  if (Array.isArray(expected)) return expected.map((v) => resolveMasks(v, key));
  if (expected && typeof expected === "object") {
    const keys = Object.keys(expected);
    if (keys.length === 1 && keys[0] === "$mask") return hmacHex(key, expected.$mask);
    return Object.fromEntries(keys.map((k) => [k, resolveMasks(expected[k], key)]));
  }
  return expected;
}

export function eventText(c) {
  return typeof c.event_json === "string" ? c.event_json : JSON.stringify(c.event);
}
