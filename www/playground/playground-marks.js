// What happened to each field of an event for one destination, from the
// engine's explain (paths dropped, masked, transformed) and its output:
// one row per leaf of the event, in the event's order. Pure functions, so
// the page and the tests share them.

/** The leaves of a JSON value: { path: [key or index, …], value }. Empty
 * objects and arrays count as leaves. */
export function leaves(value, path = []) {
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    if (entries.length > 0) return entries.flatMap(([k, v]) => leaves(v, [...path, k]));
  }
  return [{ path, value }];
}

/** A path as explain writes it: `properties.products[].sku`; a key that
 * does not look like a field name is `[key]` (explain never shows one: it
 * may be PHI). */
export function pattern(path) {
  let out = "";
  for (const step of path) {
    if (typeof step === "number") out += "[]";
    else {
      const shown = /^[A-Za-z0-9_.$-]{1,64}$/.test(step) ? step : "[key]";
      out += out === "" ? shown : `.${shown}`;
    }
  }
  return out;
}

/** The value at `path` in `value`, or `undefined` where there is none. */
export function at(value, path) {
  let v = value;
  for (const step of path) {
    if (v === null || typeof v !== "object" || !Object.hasOwn(v, step)) return undefined;
    v = v[step];
  }
  return v;
}

/** Whether explain's path `ancestor` is `p` or above it. Its `[key]` is
 * a key `pattern` hides too, or one of a field name's characters with a
 * digit in it (explain also hides keys a detector finds: `123-45-6789`). */
function covers(ancestor, p) {
  const escaped = ancestor.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replaceAll("\\[key\\]", "(?:\\[key\\]|[\\w.$-]*\\d[\\w.$-]*)");
  return new RegExp(`^${escaped}(?:$|\\.|\\[)`).test(p);
}

/**
 * Rows { path, field, mark, input, output } for an event sent to a
 * destination: `explanation` is explain's entry for it, `sent` the parsed
 * event it receives. A leaf that does not arrive, or under the deepest
 * path explain names as dropped, is "dropped" (an array element then
 * arrives as null); otherwise the deepest path explain names decides
 * (masked, transformed), and a leaf it does not name is "passed" when it
 * arrives unchanged, "transformed" when changed.
 */
export function marks(event, explanation, sent) {
  const named = [];
  for (const mark of ["dropped", "masked", "transformed"]) {
    for (const p of explanation[mark] ?? []) named.push({ p, mark });
  }
  return leaves(event).map(({ path, value }) => {
    const field = pattern(path);
    const output = at(sent, path);
    const deepest = named.filter((n) => covers(n.p, field)).sort((a, b) => b.p.length - a.p.length)[0];
    let mark;
    // A key masked under `mask` arrives masked: not at its own path.
    const maskedKey = deepest?.mark === "masked" && field.includes("[key]");
    if (deepest?.mark === "dropped" || (output === undefined && !maskedKey)) mark = "dropped";
    else if (deepest) mark = deepest.mark;
    else mark = JSON.stringify(output) === JSON.stringify(value) ? "passed" : "transformed";
    return { path, field, mark, input: value, output: mark === "dropped" ? undefined : output };
  });
}
