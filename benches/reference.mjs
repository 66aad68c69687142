// An idiomatic JavaScript sanitizer for the same policy rules (JSON.parse,
// allowlist walk, node:crypto HMAC, JSON.stringify): the baseline the
// benchmark compares the wasm engine with, written from the README's
// rules. Restricted server-side destinations only. tests/js/reference
// .test.mjs runs it against the engine on every shared vector, so the two
// cannot drift apart.
import { createHmac } from "node:crypto";

const IDS = ["userId", "anonymousId", "groupId", "previousId"];
const TIMESTAMPS = new Set(["timestamp", "originalTimestamp", "sentAt", "receivedAt"]);
const CHANNELS = new Set(["browser", "server", "mobile"]);
const NAMES = { track: ["event"], page: ["name", "category"], screen: ["name", "category"] };
const DEFAULT_CONTEXT = { "library.name": "scalar", "library.version": "scalar", locale: "scalar", timezone: "scalar" };

// The default detectors (email, SSN, phone, card, IP), as regular expressions.
const WORD = "A-Za-z0-9\\u0080-\\uffff";
const DETECTORS = [
  new RegExp(`(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}(?![${WORD}])`),
  new RegExp(`(?<![${WORD}])(?!000|666|9)\\d{3}([- ])(?!00)\\d{2}\\1(?!0000)\\d{4}(?![${WORD}])`),
  new RegExp(`(?<![${WORD}])(?:\\(\\d{3}\\)[ .-]?|\\d{3}[ .-])\\d{3}[ .-]\\d{4}(?![${WORD}])`),
  new RegExp(`(?<![${WORD}])\\+\\d{8,15}(?![${WORD}])`),
  new RegExp(`(?<![${WORD}.])(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(?![${WORD}]|\\.\\d)`),
];
const luhn = (digits) =>
  [...digits].reverse().reduce((sum, d, i) => sum + (i % 2 ? [0, 2, 4, 6, 8, 1, 3, 5, 7, 9][d] : Number(d)), 0) % 10 === 0;
function hasCard(s) {
  for (const m of s.matchAll(new RegExp(`(?<![${WORD}])[2-6](?:[ -]?\\d){12,18}(?![${WORD}])`, "g"))) {
    if (luhn(m[0].replace(/\D/g, ""))) return true;
  }
  return false;
}
const detected = (s) => DETECTORS.some((re) => re.test(s)) || hasCard(s);

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
  const mask = (s) => createHmac("sha256", key).update(s).digest("hex");
  const maskAll = (v) =>
    v === null ? null
    : Array.isArray(v) ? v.map(maskAll)
    : typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, maskAll(x)]))
    : mask(String(v));
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const apply = (v, action) =>
    action === "allow" ? v
    : action === "mask" ? maskAll(v)
    : action === "scalar" && (v === null || typeof v !== "object") ? v
    : undefined;
  const walk = (v, node, inherited) => {
    const action = node?.action ?? inherited;
    if (!node || (node.keys.size === 0 && !node.elements)) return apply(v, action);
    if (isObject(v) && node.keys.size > 0) {
      const out = {};
      for (const [k, x] of Object.entries(v)) {
        const r = walk(x, node.keys.get(k), action);
        if (r !== undefined) out[k] = r;
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
      } else if (IDS.includes(k)) r = ["string", "number"].includes(typeof v) || v === null ? apply(v, ids[k]) : undefined;
      else if (k === "properties" && ["track", "page", "screen"].includes(ev.type)) r = walk(v, tries.event);
      else if (k === "traits" && ev.type === "identify") r = walk(v, tries.user);
      else if (k === "traits" && ev.type === "group") r = walk(v, tries.group);
      else if (k === "context") r = walk(v, tries.context);
      if (r !== undefined) out[k] = r;
    }
    return JSON.stringify(out);
  };
}
