"""A generated NDJSON corpus of Segment events for comparing phimask's
engines (the wheel, the command, the wasm engine) byte for byte.

Seeded, so a failure can be replayed. Realistic events of every call type,
written in every way JSON allows (white space including a lone carriage
return, escapes, number forms, duplicate keys, nesting near the limit)
with PHI that no detector recognises planted in free text, and, between
them, the lines an archive really holds: blank ones, CRLF endings, broken
JSON with PHI in it, NUL bytes, bytes that are not UTF-8, lines over the
engine's 32 KiB limit and exactly at it.
"""

import random
import uuid

# The engine's longest line (phimask.MAX_EVENT_BYTES); lines are made at,
# around and far over it.
MAX_EVENT_BYTES = 32 * 1024

# Health information no detector can recognise: only an allowlist keeps it
# out of a destination.
PHI_TEXT = [
    "Jane Doe",
    "HIV positive",
    "Jane Doe, HIV positive, started PrEP",
    "patient reports suicidal thoughts",
    "diagnosed with schizophrenia in 2019",
    "pregnant, 12 weeks; history of miscarriage",
    "Maria García — oncología, quimioterapia",
    "田中太郎 HIV陽性",
    "Ahmed Al-Sayed: hepatitis C, methadone programme",
    "Jean-Luc Dupont, dépression sévère",
    "chlamydia test result: positive",
    "bipolar disorder, lithium 600 mg",
]

# Characters that are hard on JSON writers and readers: accents, CJK, RTL,
# combining marks, astral characters (surrogate pairs when escaped), the
# line and paragraph separators, a byte-order mark, DEL.
UNICODE = ["é", "ñ", "ü", "Å", "日本", "עברית", "مرحبا", "e\u0301", "💉", "🏥", "𝔘", "\u2028", "\u2029", "\ufeff", "\u007f", "ß", "Ω"]

# Every form of JSON number, as text.
NUMBERS = [
    "0", "-0", "7", "-17", "42", "89", "90", "1000", "3.14", "-2.5", "0.1", "1.0", "100.00",
    "1e3", "1E3", "1e+3", "2.5e-7", "-0.0", "6.02E23", "5e-324", "1.7976931348623157e308",
    "1e400", "-1e400", "12345678901234567890123", "9007199254740993", "0.30000000000000004",
]

EVENT_NAMES = ["Signed Up", "Viewed Jane Doe's Chart", "HIV positive result viewed", "Clicked Button", "Searched"]
TRAITS = ["email", "name", "birthday", "address.street", "address.postalCode", "address.city", "plan", "signup_year", "mrn", "phone", "age"]
FREE_PROPERTIES = ["notes", "comment", "diagnosis", "search", "description", "message", "label"]


class Raw(str):
    """JSON text written as is (a number in one of its forms, or a token)."""


class Pairs(list):
    """An object as (key, value) pairs, in order, duplicates allowed."""


class Writer:
    """Writes values as JSON text in one of the styles a client might use."""

    def __init__(self, rng):
        self.rng = rng
        self.spaced = rng.random() < 0.3
        self.escape_unicode = rng.random() < 0.2
        self.escape_slash = rng.random() < 0.2
        self.upper_hex = rng.random() < 0.5

    def ws(self):
        if not self.spaced or self.rng.random() < 0.5:
            return ""
        # A lone CR between tokens is valid JSON, and breaks readers that
        # end lines at it.
        return self.rng.choice([" ", "  ", "\t", "\r", " \r ", "\r\t"])

    def hex4(self, code):
        text = "\\u%04x" % code
        return text.upper().replace("\\U", "\\u") if self.upper_hex else text

    def string(self, s):
        out = ['"']
        for ch in s:
            code = ord(ch)
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif ch == "/" and self.escape_slash:
                out.append("\\/")
            elif code < 0x20:
                short = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
                out.append(short if short and self.rng.random() < 0.5 else self.hex4(code))
            elif code > 0x7E and self.escape_unicode:
                if code > 0xFFFF:
                    code -= 0x10000
                    out.append(self.hex4(0xD800 + (code >> 10)) + self.hex4(0xDC00 + (code & 0x3FF)))
                else:
                    out.append(self.hex4(code))
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)

    def value(self, v):
        w = self.ws
        if isinstance(v, Raw):
            return str(v)
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return self.string(v)
        if isinstance(v, (dict, Pairs)):
            items = v.items() if isinstance(v, dict) else v
            inner = ",".join(f"{w()}{self.string(k)}{w()}:{w()}{self.value(x)}{w()}" for k, x in items)
            return "{" + inner + w() + "}"
        if isinstance(v, list):
            return "[" + ",".join(w() + self.value(x) + w() for x in v) + w() + "]"
        raise TypeError(type(v))


class Events:
    """Random Segment events, their fields named as the policies name them."""

    def __init__(self, rng, property_paths, event_names):
        self.rng = rng
        self.property_paths = sorted(set(property_paths)) or ["plan"]
        self.event_names = sorted(set(event_names)) + EVENT_NAMES

    def phi(self):
        r = self.rng
        text = r.choice(PHI_TEXT)
        if r.random() < 0.3:
            text += " " + "".join(r.choice(UNICODE) for _ in range(r.randint(1, 4)))
        if r.random() < 0.15:
            # Escaped control characters and quotes inside free text.
            text += r.choice(["\u0000", "\n", "\r\n", "\t", '"quoted"', "back\\slash", "\u001f", "a/b"])
        return text

    def number(self):
        return Raw(self.rng.choice(NUMBERS))

    def leaf(self, name):
        """A value for a field, by what its name suggests."""
        r = self.rng
        n = name.lower()
        if r.random() < 0.08:
            # Whatever type the field should have, clients send others.
            return r.choice([None, True, False, self.number(), self.phi(), [], {}, [self.phi()]])
        if "email" in n:
            return r.choice(["Jane.Doe@Example.com", " jane.doe+hiv@clinic.example ", "JOHN@EXAMPLE.ORG"])
        if "phone" in n:
            return r.choice(["+1 (617) 555-0199", "617.555.0100", "6175550123"])
        if "zip" in n or "postal" in n:
            return r.choice(["02118", "02118-1234", "90210", "00501", "123"])
        if any(k in n for k in ("dob", "birthday", "born", "visit", "date")):
            return r.choice(["1984-07-19", "07/19/1984", "19 July 1984", "1931-01-01", "2026-12-05T10:00:00Z"])
        if n in ("age", "ages", "qty", "quantity", "value", "employees", "signup_year", "step", "total"):
            return self.number()
        if n in ("ip", "ips", "ip0"):
            return r.choice(["203.0.113.42", "2001:db8::1", "::ffff:198.51.100.7", "10.0.0.1", "not-an-ip"])
        if "url" in n or n in ("v", "bare", "prefix", "heuristic", "path", "referrer"):
            return r.choice([
                "https://www.clinic.example/patients/jane-doe/appointments/2?utm_source=mail&ssn=123-45-6789",
                "https://www.clinic.example/services/hiv-testing?utm_term=free+hiv+test",
                "/patients/88120045/results/hiv",
                "https://user:pass@clinic.example/book?q=Jane%20Doe",
                "javascript:alert(1)",
                "//evil.example/%2e%2e/",
            ])
        if n in ("sku", "plan", "currency", "department", "appointment_type", "name", "country", "state"):
            return r.choice(["gold", "BP-MONITOR-2", "USD", "cardiology", "telehealth", "Acme Clinic", self.phi()])
        return r.choice([self.phi(), self.phi(), self.number(), True, None, "ok"])

    def put(self, obj, path):
        """Sets `path` (a policy path: `a.b`, `a[].b`, `a[]`, `a[][].b`)
        in obj."""
        head, _, rest = path.partition(".")
        name, levels = head.split("[]")[0], head.count("[]")

        def item(level):
            if level:
                return [item(level - 1) for _ in range(self.rng.randint(0, 3))]
            if not rest:
                return self.leaf(name)
            inner = {}
            self.put(inner, rest)
            return inner

        if levels or not rest:
            obj[name] = item(levels)
        else:
            inner = obj.get(name)
            if not isinstance(inner, dict):
                inner = obj[name] = {}
            self.put(inner, rest)

    def properties(self, paths, free=FREE_PROPERTIES):
        r = self.rng
        out = {}
        for path in r.sample(paths, min(len(paths), r.randint(0, 8))):
            self.put(out, path)
        # Fields no allowlist names, with PHI in them.
        for name in r.sample(free, r.randint(0, 3)):
            out[name] = self.phi()
        if r.random() < 0.1:
            out["nested"] = {"level1": {"level2": [{"note": self.phi()}, [self.number(), None]]}}
        return out

    def context(self):
        r = self.rng
        ctx = {"library": {"name": r.choice(["analytics.js", "analytics-node", "analytics-ios"]), "version": "2.1.0"}}
        if r.random() < 0.6:
            ctx["ip"] = self.leaf("ip")
        if r.random() < 0.5:
            ctx["locale"] = r.choice(["en-US", "es-MX", "ja-JP"])
        if r.random() < 0.4:
            ctx["page"] = {"url": self.leaf("url"), "path": self.leaf("path"), "title": self.phi()}
        if r.random() < 0.3:
            ctx["userAgent"] = r.choice(["Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)", "Googlebot/2.1 (+http://www.google.com/bot.html)", "curl/8.0"])
        if r.random() < 0.4:
            ctx["consent"] = {"categoryPreferences": {c: r.random() < 0.6 for c in r.sample(["C0002", "C0004", "Analytics", "Advertising", "DataSharing"], r.randint(1, 3))}}
        if r.random() < 0.2:
            ctx["campaign"] = {"name": "services", "term": self.phi()}
        if r.random() < 0.2:
            ctx["traits"] = {"email": self.leaf("email"), "name": "Jane Doe"}
        return ctx

    def event(self):
        r = self.rng
        kind = r.choices(["track", "identify", "page", "screen", "group", "alias"], [50, 15, 15, 6, 7, 7])[0]
        ev = {"type": kind, "messageId": str(uuid.UUID(int=r.getrandbits(128)))}
        if r.random() < 0.8:
            ev["userId"] = r.choice(["patient-004217", "jane.doe@example.com", "u-" + str(r.randint(1, 10**6)), ""])
        if r.random() < 0.5 or "userId" not in ev:
            ev["anonymousId"] = str(uuid.UUID(int=r.getrandbits(128)))
        if kind == "track":
            ev["event"] = r.choice(self.event_names)
            ev["properties"] = self.properties(self.property_paths)
        elif kind in ("page", "screen"):
            ev["name"] = r.choice(self.event_names + ["Home", "HIV Testing"])
            if r.random() < 0.5:
                ev["category"] = r.choice(["Services", "Jane Doe"])
            ev["properties"] = self.properties(self.property_paths + ["url", "path", "referrer", "title"])
        elif kind == "identify":
            ev["traits"] = self.properties(self.property_paths + TRAITS)
        elif kind == "group":
            ev["groupId"] = r.choice(["practice-12", "Jane Doe Family Practice"])
            ev["traits"] = self.properties(["name", "plan", "employees"])
        else:
            ev["previousId"] = r.choice(["jane.doe@example.com", "anon-77"])
        if r.random() < 0.8:
            ev["context"] = self.context()
        if r.random() < 0.3:
            ev["integrations"] = {"All": True, "Amplitude": {"session_id": self.number()}, "Google Analytics 4": {"clientId": "123.456"}}
        if r.random() < 0.7:
            ev["timestamp"] = "2026-12-0%dT1%d:00:00.000Z" % (r.randint(1, 5), r.randint(0, 9))
        return ev

    def deep(self, depth):
        """An event with a property nested `depth` levels deep."""
        ev = self.event()
        ev["type"] = "track"
        ev.setdefault("event", self.rng.choice(self.event_names))
        inner = {"note": self.phi()}
        for i in range(depth):
            inner = [inner] if i % 2 else {"n": inner}
        ev["properties"] = {"deep": inner, "plan": "gold"}
        return ev

    def duplicated(self):
        """An event with a key twice: at the top, or in its properties."""
        r = self.rng
        ev = self.event()
        pairs = Pairs(ev.items())
        key = r.choice(["type", "userId", "event", "properties", "context", "phi"])
        if key == "phi":
            # PHI as a key name, twice: a refusal must not quote it.
            name = self.phi()
            pairs += [(name, self.number()), (name, "Jane Doe")]
        elif key == "properties":
            props = Pairs((ev.get("properties") or {}).items())
            props += [("email", "jane.doe@example.com"), ("email", self.phi()), ("plan", "gold"), ("plan", self.phi())]
            pairs = Pairs((k, props if k == "properties" else v) for k, v in pairs)
            if "properties" not in ev:
                pairs.append(("properties", props))
        else:
            pairs.append((key, self.phi() if key != "type" else r.choice(["identify", "track"])))
        return pairs


def sized(rng, events, writer, size):
    """One event's JSON text of exactly `size` bytes (UTF-8), padded with
    PHI in a free-text property."""
    ev = events.event()
    ev["type"] = "track"
    ev.setdefault("event", "Order Completed")
    ev.setdefault("properties", {})["notes"] = "@@PAD@@"
    text = writer.value(ev).encode()
    fill = max(0, size - len(text) + len(b"@@PAD@@"))
    phi = ("Jane Doe HIV positive " * (fill // 22 + 1))[:fill]
    return text.replace(b"@@PAD@@", phi.encode(), 1)


def hostile(rng, events, writer):
    """A line that is not a good event: broken JSON, bytes that are not
    UTF-8, a NUL, a line over the limit... with PHI in it."""
    good = writer.value(events.event()).encode()
    phi = events.phi().encode()
    kind = rng.randrange(22)
    if kind == 0:
        return good[: rng.randrange(1, len(good))]  # cut short
    if kind == 1:
        return good[:-1] + b',}'  # trailing comma
    if kind == 2:
        return b"{'type':'track','event':'" + phi + b"'}"  # single quotes
    if kind == 3:
        return b'{"type":"track","event":"E","properties":{"notes":"' + phi + b'\x00"}}'  # raw NUL
    if kind == 4:
        return b'{"type":"track","event":"E","properties":{"notes":"' + phi + b'\tx"}}'  # raw tab in a string
    if kind == 5:
        return good.replace(b'"type"', b'"type\xff"', 1)  # not UTF-8
    if kind == 6:
        return b'{"type":"track","event":"E","userId":"Jos\xe9 Garc\xeda","properties":{"d":"' + phi + b'"}}'  # Latin-1
    if kind == 7:
        return b'{"type":"track","event":"E","properties":{"notes":"\xed\xa0\x80' + phi + b'"}}'  # CESU surrogate
    if kind == 8:
        return b'{"type":"track","event":"E","properties":{"notes":"\xc0\xaf' + phi + b'"}}'  # overlong
    if kind == 9:
        return good + b" " + good  # two events on one line
    if kind == 10:
        return b'"' + phi + b'"'  # a bare string
    if kind == 11:
        return b"[" + good + b"]"  # an array of events
    if kind == 12:
        return b'{"type":"track","event":"E","properties":{"age":NaN,"notes":"' + phi + b'"}}'
    if kind == 13:
        return good.replace(b'"type"', rng.choice([b'"type\\u0000"', b'"\\ud800type"', b'"typ\\u0065"']), 1)
    if kind == 14:
        return b'{"type":"track","event":"E","properties":{"notes":"\\ud800' + phi + b'"}}'  # lone surrogate escape
    if kind == 15:
        return b'{"type":"track","event":"E","properties":{"notes":"\\x41' + phi + b'"}}'  # bad escape
    if kind == 16:
        return b'{"type":"track","event":"E","properties":{"age":' + rng.choice([b"01", b"+1", b".5", b"1.", b"0x1F", b"Infinity", b"1e"]) + b"}}"
    if kind == 17:
        return good[: len(good) // 2] + b"\xe2\x82"  # cut inside a character
    if kind == 18:
        return sized(rng, events, writer, rng.choice([MAX_EVENT_BYTES + 1, MAX_EVENT_BYTES + 2, 40_000, 200_000]))
    if kind == 19:
        return b"\x00" * rng.randint(1, 3)
    if kind == 20:
        return good.replace(b"{", b"{\x0b", 1)  # vertical tab: not JSON white space
    return good + b"\x00"


def generate(seed=0x5A3EB17E, count=3000, property_paths=(), event_names=()):
    """`count` NDJSON lines, each with its line end (`\\n`, or `\\r\\n`;
    the last one none), from `seed`. `property_paths` (policy paths such
    as `products[].sku`) and `event_names` are what the policies under
    test name, so that events are kept, masked and transformed, not only
    dropped."""
    rng = random.Random(seed)
    events = Events(rng, property_paths, event_names)
    lines = []
    # Lines at the limit first, so a short corpus has them too: exactly
    # the limit (kept, or refused for other reasons), and one over it.
    for size in (MAX_EVENT_BYTES - 1, MAX_EVENT_BYTES, MAX_EVENT_BYTES + 1):
        lines.append(sized(rng, events, Writer(rng), size) + b"\n")
    # Exactly the limit before a CRLF: the CR is not part of the event.
    lines.append(sized(rng, events, Writer(rng), MAX_EVENT_BYTES) + b"\r\n")
    # Nesting around the engine's depth limit (64).
    for depth in (58, 60, 61, 62, 63, 64, 65, 66, 70, 200):
        lines.append(Writer(rng).value(events.deep(depth)).encode() + b"\n")
    while len(lines) < count:
        writer = Writer(rng)
        roll = rng.random()
        if roll < 0.04:
            text = rng.choice([b"", b" ", b"\t", b"   ", b"\r", b" \r"])  # blank
        elif roll < 0.14:
            text = hostile(rng, events, writer)
        elif roll < 0.18:
            text = writer.value(events.duplicated()).encode()
        elif roll < 0.19:
            text = writer.value(events.deep(rng.randint(50, 70))).encode()
        elif roll < 0.2:
            # An event broken over two lines by a raw line feed.
            text = writer.value(events.event()).encode()
            cut = rng.randrange(1, len(text))
            text = text[:cut] + b"\n" + text[cut:]
        else:
            text = writer.value(events.event()).encode()
            if rng.random() < 0.05:
                text = rng.choice([b" ", b"\t", b"\r", b" \r "]) + text + rng.choice([b" ", b"\t", b"\r"])
        lines.append(text + (b"\r\n" if rng.random() < 0.1 else b"\n"))
    # The last line without a line end: it is a line all the same.
    lines[-1] = lines[-1].rstrip(b"\n")
    if lines[-1].endswith(b"\r"):
        lines[-1] = lines[-1][:-1]
    return lines


def rows(data):
    """The lines of NDJSON `data` as the command reads them: split at
    `\\n`, one `\\r` before it dropped, a last line without `\\n` counted,
    nothing after a final `\\n`."""
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p[:-1] if p.endswith(b"\r") else p for p in parts]
