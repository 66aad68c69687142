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
// The default context: four leaves, each only as a string of its shape.
const DEFAULT_CONTEXT = { "library.name": "shape:sdk-name", "library.version": "shape:sdk-version", locale: "shape:locale", timezone: "shape:timezone" };
const SDK_NAMES = new Set([
  "analytics.js", "analytics-next", "@segment/analytics-next", "@segment/analytics-node", "analytics-node",
  "analytics-node-next", "analytics-python", "analytics-ruby", "analytics-go", "analytics-java", "analytics-kotlin",
  "analytics-swift", "analytics-ios", "analytics-android", "analytics-react-native", "analytics-flutter",
  "analytics-php", "analytics-csharp", "RudderLabs JavaScript SDK", "RudderLabs Android SDK", "RudderLabs iOS SDK",
  "rudder-sdk-python",
]);
const SHAPES = {
  "shape:sdk-name": (s) => SDK_NAMES.has(s),
  "shape:sdk-version": (s) => /^(npm:|web:)?([a-z]{1,8}-)?\d{1,4}(\.\d{1,4}){0,3}([-+][0-9A-Za-z]{1,12}(\.[0-9A-Za-z]{1,12}){0,2})?$/.test(s),
  "shape:locale": (s) => /^[a-z]{2,3}([-_]([A-Z][a-z]{3}|[A-Z]{2}|\d{3})){0,2}$/.test(s),
  "shape:timezone": (s) =>
    /^(UTC|GMT|Etc\/(UTC|UCT|GMT|GMT0|Greenwich|Universal|Zulu|GMT[+-]([0-9]|1[0-4])))$/.test(s)
    || /^(Africa|America|Antarctica|Arctic|Asia|Atlantic|Australia|Europe|Indian|Pacific)(\/[A-Za-z_-]+){1,2}$/.test(s),
};
const DETECTOR_NAMES = ["email", "ssn", "phone", "card", "ip", "id", "date"];
// What `"scan": true` means: every detector but id.
const DEFAULT_DETECTORS = new Set(["email", "ssn", "phone", "card", "ip", "date"]);
const RESTRICTED_ZIP3 = new Set(["036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879", "884", "890", "893"]);

// Detectors, as the README describes them. Text is first read as ASCII
// where Unicode has a look-alike: fullwidth forms (U+FF01-FF5E), dashes
// and the minus sign, ideographic full stops, Unicode spaces and the
// decimal digits of other scripts. Each of those is one UTF-16 unit, as is
// its ASCII form, so positions in the folded text are positions in the
// original: what is replaced is the original text.
const DIGIT_ZEROS = [0x0660, 0x06f0, 0x07c0, 0x0966, 0x09e6, 0x0a66, 0x0ae6, 0x0b66, 0x0be6, 0x0c66, 0x0ce6, 0x0d66, 0x0de6, 0x0e50, 0x0ed0, 0x0f20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90, 0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10];
const foldUnit = (c) => {
  const u = c.charCodeAt(0);
  if (u < 0x80) return c;
  if (u >= 0xff01 && u <= 0xff5e) return String.fromCharCode(u - 0xfee0);
  if ((u >= 0x2010 && u <= 0x2015) || u === 0x2212 || u === 0xfe58 || u === 0xfe63) return "-";
  if (u === 0x3002 || u === 0xff61) return ".";
  if (/\p{White_Space}/u.test(c)) return " ";
  const zero = DIGIT_ZEROS.find((z) => u >= z && u < z + 10);
  return zero === undefined ? c : String(u - zero);
};
const fold = (s) => s.replace(/[^\x00-\x7f]/g, foldUnit);

// An email: letters and digits of any script in the local part and the
// domain; the last label two or more letters, or an xn-- label.
const W = "\\p{Alphabetic}\\p{N}\\p{M}\\u200c\\u200d";
const LABEL = `[${W}](?:[${W}-]*[${W}])?(?!-*[${W}])`;
const EMAIL = new RegExp(`(?<![${W}._%+'-])[.+'-]*([${W}_%][${W}._%+'-]*)@(${LABEL}(?:\\.${LABEL})*)`, "gu");
const topLevel = (l) => /^xn--./i.test(l) || (/^\p{Alphabetic}+$/u.test(l) && [...l].length >= 2);
function emails(t, out) {
  for (const m of t.matchAll(EMAIL)) {
    const labels = m[2].split(".");
    let len = -1;
    let at = 0;
    labels.forEach((l, i) => {
      at += l.length + (i > 0 ? 1 : 0);
      // A dash, digit or mark glued after the domain does not hide it:
      // the label's leading letters may end it.
      const letters = l.match(/^\p{Alphabetic}*/u)[0];
      if (i >= 1 && topLevel(l)) len = at;
      else if (i >= 1 && topLevel(letters)) len = at - l.length + letters.length;
    });
    if (len < 0) continue;
    const start = m.index + m[0].length - m[1].length - 1 - m[2].length;
    out.push([start, start + m[1].length + 1 + len, "email"]);
  }
}

const NOT_SSN = (m) => m.startsWith("000") || m.startsWith("666") || m.startsWith("9");
const dottedOut = (t, start, end) => /\d\.$/.test(t.slice(0, start)) || /^\.\d/.test(t.slice(end));
function ssns(t, out) {
  for (const m of t.matchAll(/(?<!\d)\d{3}([- .])(\d{2})\1(\d{4})(?!\d)/g)) {
    if (NOT_SSN(m[0]) || m[2] === "00" || m[3] === "0000") continue;
    if (m[1] === "." && dottedOut(t, m.index, m.index + m[0].length)) continue;
    out.push([m.index, m.index + m[0].length, "ssn"]);
  }
}

function phones(t, out) {
  for (const m of t.matchAll(/(?<!\d)(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\d)/g)) {
    if (m[0][3] === "." && dottedOut(t, m.index, m.index + m[0].length)) continue;
    out.push([m.index, m.index + m[0].length, "phone"]);
  }
  // + and groups of digits (one in parentheses at most per group); the
  // longest run of 8 to 15 digits that ends a group.
  for (const m of t.matchAll(/(?<!\d)\+(?:\(\d+\)|\d+)(?:(?:[ .-](?=[\d(])|(?=\()|(?<=\))(?=\d))(?:\(\d+\)|\d+))*/g)) {
    let digits = 0;
    let best = -1;
    for (const g of m[0].matchAll(/\d+\)?/g)) {
      digits += g[0].replace(")", "").length;
      if (digits > 15) break;
      if (digits >= 8) best = g.index + g[0].length;
    }
    if (best > 0) out.push([m.index, m.index + best, "phone"]);
  }
}

const luhn = (digits) =>
  [...digits].reverse().reduce((sum, d, i) => sum + (i % 2 ? [0, 2, 4, 6, 8, 1, 3, 5, 7, 9][d] : Number(d)), 0) % 10 === 0;
// 13 to 19 digits, single spaces, dots or dashes between them; the longest
// Luhn-valid run. A bare run touching an ASCII letter is an identifier; a
// run going on with "-" and a letter or digit is a UUID's.
function cards(t, out) {
  for (const m of t.matchAll(/(?<!\d)(?<!\d\.)(?=([2-6](?:[ .-]?\d)*))/g)) {
    const afterLetter = /[A-Za-z]$/.test(t.slice(0, m.index));
    let digits = "";
    let best = -1;
    for (let i = 0; i < m[1].length && digits.length < 19; i++) {
      if (!/\d/.test(m[1][i])) continue;
      digits += m[1][i];
      const end = m.index + i + 1;
      const rest = t.slice(end);
      const grouped = /\D/.test(m[1].slice(0, i + 1));
      const ok = digits.length >= 13 && !/^\d/.test(rest) && (grouped || !(afterLetter || /^[A-Za-z]/.test(rest))) && !/^-[A-Za-z0-9]/.test(rest);
      if (ok && luhn(digits)) best = end;
    }
    if (best > 0) out.push([m.index, best, "card"]);
  }
}

const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
function ips(t, out) {
  for (const m of t.matchAll(new RegExp(`(?<![A-Za-z0-9])(?<!\\d\\.)(?:${OCTET}\\.){3}${OCTET}(?![A-Za-z0-9])(?!\\.\\d)`, "g"))) out.push([m.index, m.index + m[0].length, "ip"]);
  // IPv6: a whole token of hex digits, colons and dots; a lone ':' or '.'
  // before it is punctuation.
  for (const m of t.matchAll(/(?:(?<=^|[^A-Za-z0-9:.])|(?<=(?:^|[^0-9A-Fa-f:.])[:.])(?!:))(?=([0-9A-Fa-f:.]+))\1(?![A-Za-z0-9])/g)) {
    const token = m[1];
    if ((token.match(/:/g) ?? []).length < 2) continue;
    const t2 = isIP(token) === 6 ? token : /[.:]$/.test(token) && isIP(token.slice(0, -1)) === 6 ? token.slice(0, -1) : undefined;
    if (t2 !== undefined) out.push([m.index, m.index + t2.length, "ip"]);
  }
}

function ids(t, out) {
  for (const m of t.matchAll(/(?<![A-Za-z0-9])(?<!\d\.)\d{7,}(?![A-Za-z0-9])/g)) out.push([m.index, m.index + m[0].length, "id"]);
}

// Dates with their day. A 4-digit year is 1000 to 2999.
const FULL = "january|february|march|april|may|june|july|august|september|october|november|december";
const ABBR = "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec";
const GAP = "[ ,\\-/.]{1,3}(?![ ,\\-/.])";
const DAY = "(?:0?[1-9]|[12]\\d|3[01])(?!\\d)(?:st|nd|rd|th)?(?![A-Za-z0-9])";
const YEAR = "[12]\\d{3}(?!\\d)";
const MONTH_FIRST = new RegExp(`(?<![A-Za-z0-9])(?:(?:${FULL})(?![a-z])${GAP}|(?:${ABBR})(?![a-z])(?:\\.[ ,\\-/.]{0,3}(?![ ,\\-/.])|${GAP}))${DAY}${GAP}${YEAR}`, "gi");
const DAY_FIRST = new RegExp(`(?<!\\d)${DAY}${GAP}(?:of )?(?:(?:${FULL})(?![a-z])|(?:${ABBR})(?![a-z])\\.?)${GAP}${YEAR}`, "gi");
function dates(t, out) {
  const push = (m) => out.push([m.index, m.index + m[0].length, "date"]);
  for (const m of t.matchAll(/(?<!\d)([12]\d{3})([-/.])(\d{1,2})\2(\d{1,2})(?!\d)/g)) {
    const end = m.index + m[0].length;
    const time = /^([Tt]\d| \d\d:)/.test(t.slice(end));
    if (+m[3] < 1 || +m[3] > 12 || +m[4] < 1 || +m[4] > 31 || time) continue;
    if (m[2] === "." && dottedOut(t, m.index, end)) continue;
    push(m);
  }
  for (const m of t.matchAll(/(?<!\d)(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?!\d)/g)) {
    const [a, b, y] = [+m[1], +m[3], m[4]];
    if (y.length === 4 ? !/^[12]/.test(y) : m[2] !== "/") continue;
    const dm = (d, mo) => d >= 1 && d <= 31 && mo >= 1 && mo <= 12;
    if (!(dm(a, b) || dm(b, a))) continue;
    if (m[2] === "." && dottedOut(t, m.index, m.index + m[0].length)) continue;
    push(m);
  }
  for (const re of [MONTH_FIRST, DAY_FIRST]) for (const m of t.matchAll(re)) push(m);
}

const FINDERS = { email: emails, ssn: ssns, phone: phones, card: cards, ip: ips, id: ids, date: dates };
// A key that may be sent as written under mask: up to 64 characters of a
// field name's alphabet, and nothing a detector finds in it.
const fieldName = (k) => /^[A-Za-z0-9_.$-]{1,64}$/.test(k) && !detected(k);

/** Every match of the chosen detectors: [start, end, name], left to right, the longest at a place. */
function matches(s, names) {
  const t = fold(s);
  const found = [];
  for (const name of DETECTOR_NAMES) if (names.has(name)) FINDERS[name](t, found);
  found.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const out = [];
  for (const f of found) if (out.length === 0 || f[0] >= out.at(-1)[1]) out.push(f);
  return out;
}
const detected = (s) => matches(s, DEFAULT_DETECTORS).length > 0;

/** A number's value in plain decimal digits (no exponent), or undefined past 100 characters. */
function plainDecimal(v) {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/.exec(String(v));
  if (!m) return undefined;
  let digits = m[2] + (m[3] ?? "");
  let point = m[2].length + Number(m[4] ?? 0);
  const lead = digits.match(/^0*/)[0].length;
  digits = digits.slice(lead).replace(/0+$/, "");
  point -= lead;
  if (digits === "") return "0";
  if (Math.abs(point) > 100) return undefined;
  const plain = point <= 0 ? `0.${"0".repeat(-point)}${digits}` : point >= digits.length ? digits + "0".repeat(point - digits.length) : `${digits.slice(0, point)}.${digits.slice(point)}`;
  return plain.length > 100 ? undefined : m[1] + plain;
}

// Value actions, as the README describes them; undefined = not sent.
function ipAction(v, mode) {
  // Zone ids (fe80::1%eth0) are not addresses a destination may keep.
  if (typeof v !== "string" || v.includes("%") || !isIP(v)) return undefined;
  const v4 = isIP(v) === 4 ? v : embeddedV4(v);
  if (v4 !== undefined) return mode === "zero" ? "0.0.0.0" : v4.replace(/\.\d+$/, ".0");
  if (mode === "zero") return "::";
  // The first 48 bits, written as RFC 5952 says (the URL parser's IPv6 form).
  const groups = groupsOf(v).slice(0, 3).map((g) => g.toString(16));
  return new URL(`http://[${groups.join(":")}::]/`).hostname.slice(1, -1);
}
/** The eight 16-bit groups of an IPv6 address (the URL parser writes any IPv4 tail as hex). */
function groupsOf(v6) {
  const full = new URL(`http://[${v6}]/`).hostname.slice(1, -1);
  return expand(full).map((g) => parseInt(g, 16));
}
/** The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), dotted, or undefined. */
function embeddedV4(v6) {
  const g = groupsOf(v6);
  const dotted = (hi, lo) => [hi >> 8, hi & 255, lo >> 8, lo & 255].join(".");
  const zeros = (from, to) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && g[5] === 0xffff) return dotted(g[6], g[7]);
  if (g[0] === 0x2002) return dotted(g[1], g[2]);
  if (g[0] === 0x2001 && g[1] === 0) return dotted(g[6] ^ 0xffff, g[7] ^ 0xffff);
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return dotted(g[6], g[7]);
  return undefined;
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
// A year 90 or more years before the event's year becomes this category.
const YEARS_AGGREGATED = "90+ years";
function yearAction(v, eventYear) {
  if (typeof v !== "string") return undefined;
  const valid = /^\d{4}-\d{2}-\d{2}$/.test(v) ? rfc3339(`${v}T00:00:00Z`) : rfc3339(v);
  if (!valid) return undefined;
  return eventYear - Number(v.slice(0, 4)) >= 90 ? YEARS_AGGREGATED : v.slice(0, 4);
}
/** The year of the event's timestamp, else receivedAt (as written), else the UTC year now. */
function eventYearOf(ev) {
  for (const k of ["timestamp", "receivedAt"]) {
    if (typeof ev[k] === "string" && rfc3339(ev[k])) return Number(ev[k].slice(0, 4));
  }
  return new Date().getUTCFullYear();
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

// The url action, as DESIGN's "Actions beyond allow and mask" states it,
// on JavaScript's own WHATWG parser (`new URL`): an absolute http(s) URL, a
// path or a query, else nothing. Kept: scheme, a DNS-name host none of
// whose labels looks like an identifier, and port. The path fits a
// template, or each segment is a vocabulary word, ":id" (identifier-like)
// or ":seg" (or itself under "segments": "*"). Only listed query
// parameters, neither name nor value identifier-like.
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
// A numeric date: YYYY-M-D, or D-M-YYYY / M-D-YYYY, or a two-digit year
// with "-" or "/" (not ".", which versions use); one separator throughout.
const NUMERIC_DATE = /(?<!\p{N})(?:\p{N}{4}([-/.])\p{N}{1,2}\1\p{N}{1,2}|\p{N}{1,2}([-/.])\p{N}{1,2}\2\p{N}{4}|\p{N}{1,2}([-/])\p{N}{1,2}\3\p{N}{2})(?!\p{N})/u;
function identifierLike(s) {
  return /[@\uff20\ufe6b]/u.test(s)
    || (s.match(/\p{N}/gu) ?? []).length >= 5
    || /[0-9A-Fa-f]{16}/.test(s)
    || /[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}/.test(s)
    || NUMERIC_DATE.test(s)
    || detected(s);
}
function urlOrigin(u) {
  if (u.protocol !== "http:" && u.protocol !== "https:") return undefined;
  const host = u.hostname;
  // IP literals ("[…]" or dotted numbers) are never a site's name.
  if (host.startsWith("[") || /^[0-9.]+$/.test(host)) return undefined;
  const labels = host.split(".");
  if (host.length > 253 || !labels.every((l) => /^[a-z0-9-]{1,63}$/.test(l))) return undefined;
  if (labels.some(identifierLike) || detected(host)) return undefined;
  return `${u.protocol}//${host}${u.port === "" ? "" : `:${u.port}`}`;
}
function urlPath(pathname, rule) {
  const segments = pathname.split("/");
  const template = (rule.paths ?? []).map((t) => t.split("/")).find((t) =>
    t.length === segments.length && t.every((x, i) => (x.startsWith(":") ? segments[i] !== "" : decodeRepeated(segments[i]) === x)));
  if (template) return template.join("/");
  const vocabulary = Array.isArray(rule.segments) ? rule.segments : [];
  return segments.map((s) => {
    if (s === "") return s;
    const plain = decodeRepeated(s);
    if (plain === undefined) return ":id";
    if (vocabulary.includes(plain)) return plain;
    if (identifierLike(plain)) return ":id";
    return rule.segments === "*" ? s : ":seg";
  }).join("/");
}
function urlAction(v, rule) {
  if (typeof v !== "string") return undefined;
  // WHATWG's own clean-up, done first so the input's kind is judged on it.
  const input = v.replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, "").replace(/[\t\n\r]/g, "");
  if (/^[/\\]{2}/.test(input)) return undefined; // protocol-relative: another host
  const relative = /^[/\\?]/.test(input);
  let u;
  try {
    u = relative ? new URL(input, "https://phimask.invalid/") : new URL(input);
  } catch {
    return undefined;
  }
  let origin = "";
  if (relative) {
    if (u.host !== "phimask.invalid" || u.username !== "" || u.password !== "") return undefined;
  } else {
    origin = urlOrigin(u);
    if (origin === undefined) return undefined;
  }
  const path = input.startsWith("?") ? "" : urlPath(u.pathname, rule);
  const keeps = (name) => (rule.query ?? []).some((k) => (k.endsWith("*") ? name.startsWith(k.slice(0, -1)) : k === name));
  const kept = u.search === "" ? [] : u.search.slice(1).split("&").filter((pair) => {
    const i = pair.indexOf("=");
    const [name, value] = i < 0 ? [pair, ""] : [pair.slice(0, i), pair.slice(i + 1)];
    const n = decodeRepeated(name.replaceAll("+", " "));
    const val = decodeRepeated(value.replaceAll("+", " "));
    const clean = (x) => x !== undefined && !identifierLike(x);
    return clean(n) && clean(val) && keeps(n);
  });
  return origin + path + (kept.length > 0 ? `?${kept.join("&")}` : "");
}

/** A rule's action as { action, ...options }. */
const actionOf = (a) => (typeof a === "string" ? { action: a } : a);

const asciiLower = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
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
  // Boolean integrations members pass under All or any destination's integration name.
  const switchNames = new Set(Object.entries(policy.destinations).map(([n, d]) => asciiLower(d.integration ?? n)));
  const switchKey = (k) => asciiLower(k) === "all" || switchNames.has(asciiLower(k));
  let eventYear;
  const ids = { userId: "mask", anonymousId: "mask", groupId: "mask", previousId: "mask", ...policy.identifiers };
  const scopeKey = own.mask_scope === undefined ? key : createHmac("sha256", key).update(`phimask-scope:${own.mask_scope}`).digest();
  const mask = (s) => createHmac("sha256", scopeKey).update(s).digest("hex");
  const defaultScan = policy.scan === undefined || policy.scan === false ? undefined : policy.scan;
  const scanOf = (rule) => {
    const set = rule.scan === undefined ? defaultScan : rule.scan === false ? undefined : rule.scan;
    if (set === undefined) return undefined;
    return { names: set === true ? DEFAULT_DETECTORS : new Set(set), onMatch: rule.on_match ?? "redact" };
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
  // A number: scanned as its plain decimal text; a match drops it, or
  // (mask) sends a string with each match masked.
  const scannedNumber = (v, scan) => {
    const text = plainDecimal(v);
    if (text === undefined) return scan.onMatch === "mask" ? mask(String(v)) : undefined;
    const out = scanned(text, scan);
    return out === text ? v : scan.onMatch === "mask" ? out : undefined;
  };
  const scanAll = (v, scan) => {
    if (typeof v === "string") return scanned(v, scan);
    if (typeof v === "number") return scannedNumber(v, scan);
    if (Array.isArray(v)) return v.map((x) => scanAll(x, scan) ?? null);
    if (v !== null && typeof v === "object") {
      // A key redacted like one before it is not written twice: the
      // first member with that key has it, whether or not its value is sent.
      const out = {};
      const taken = new Set();
      for (const [k, x] of Object.entries(v)) {
        const name = scanned(k, scan);
        if (name === undefined || taken.has(name)) continue;
        taken.add(name);
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
    if (SHAPES[r.action]) return typeof v === "string" && SHAPES[r.action](v) ? v : undefined;
    switch (r.action) {
      case "allow": {
        const scan = scanOf(r);
        return scan ? scanAll(v, scan) : v;
      }
      case "mask": return maskWith(v, r.normalize);
      case "url": return urlAction(v, r);
      case "ip": return ipAction(v, r.mode);
      case "zip3": return scalar(v) ? zip3Action(v) : undefined;
      case "year": return yearAction(v, eventYear);
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
  // Consent: every purpose the destination lists must be granted. Denied
  // when GPC lists it, or any of its ids is present and not granted;
  // granted when one is true / allowed; else the region's (or policy's) mode.
  const purposes = own.consent ?? [];
  const consented = (ev, signals) => {
    if (purposes.length === 0) return true;
    const c = policy.consent;
    const region = typeof signals.region === "string" ? signals.region.toUpperCase() : undefined;
    const regions = c.regions ?? {};
    const modeOf = (code) => (code !== undefined && Object.hasOwn(regions, code) ? regions[code].mode : undefined);
    const mode = modeOf(region) ?? modeOf(region?.split("-")[0]) ?? c.mode ?? "opt-in";
    const ctx = isObject(ev.context) ? ev.context : {};
    const prefs = isObject(ctx.consent) && isObject(ctx.consent.categoryPreferences) ? ctx.consent.categoryPreferences : {};
    // A list of the wrong type makes the whole object absent.
    const listsOk = (o) => ["allowedConsentIds", "deniedConsentIds"].every((k) => !Object.hasOwn(o, k) || Array.isArray(o[k]));
    const cm = isObject(ctx.consentManagement) && listsOk(ctx.consentManagement) ? ctx.consentManagement : {};
    const strings = (v) => (Array.isArray(v) ? v.filter((x) => typeof x === "string") : []);
    const [allowed, denied] = [strings(cm.allowedConsentIds), strings(cm.deniedConsentIds)];
    return purposes.every((p) => {
      if (signals.gpc === true && (c.gpc ?? []).includes(p)) return false;
      const ids = c.categories[p];
      if (ids.some((id) => (Object.hasOwn(prefs, id) && prefs[id] !== true) || denied.includes(id))) return false;
      if (ids.some((id) => (Object.hasOwn(prefs, id) && prefs[id] === true) || allowed.includes(id))) return true;
      return mode === "opt-out";
    });
  };
  // Returns the JSON text to send, null when nothing is sent, or throws
  // an Error with the engine's code for a refused event.
  return (text, signals = {}) => {
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
    if (!consented(ev, signals)) return null;
    eventYear = eventYearOf(ev);
    const out = {};
    for (const [k, v] of Object.entries(ev)) {
      let r;
      if (k === "type") r = v;
      else if (k === "messageId") r = ["string", "number", "boolean"].includes(typeof v) ? mask(String(v)) : undefined;
      else if (TIMESTAMPS.has(k)) r = typeof v === "string" && rfc3339(v) ? v : undefined;
      else if (k === "channel") r = CHANNELS.has(v) ? v : undefined;
      else if (k === "version") r = Number.isInteger(v) && v >= 0 && v <= 99 && !Object.is(v, -0) ? v : undefined;
      else if (named.includes(k)) r = typeof v === "string" ? (nameRule(v) === "allow" ? v : nameRule(v).rename) : undefined;
      else if (k === "integrations" && isObject(v)) {
        r = {};
        for (const [name, x] of Object.entries(v)) {
          const kept = typeof x === "boolean" ? (switchKey(name) ? x : undefined) : walk(x, tries.integrations.keys.get(name));
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
