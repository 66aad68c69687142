// Reads the shared vectors of tests/vectors/ (the Rust tests read the same
// files) and resolves {"$mask": clear} (and {"$mask": clear, "scope":
// NAME}, masked with the scope's derived key) with Node's own HMAC-SHA256.
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
  const k = typeof key === "string" ? Buffer.from(key, "utf8") : key;
  return createHmac("sha256", k).update(Buffer.from(clear, "utf8")).digest("hex");
}

/** A key scope's key: HMAC-SHA256(key, "phimask-scope:" + NAME), raw. */
export function scopeKey(key, scope) {
  return createHmac("sha256", Buffer.from(key, "utf8")).update(`phimask-scope:${scope}`).digest();
}

export function resolveMasks(expected, key) {
  if (Array.isArray(expected)) return expected.map((v) => resolveMasks(v, key));
  if (expected && typeof expected === "object") {
    const keys = Object.keys(expected);
    if (keys.length === 1 && keys[0] === "$mask") return hmacHex(key, expected.$mask);
    if (keys.length === 2 && "$mask" in expected && "scope" in expected) return hmacHex(scopeKey(key, expected.scope), expected.$mask);
    // A key "$mask:clear" is the HMAC of "clear" (a masked key).
    return Object.fromEntries(keys.map((k) => [k.startsWith("$mask:") ? hmacHex(key, k.slice(6)) : k, resolveMasks(expected[k], key)]));
  }
  return expected;
}

export function eventText(c) {
  return typeof c.event_json === "string" ? c.event_json : JSON.stringify(c.event);
}
