// An idiomatic JavaScript sanitizer for the same policy rules (JSON.parse,
// allowlist walk, node:crypto HMAC, JSON.stringify): the baseline the
// benchmark compares the wasm engine with. Restricted destinations only.
import { createHmac } from "node:crypto";

const STRUCTURAL = new Set(["event", "name", "category", "messageId", "timestamp", "originalTimestamp", "sentAt", "receivedAt", "channel"]);
const IDS = ["userId", "anonymousId", "groupId", "previousId"];

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
  const own = policy.destinations[destination].allowlists ?? {};
  const merged = (name, dflt = {}) => ({ ...(lists[name] ?? dflt), ...(own[name] ?? {}) });
  const user = trie(merged("user_properties"));
  const context = trie(merged("context", { library: "allow", locale: "allow", timezone: "allow" }));
  context.keys.set("traits", user);
  const tries = { event: trie(merged("event_properties")), user, group: trie(merged("group_properties")), context };
  const ids = { userId: "mask", anonymousId: "mask", groupId: "mask", previousId: "mask", ...policy.identifiers };
  const mask = (s) => createHmac("sha256", key).update(s).digest("hex");
  const maskAll = (v) =>
    v === null ? null
    : Array.isArray(v) ? v.map(maskAll)
    : typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, maskAll(x)]))
    : mask(String(v));
  const apply = (v, action) => (action === "allow" ? v : action === "mask" ? maskAll(v) : undefined);
  const walk = (v, node, inherited) => {
    const action = node?.action ?? inherited;
    if (!node || (node.keys.size === 0 && !node.elements)) return apply(v, action);
    if (v && typeof v === "object" && !Array.isArray(v) && node.keys.size > 0) {
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
  return (text) => {
    const ev = JSON.parse(text);
    const out = {};
    for (const [k, v] of Object.entries(ev)) {
      let r;
      if (k === "type") r = v;
      else if (STRUCTURAL.has(k)) r = typeof v === "string" || v === null ? v : undefined;
      else if (k === "version") r = ["string", "number"].includes(typeof v) ? v : undefined;
      else if (k === "integrations") r = v === null || (typeof v === "object" && !Array.isArray(v)) ? v : undefined;
      else if (IDS.includes(k)) r = ["string", "number"].includes(typeof v) || v === null ? apply(v, ids[k]) : undefined;
      else if (k === "properties" && ["track", "page", "screen"].includes(ev.type)) r = walk(v, tries.event);
      else if (k === "traits" && ev.type === "identify") r = walk(v, tries.user);
      else if (k === "traits" && ev.type === "group") r = walk(v, tries.group);
      else if (k === "context") r = walk(v, tries.context);
      if (r !== undefined) out[k] = r;
    }
    return JSON.stringify(out);
  };
}
