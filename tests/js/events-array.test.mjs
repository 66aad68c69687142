// Amplitude's rest and GA4's window split cut the body's "events" array as
// written (www/worker/events-array.js): numbers keep their text, the rest
// is never larger than the body, and any JSON body cuts to what
// JSON.parse would keep.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventsArray, keepEvents } from "../../www/worker/events-array.js";

test("numbers keep their text: 1e20, 1e400 and 20 digits are not rewritten", () => {
  const body = '{"events":[{"n":1e20,"big":12345678901234567890,"inf":1e400},{"user_id":"abc"},{"a":[1e20,2E-7,-0.0]}]}';
  const rest = keepEvents(body, (i) => i !== 1);
  assert.equal(rest, '{"events":[{"n":1e20,"big":12345678901234567890,"inf":1e400},{"a":[1e20,2E-7,-0.0]}]}');
  assert.ok(rest.length < body.length);
  // JSON.stringify would have grown it and changed values.
  assert.notEqual(JSON.stringify({ events: JSON.parse(body).events.filter((_, i) => i !== 1) }), rest);
});

test("hostile bodies: strings with brackets, quotes, escapes and the word events; members before and after", () => {
  const body = '{"x":"\\"events\\":[1,2]","y":["events",{"events":[9]}],"events":[ {"s":"a,b]}\\\\"} , {"t":"[{\\"}"} ,7,"events",[1,[2]] ],"z":{"events":[3]}}';
  const parts = eventsArray(body);
  assert.deepEqual(parts.items.map((t) => JSON.parse(t)), JSON.parse(body).events);
  assert.deepEqual(JSON.parse(keepEvents(body, (i) => i % 2 === 0)), { ...JSON.parse(body), events: JSON.parse(body).events.filter((_, i) => i % 2 === 0) });
  assert.equal(keepEvents(body, () => true).replace(/\s/g, ""), body.replace(/\s/g, ""));
  assert.equal(eventsArray('{"batch":[1,2]}'), null);
  assert.equal(eventsArray('{"a":{"events":[1]}}'), null, "a nested events array is not the body's");
  assert.deepEqual(eventsArray('{"events":[]}').items, []);
  assert.equal(keepEvents('{"events":[1,2]}', () => false), '{"events":[]}');
});

test("random bodies: the cut parses to the kept events of JSON.parse", () => {
  let seed = 7;
  const rand = (n) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const value = (depth) => {
    const k = rand(depth > 2 ? 4 : 7);
    if (k === 0) return rand(1000) - 500;
    if (k === 1) return ["a", "]", "}", ",", '"', "\\", "events", "[{"][rand(8)].repeat(rand(3));
    if (k === 2) return rand(2) === 0;
    if (k === 3) return null;
    if (k === 4) return Array.from({ length: rand(4) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: rand(4) }, (_, i) => [["events", "e", "]", '"'][rand(4)] + i, value(depth + 1)]));
  };
  for (let round = 0; round < 500; round++) {
    const events = Array.from({ length: rand(6) }, () => value(0));
    const body = JSON.stringify({ api: value(1), events, after: value(1) }, null, rand(2) ? 0 : 1);
    const keep = (i) => (i + round) % 3 !== 0;
    assert.deepEqual(JSON.parse(keepEvents(body, keep)), { ...JSON.parse(body), events: events.filter((_, i) => keep(i)) }, body);
  }
});
