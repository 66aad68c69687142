// An idiomatic JavaScript sanitizer for the same policy rules (JSON.parse,
// allowlist walk, node:crypto HMAC, JSON.stringify): the baseline the
// benchmark compares the wasm engine with, written from the README's
// rules. Restricted server-side destinations only. tests/js/reference
// .test.mjs runs it against the engine on every shared vector, so the two
// cannot drift apart.
import { createHmac } from "node:crypto";
import { isIP } from "node:net";

const IDS = ["userId", "anonymousId", "groupId", "previousId"];
const TIMESTAMPS = new Set(["timestamp", "originalTimestamp", "sentAt", "receivedAt"]);
const CHANNELS = new Set(["browser", "server", "mobile"]);
const NAMES = { track: ["event"], page: ["name", "category"], screen: ["name", "category"] };
const DEFAULT_CONTEXT = { "library.name": "scalar", "library.version": "scalar", locale: "scalar", timezone: "scalar" };
const DETECTOR_NAMES = ["email", "ssn", "phone", "card", "ip", "id"];
const RESTRICTED_ZIP3 = new Set(["036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879", "884", "890", "893"]);

// The default detectors (email, SSN, phone, card, IP), as regular expressions.
const WORD = "A-Za-z0-9\\u0080-\\uffff";
const DETECTORS = [
  new RegExp(`(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}(?![${WORD}])`),
  new RegExp(`(?<![${WORD}])(?!000|666|9)\\d{3}([- ])(?!00)\\d{2}\\1(?!0000)\\d{4}(?![${WORD}])`),
  new RegExp(`(?<![${WORD}])(?:\\(\\d{3}\\)[ .-]?|\\d{3}[ .-])\\d{3}[ .-]\\d{4}(?![${WORD}])`),
  new RegExp(`(?<![${WORD}])\\+\\d{8,15}(?![${WORD}])`),
  new RegExp(`(?<![${WORD}.])(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(?![${WORD}]|\\.\\d)`),
];
// Global versions for finding every match: email, ssn, phone (two forms), ip.
const NAMED = [["email", 0], ["ssn", 1], ["phone", 2], ["phone", 3], ["ip", 4]].map(([n, i]) => [n, new RegExp(DETECTORS[i].source, "g")]);
const luhn = (digits) =>
  [...digits].reverse().reduce((sum, d, i) => sum + (i % 2 ? [0, 2, 4, 6, 8, 1, 3, 5, 7, 9][d] : Number(d)), 0) % 10 === 0;
function hasCard(s) {
  for (const m of s.matchAll(new RegExp(`(?<![${WORD}])[2-6](?:[ -]?\\d){12,18}(?![${WORD}])`, "g"))) {
    if (luhn(m[0].replace(/\D/g, ""))) return true;
  }
  return false;
}
const detected = (s) => DETECTORS.some((re) => re.test(s)) || hasCard(s);
// A key that may be sent as written under mask: up to 64 characters of a
// field name's alphabet, and nothing a detector finds in it.
const fieldName = (k) => /^[A-Za-z0-9_.$-]{1,64}$/.test(k) && !detected(k);

/** Every match of the chosen detectors: [start, end, name], left to right, the longest at a place. */
function matches(s, names) {
  const found = [];
  for (const [name, re] of NAMED) if (names.has(name)) for (const m of s.matchAll(re)) found.push([m.index, m.index + m[0].length, name]);
  if (names.has("card")) {
    for (const m of s.matchAll(new RegExp(`(?<![${WORD}])[2-6](?:[ -]?\\d){12,18}(?![${WORD}])`, "g"))) {
      if (luhn(m[0].replace(/\D/g, ""))) found.push([m.index, m.index + m[0].length, "card"]);
    }
  }
  if (names.has("ip")) {
    for (const m of s.matchAll(new RegExp(`(?<![${WORD}:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?![${WORD}])`, "g"))) {
      const t = m[0].replace(/\.$/, "");
      if (isIP(t) === 6) found.push([m.index, m.index + t.length, "ip"]);
    }
  }
  if (names.has("id")) for (const m of s.matchAll(new RegExp(`(?<![${WORD}])\\d{7,}(?![${WORD}])`, "g"))) found.push([m.index, m.index + m[0].length, "id"]);
  found.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const out = [];
  for (const f of found) if (out.length === 0 || f[0] >= out.at(-1)[1]) out.push(f);
  return out;
}

// Value actions, as the README describes them; undefined = not sent.
function ipAction(v, mode) {
  // Zone ids (fe80::1%eth0) are not addresses a destination may keep.
  if (typeof v !== "string" || v.includes("%") || !isIP(v)) return undefined;
  if (isIP(v) === 4) return mode === "zero" ? "0.0.0.0" : v.replace(/\.\d+$/, ".0");
  if (mode === "zero") return "::";
  const mapped = /^::ffff:(\d+\.\d+\.\d+)\.\d+$/i.exec(v);
  if (mapped) return `::ffff:${mapped[1]}.0`;
  // The first 48 bits, written as RFC 5952 says (the URL parser's IPv6 form).
  const full = new URL(`http://[${v}]/`).hostname.slice(1, -1);
  const groups = expand(full).slice(0, 3).map((g) => parseInt(g, 16).toString(16));
  return new URL(`http://[${groups.join(":")}::]/`).hostname.slice(1, -1);
}
function expand(v6) {
  const [head, tail = ""] = v6.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  return v6.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h;
}
function zip3Action(v) {
  const m = typeof v === "number" ? /^(\d{5})$/.exec(String(v)) : /^(\d{5})(?:-\d{4})?$/.exec(v);
  if (!m) return undefined;
  const prefix = m[1].slice(0, 3);
  return RESTRICTED_ZIP3.has(prefix) ? "000" : prefix;
}
function yearAction(v) {
  if (typeof v !== "string") return undefined;
  const valid = /^\d{4}-\d{2}-\d{2}$/.test(v) ? rfc3339(`${v}T00:00:00Z`) : rfc3339(v);
  return valid ? v.slice(0, 4) : undefined;
}
function ageAction(v) {
  const n = typeof v === "number" ? v : /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(v) ? Number(v) : NaN;
  if (Number.isNaN(n) || (n < 0)) return undefined;
  return n >= 90 ? "90+" : Math.trunc(n);
}
function normalized(s, how) {
  const lower = (t) => t.replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (how === "email") return lower(s.trim()) || undefined;
  if (how === "text") return lower(s.split(/\s+/).filter(Boolean).join(" ")) || undefined;
  const digits = s.replace(/\D/g, "");
  if (digits === "") return undefined;
  return digits.length === 10 ? `+1${digits}` : `+${digits}`;
}

// The url action: scheme, host and port; path segments by template or
// ":id" when identifier-like; only listed query parameters whose values
// hold no PHI; no user info, no fragment.
function decodeRepeated(s) {
  let current = s;
  for (let i = 0; i < 3; i++) {
    let next;
    try {
      next = decodeURIComponent(current);
    } catch {
      return undefined;
    }
    if (next === current) return current;
    current = next;
  }
  try {
    return decodeURIComponent(current) === current ? current : undefined;
  } catch {
    return undefined;
  }
}
function identifierLike(segment) {
  const s = decodeRepeated(segment);
  if (s === undefined) return true;
  return s.includes("@") || /\d{5}/.test(s) || /[0-9A-Fa-f]{16}/.test(s)
    || /[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}/.test(s) || detected(s);
}
function urlAction(v, rule) {
  if (typeof v !== "string" || /[\u0000-\u001f\u007f-\u009f ]/.test(v)) return undefined;
  const url = v.split("#")[0];
  let origin = "";
  let rest = url;
  if (!url.startsWith("/") && !url.startsWith("?")) {
    const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?]*)(.*)$/.exec(url);
    if (!m || !["http", "https"].includes(m[1].toLowerCase())) return undefined;
    const hostPort = m[2].split("@").at(-1);
    if (hostPort === "" || hostPort.startsWith(":")) return undefined;
    origin = `${m[1].toLowerCase()}://${hostPort.toLowerCase()}`;
    rest = m[3];
  }
  const [path, ...q] = rest.split("?");
  const query = q.length > 0 ? q.join("?") : undefined;
  let outPath = path;
  if (path !== "") {
    const segments = path.split("/");
    const template = (rule.paths ?? []).map((t) => t.split("/")).find((t) =>
      t.length === segments.length && t.every((x, i) => (x.startsWith(":") ? segments[i] !== "" : decodeRepeated(segments[i]) === x)));
    outPath = template ? template.join("/") : segments.map((s) => (identifierLike(s) ? ":id" : s)).join("/");
  }
  const keeps = (name) => (rule.query ?? []).some((k) => (k.endsWith("*") ? name.startsWith(k.slice(0, -1)) : k === name));
  const kept = query === undefined ? [] : query.split("&").filter((pair) => {
    const i = pair.indexOf("=");
    const [name, value] = i < 0 ? [pair, ""] : [pair.slice(0, i), pair.slice(i + 1)];
    const n = decodeRepeated(name.replaceAll("+", " "));
    const val = decodeRepeated(value.replaceAll("+", " "));
    const clean = (x) => x !== undefined && !detected(x) && !x.includes("@");
    return clean(n) && keeps(n) && clean(val);
  });
  return origin + outPath + (kept.length > 0 ? `?${kept.join("&")}` : "");
}

/** A rule's action as { action, ...options }. */
const actionOf = (a) => (typeof a === "string" ? { action: a } : a);

const plainId = (s) => /^[A-Za-z0-9._:-]{1,100}$/.test(s) && !detected(s);
const integrationName = (s) => /^[A-Za-z0-9 ._()/-]{1,100}$/.test(s) && !detected(s);
function rfc3339(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-](\d{2}):(\d{2}))$/.exec(s);
  if (!m) return false;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number);
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  const offsetOk = m[9] === undefined || (Number(m[9]) <= 23 && Number(m[10]) <= 59);
  return mo >= 1 && mo <= 12 && d >= 1 && d <= days && h <= 23 && mi <= 59 && sec <= 60 && offsetOk;
}

function trie(list = {}) {
  const root = { keys: new Map() };
  for (const [path, action] of Object.entries(list)) {
    let node = root;
    for (const seg of path.split(".")) {
      const key = seg.replace(/(\[\])+$/, "");
      if (!node.keys.has(key)) node.keys.set(key, { keys: new Map() });
      node = node.keys.get(key);
      for (let i = 0; i < (seg.length - key.length) / 2; i++) node = node.elements ??= { keys: new Map() };
    }
    node.action = action;
  }
  return root;
}

export function referenceSanitizer(policy, destination, key) {
  const lists = { ...policy.allowlists };
  const own = policy.destinations[destination];
  const merged = (name, dflt = {}) => ({ ...(lists[name] ?? dflt), ...(own.allowlists?.[name] ?? {}) });
  const user = trie(merged("user_properties"));
  const context = trie(merged("context", DEFAULT_CONTEXT));
  context.keys.set("traits", user);
  const tries = { event: trie(merged("event_properties")), user, group: trie(merged("group_properties")), context, integrations: trie(merged("integrations")) };
  const names = { ...(policy.events ?? {}), ...(own.events ?? {}) };
  const nameRule = (n) => (Object.hasOwn(names, n) ? names[n] : names["*"] ?? "allow");
  const calls = new Set(own.calls ?? ["track", "identify", "group", "page", "screen", "alias"]);
  const integration = (own.integration ?? destination).toLowerCase();
  const ids = { userId: "mask", anonymousId: "mask", groupId: "mask", previousId: "mask", ...policy.identifiers };
  const scopeKey = own.mask_scope === undefined ? key : createHmac("sha256", key).update(`phimask-scope:${own.mask_scope}`).digest();
  const mask = (s) => createHmac("sha256", scopeKey).update(s).digest("hex");
  const defaultScan = policy.scan === undefined || policy.scan === false ? undefined : policy.scan;
  const scanOf = (rule) => {
    const set = rule.scan === undefined ? defaultScan : rule.scan === false ? undefined : rule.scan;
    if (set === undefined) return undefined;
    return { names: new Set(set === true ? DETECTOR_NAMES.slice(0, 5) : set), onMatch: rule.on_match ?? "redact" };
  };
  // A string through a scan: the text to send, or undefined.
  const scanned = (s, scan) => {
    const found = matches(s, scan.names);
    if (found.length === 0) return s;
    if (scan.onMatch === "drop") return undefined;
    let out = "";
    let at = 0;
    for (const [start, end, name] of found) {
      out += s.slice(at, start) + (scan.onMatch === "mask" ? mask(s.slice(start, end)) : `[${name}]`);
      at = end;
    }
    return out + s.slice(at);
  };
  const scanAll = (v, scan) => {
    if (typeof v === "string") return scanned(v, scan);
    if (Array.isArray(v)) return v.map((x) => scanAll(x, scan) ?? null);
    if (v !== null && typeof v === "object") {
      const out = {};
      for (const [k, x] of Object.entries(v)) {
        const name = scanned(k, scan);
        if (name === undefined) continue;
        const r = scanAll(x, scan);
        if (r !== undefined) out[name] = r;
      }
      return out;
    }
    return v;
  };
  const maskWith = (v, how) => {
    if (v === null) return null;
    if (Array.isArray(v)) return v.map((x) => maskWith(x, how) ?? null);
    if (typeof v === "object") {
      const out = {};
      for (const [k, x] of Object.entries(v)) {
        const r = maskWith(x, how);
        if (r !== undefined) out[fieldName(k) ? k : mask(k)] = r;
      }
      return out;
    }
    const clear = how === undefined ? String(v) : normalized(String(v), how);
    return clear === undefined ? undefined : mask(clear);
  };
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const scalar = (v) => typeof v === "string" || typeof v === "number";
  const apply = (v, rule) => {
    if (rule === undefined) return undefined;
    if (rule === "copy") return v;
    const r = actionOf(rule);
    switch (r.action) {
      case "scalar":
      case "allow": {
        if (r.action === "scalar" && v !== null && typeof v === "object") return undefined;
        const scan = scanOf(r);
        return scan ? scanAll(v, scan) : v;
      }
      case "mask": return maskWith(v, r.normalize);
      case "url": return urlAction(v, r);
      case "ip": return ipAction(v, r.mode);
      case "zip3": return scalar(v) ? zip3Action(v) : undefined;
      case "year": return yearAction(v);
      case "age": return scalar(v) ? ageAction(v) : undefined;
      default: return undefined; // "drop"
    }
  };
  const walk = (v, node, inherited) => {
    const action = node?.action ?? inherited;
    if (!node || (node.keys.size === 0 && !node.elements)) return apply(v, action);
    if (isObject(v) && node.keys.size > 0) {
      const out = {};
      for (const [k, x] of Object.entries(v)) {
        const child = node.keys.get(k);
        const inherited = actionOf(action ?? "drop").action;
        // The event's own key: under an inherited mask masked like any;
        // under a value transform (which cannot mask it) left out.
        if (!child && !fieldName(k) && ["url", "ip", "zip3", "year", "age"].includes(inherited)) continue;
        const r = walk(x, child, action);
        const masked = !child && inherited === "mask" && !fieldName(k);
        if (r !== undefined) out[masked ? mask(k) : k] = r;
      }
      return out;
    }
    if (Array.isArray(v) && node.elements) return v.map((x) => walk(x, node.elements, action) ?? null);
    return apply(v, action);
  };
  const routed = (integrations) => {
    if (!isObject(integrations)) return true;
    const on = (v) => v === true || isObject(v);
    const members = (name) => Object.entries(integrations).filter(([k]) => k.toLowerCase() === name).map(([, v]) => on(v));
    const mine = members(integration);
    return (mine.length > 0 ? mine : members("all")).every(Boolean);
  };
  const usable = (v) => (typeof v === "string" && v !== "") || typeof v === "number";
  // Returns the JSON text to send, null when nothing is sent, or throws
  // an Error with the engine's code for a refused event.
  return (text) => {
    const ev = JSON.parse(text);
    const refuse = (code) => Object.assign(new Error(code), { code });
    if (ev.integrations !== undefined && ev.integrations !== null && !isObject(ev.integrations)) throw refuse("invalid_integrations");
    if (
      (!usable(ev.userId) && !usable(ev.anonymousId))
      || (ev.type === "track" && !(typeof ev.event === "string" && ev.event !== ""))
      || (ev.type === "group" && !usable(ev.groupId))
      || (ev.type === "alias" && !usable(ev.previousId))
    ) throw refuse("incomplete_event");
    if (!calls.has(ev.type) || !routed(ev.integrations)) return null;
    const named = NAMES[ev.type] ?? [];
    if (named.some((k) => typeof ev[k] === "string" && nameRule(ev[k]) === "drop")) return null;
    const out = {};
    for (const [k, v] of Object.entries(ev)) {
      let r;
      if (k === "type") r = v;
      else if (k === "messageId") r = typeof v === "string" ? (plainId(v) ? v : mask(v)) : ["number", "boolean"].includes(typeof v) ? mask(String(v)) : undefined;
      else if (TIMESTAMPS.has(k)) r = typeof v === "string" && rfc3339(v) ? v : undefined;
      else if (k === "channel") r = CHANNELS.has(v) ? v : undefined;
      else if (k === "version") r = Number.isInteger(v) && Math.abs(v) < 1e6 ? v : undefined;
      else if (named.includes(k)) r = typeof v === "string" ? (nameRule(v) === "allow" ? v : nameRule(v).rename) : undefined;
      else if (k === "integrations" && isObject(v)) {
        r = {};
        for (const [name, x] of Object.entries(v)) {
          const kept = typeof x === "boolean" && integrationName(name) ? x : walk(x, tries.integrations.keys.get(name));
          if (kept !== undefined) r[name] = kept;
        }
      } else if (IDS.includes(k)) r = ["string", "number"].includes(typeof v) || v === null ? apply(v, ids[k] === "allow" ? "copy" : ids[k] === "drop" ? undefined : "mask") : undefined;
      else if (k === "properties" && ["track", "page", "screen"].includes(ev.type)) r = walk(v, tries.event);
      else if (k === "traits" && ev.type === "identify") r = walk(v, tries.user);
      else if (k === "traits" && ev.type === "group") r = walk(v, tries.group);
      else if (k === "context") r = walk(v, tries.context);
      if (r !== undefined) out[k] = r;
    }
    return JSON.stringify(out);
  };
}
