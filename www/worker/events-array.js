// The events of a destination's body, as written: Amplitude's rest (the
// events it did not refuse) and GA4's split at its backdating window are
// made by cutting the body's "events" array, never by JSON.parse and
// JSON.stringify, which would rewrite numbers (1e20 as 21 digits,
// 12345678901234567890 rounded, 1e400 as null) and could grow a body
// past a queue message.

/** The index just past the string that starts at `at` (a '"'). */
function stringEnd(text, at) {
  for (let i = at + 1; i < text.length; i++) {
    if (text[i] === "\\") i += 1;
    else if (text[i] === '"') return i + 1;
  }
  return text.length;
}

/**
 * The top-level "events" array of a JSON object's text, as
 * { before, items, after }: `items` the text of each element, so that
 * `before + items.join(",") + after` is the body again. null when the
 * text has no such array.
 */
export function eventsArray(text) {
  let depth = 0;
  let key = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const end = stringEnd(text, i);
      if (depth === 1) key = text.slice(i, end);
      i = end - 1;
    } else if (c === "[" && depth === 1 && key === '"events"') {
      return elements(text, i);
    } else if (c === "{" || c === "[") {
      depth += 1;
    } else if (c === "}" || c === "]") {
      depth -= 1;
    } else if (c === "," && depth === 1) {
      key = null;
    }
  }
  return null;
}

function elements(text, open) {
  const items = [];
  let depth = 0;
  let from = open + 1;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      i = stringEnd(text, i) - 1;
    } else if (c === "[" || c === "{") {
      depth += 1;
    } else if (c === "]" || c === "}") {
      depth -= 1;
      if (depth === 0) {
        const last = text.slice(from, i).trim();
        if (last !== "") items.push(last);
        return { before: text.slice(0, open + 1), items, after: text.slice(i) };
      }
    } else if (c === "," && depth === 1) {
      items.push(text.slice(from, i).trim());
      from = i + 1;
    }
  }
  return null;
}

/** The body with only the events `keep(i)` says, or null when it has no "events" array. */
export function keepEvents(text, keep) {
  const parts = eventsArray(text);
  if (parts === null) return null;
  return parts.before + parts.items.filter((_, i) => keep(i)).join(",") + parts.after;
}
