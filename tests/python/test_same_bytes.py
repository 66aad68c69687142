"""Same bytes everywhere: the wheel gives exactly what `phimask sanitize`
and the wasm engine (the Worker's) give, so backfilled masks join live ones.

Compared byte for byte on every shared vector (tests/vectors/) and on a
generated corpus of thousands of events (corpus.py) for several policies
and every server-side destination: the wheel's sanitize_ndjson with the
command's stdout, its sanitize_arrow (string, chunked, large_string,
string_view, with nulls) with those lines row for row, and its sanitize()
with the wasm engine's sanitizeJson event for event. Vectors' expected
outputs are checked with masks computed here by Python's hmac module.
"""

import hashlib
import hmac
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

import corpus
import phimask
from conftest import KEY, ROOT, run_sanitize

VECTORS = ROOT / "tests" / "vectors"
WASM_ENGINE = Path(__file__).with_name("wasm_engine.mjs")

# The corpus's policies: the shipped ones, and vector policies that use
# every action, the detectors, duplicate keys and the structural checks.
CORPUS_POLICIES = {
    "production": ROOT / "policies" / "production.json",
    "development": ROOT / "policies" / "development.json",
    "actions": VECTORS / "actions.json",
    "detectors-unicode": VECTORS / "detectors-unicode.json",
    "keys-and-duplicates": VECTORS / "keys-and-duplicates.json",
    "structural-fail-closed": VECTORS / "structural-fail-closed.json",
}

# The known-answer vectors' policy, as tests/js/vectors.test.mjs has it.
KNOWN_ANSWERS_POLICY = {
    "version": 1, "environment": "test", "hipaa": True,
    "identifiers": {"userId": "drop", "anonymousId": "drop"},
    "allowlists": {"event_properties": {"v": "mask"}},
    "destinations": {"d": {"connection": "server-side", "endpoint": "https://d.example/"}},
}

# Fragments of the corpus's planted PHI: no refusal may quote them.
PHI_FRAGMENTS = ["Jane", "HIV", "García", "田中", "schizophrenia", "Dupont", "lithium", "Jos"]


# --- the three engines -------------------------------------------------


def cli(policy: Path, destination: str, data: bytes, key: str) -> bytes:
    """`phimask sanitize --policy POLICY -d DESTINATION`'s stdout for data;
    its stderr (refused lines) must quote no PHI."""
    done = run_sanitize(policy, destination, data, key=key)
    stderr = done.stderr.decode("utf-8", "replace")
    # 0: every line sanitized; 1: some refused (left out, as the wheel does).
    assert done.returncode in (0, 1), stderr
    assert not [f for f in PHI_FRAGMENTS if f in stderr], "the command's refusals quote an event"
    return done.stdout


def wasm(policy: Path, destination: str, texts: list, key: str, signals=None) -> list:
    """The wasm engine's sanitizeJson of each text, from one Node process:
    ("sent", text), ("not sent",) or ("error", code, message). `signals`:
    the request's (gpc, region, userAgent, botScore), as the Worker reads
    them."""
    node = shutil.which("node")
    assert node, "node is needed to run the wasm engine"
    data = "".join(json.dumps(t) + "\n" for t in texts).encode("ascii")
    extra = [] if signals is None else [json.dumps(signals)]
    done = subprocess.run(
        [node, str(WASM_ENGINE), str(policy), destination, *extra],
        input=data, capture_output=True, env={**os.environ, "PHI_MASKING_KEY": key}, check=False,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    # Split at LF only: U+2028 is left raw in JSON.stringify's output.
    results = [json.loads(line) for line in done.stdout.decode("utf-8").split("\n")[:-1]]
    assert len(results) == len(texts)
    return [outcome_of(r) for r in results]


def outcome_of(result):
    if result is None:
        return ("not sent",)
    if isinstance(result, str):
        return ("sent", result)
    return ("error", result["error"], result["message"])


def wheel(sanitizer, event, destination, **signals):
    """The wheel's sanitize() as the same kind of outcome."""
    try:
        out = sanitizer.sanitize(event, destination, **signals)
    except phimask.EventError as e:
        assert str(e) == e.message
        return ("error", e.code, e.message)
    return ("not sent",) if out is None else ("sent", out)


# --- masks computed here, not by the engine ------------------------------


def hmac_hex(key: bytes, clear: str) -> str:
    return hmac.new(key, clear.encode("utf-8"), hashlib.sha256).hexdigest()


def resolve_masks(expected, key: str):
    """A vector's expected event with {"$mask": clear} (and {"$mask":
    clear, "scope": NAME}, under the scope's key HMAC(key,
    "phimask-scope:" + NAME)) and keys "$mask:clear" replaced by HMACs."""
    k = key.encode("utf-8")
    if isinstance(expected, list):
        return [resolve_masks(v, key) for v in expected]
    if isinstance(expected, dict):
        keys = list(expected)
        if keys == ["$mask"]:
            return hmac_hex(k, expected["$mask"])
        if sorted(keys) == ["$mask", "scope"]:
            scoped = hmac.new(k, ("phimask-scope:" + expected["scope"]).encode("utf-8"), hashlib.sha256).digest()
            return hmac_hex(scoped, expected["$mask"])
        return {
            (hmac_hex(k, name[6:]) if name.startswith("$mask:") else name): resolve_masks(v, key)
            for name, v in expected.items()
        }
    return expected


def canonical(value):
    """A parsed JSON value with key order and types kept (True is not 1;
    1000 and 1000.0 are one number, as in JSON)."""
    if isinstance(value, dict):
        return ("object", [(k, canonical(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("array", [canonical(v) for v in value])
    if value is None or isinstance(value, bool):
        return ("literal", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    return ("string", value)


# --- shared vectors ------------------------------------------------------


def vector_docs():
    docs = []
    for path in sorted(VECTORS.glob("*.json")):
        doc = json.loads(path.read_text("utf-8"))
        if doc.get("kind") == "sanitize":
            docs.append(pytest.param(doc, id=path.stem))
        elif doc.get("kind") == "known-answers":
            cases = [
                {
                    "name": c["json"],
                    "destination": "d",
                    "event_json": '{"type":"track","event":"E","anonymousId":"a","properties":{"v":%s}}' % c["json"],
                    "expected": {"type": "track", "event": "E", "properties": {"v": c["masked"]}},
                    "clear": json.loads(c["json"]),
                }
                for c in doc["cases"]
            ]
            docs.append(pytest.param({**doc, "policy": KNOWN_ANSWERS_POLICY, "cases": cases}, id=path.stem))
    return docs


def event_text(case) -> str:
    # A vector's event object as compact JSON text; the wheel writes a
    # dict the same way, so its dict and text forms are compared too.
    if isinstance(case.get("event_json"), str):
        return case["event_json"]
    return json.dumps(case["event"], ensure_ascii=False, separators=(",", ":"))


def test_vectors_are_all_here():
    ids = [p.id for p in vector_docs()]
    assert len(ids) >= 14 and "known-answers" in ids, ids


@pytest.mark.parametrize("doc", vector_docs())
def test_vectors_give_the_same_bytes_in_the_wheel_the_command_and_wasm(doc, tmp_path):
    key = doc["key"]
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(doc["policy"]), "utf-8")
    sanitizer = phimask.Sanitizer(doc["policy"], key)
    servers = sanitizer.destinations()
    texts = [event_text(c) for c in doc["cases"]]

    destinations = list(dict.fromkeys(servers + [c["destination"] for c in doc["cases"]]))
    by_wasm = {d: wasm(policy, d, texts, key) for d in destinations}

    for n, (case, text) in enumerate(zip(doc["cases"], texts)):
        name, destination = case["name"], case["destination"]
        theirs = by_wasm[destination][n]
        if destination not in servers:
            # Client-side or unknown: the wheel, like the command, refuses
            # the destination itself; the wasm engine sends nothing either.
            with pytest.raises(phimask.Error) as refused:
                sanitizer.sanitize(text, destination)
            assert refused.value.code == "unknown_destination", name
            assert theirs[0] != "sent", name
            continue
        ours = wheel(sanitizer, text, destination)
        assert ours == theirs, name
        if "event" in case:
            assert wheel(sanitizer, case["event"], destination) == ours, name
        assert wheel(sanitizer, text.encode("utf-8"), destination) == ours, name
        if "error" in case:
            assert ours == ("error", case["error"], case["message"]), name
            continue
        expected = resolve_masks(case["expected"], key)
        if expected is None:
            assert ours == ("not sent",), name
            continue
        assert ours[0] == "sent", name
        assert canonical(json.loads(ours[1])) == canonical(expected), name
        if isinstance(case.get("clear"), str):
            # A known answer: the pinned mask is the HMAC of the value.
            assert hmac_hex(key.encode("utf-8"), case["clear"]) == case["expected"]["properties"]["v"], name

    # All the file's events, one a line, through NDJSON.
    data = "".join(t + "\n" for t in texts).encode("utf-8")
    for destination in servers:
        ndjson = sanitizer.sanitize_ndjson(data, destination)
        assert ndjson == cli(policy, destination, data, key), destination
        # And each line is its event's output, in order (a CR or LF
        # between tokens written as a space).
        if not any("\n" in t for t in texts):
            sent = [o[1].replace("\r", " ").replace("\n", " ") for o in by_wasm[destination] if o[0] == "sent"]
            assert ndjson.decode("utf-8").split("\n")[:-1] == sent, destination


# --- the generated corpus ------------------------------------------------


def policy_doc(path: Path):
    doc = json.loads(path.read_text("utf-8"))
    return doc["policy"] if "cases" in doc else doc


def names(policy):
    """The property paths and event names a policy names."""
    paths, events = [], []
    sections = [policy.get("allowlists", {})]
    sections += [d.get("allowlists", {}) for d in policy["destinations"].values()]
    for section in sections:
        for group in ("event_properties", "user_properties", "group_properties"):
            paths += list(section.get(group, {}))
    for scope in [policy] + list(policy["destinations"].values()):
        events += [e for e in scope.get("events", {}) if e != "*"]
    return paths, events


@pytest.fixture(scope="module")
def policies(tmp_path_factory):
    """Each corpus policy as a file the command and Node read."""
    out = {}
    directory = tmp_path_factory.mktemp("policies")
    for name, path in CORPUS_POLICIES.items():
        doc = policy_doc(path)
        file = directory / f"{name}.json"
        file.write_text(json.dumps(doc), "utf-8")
        out[name] = (doc, file)
    return out


@pytest.fixture(scope="module")
def ndjson(policies):
    paths, events = [], []
    for doc, _ in policies.values():
        p, e = names(doc)
        paths += p
        events += e
    return b"".join(corpus.generate(count=3000, property_paths=paths, event_names=events))


def combinations():
    out = []
    for name, path in CORPUS_POLICIES.items():
        doc = policy_doc(path)
        for destination, d in doc["destinations"].items():
            if d.get("connection") == "server-side":
                out.append(pytest.param(name, destination, id=f"{name}-{destination}"))
    return out


def test_the_corpus_is_what_it_claims(ndjson, policies):
    # Every server-side destination of every corpus policy is compared.
    for name, (doc, _) in policies.items():
        mine = [c.values[1] for c in combinations() if c.values[0] == name]
        assert mine == phimask.Sanitizer(doc, KEY).destinations(), name
    assert corpus.MAX_EVENT_BYTES == phimask.MAX_EVENT_BYTES
    rows = corpus.rows(ndjson)
    assert len(rows) >= 3000
    over = [r for r in rows if len(r) > corpus.MAX_EVENT_BYTES]
    assert over and corpus.MAX_EVENT_BYTES in {len(r) for r in rows}
    assert any(r.strip() == b"" for r in rows)
    assert b"\r\n" in ndjson and b"\x00" in ndjson and b"\\u0000" in ndjson and b"\\ud8" in ndjson.lower()
    not_utf8 = 0
    for r in rows:
        try:
            r.decode("utf-8")
        except UnicodeDecodeError:
            not_utf8 += 1
    assert not_utf8 >= 10
    assert all(t in ndjson for t in (b'"identify"', b'"page"', b'"screen"', b'"group"', b'"alias"', b"1e400", b"Jane Doe"))
    # Seeded: the same corpus every run.
    assert corpus.generate(count=50) == corpus.generate(count=50)


def as_strings(rows, kind):
    """Rows as an Arrow array of `kind` without UTF-8 checks, as a lenient
    reader may hand them over (the engine must refuse what is not UTF-8)."""
    binary = {pa.string(): pa.binary(), pa.large_string(): pa.large_binary(), pa.string_view(): pa.binary_view()}
    return pa.array(rows, binary[kind]).view(kind)


def values(array):
    return [None if v is None else v.encode("utf-8") for v in array.to_pylist()]


def uneven_chunks(rows, rng):
    chunks, i = [], 0
    while i < len(rows):
        size = rng.choice([0, 1, 2, 7, 100, 513, 1500])
        chunks.append(as_strings(rows[i : i + size], pa.string()))
        i += size
    chunks.insert(rng.randrange(len(chunks)), as_strings([], pa.string()))
    return pa.chunked_array(chunks, type=pa.string())


@pytest.mark.parametrize("policy_name,destination", combinations())
def test_corpus_gives_the_same_bytes_in_the_wheel_the_command_and_wasm(policies, ndjson, policy_name, destination):
    doc, policy = policies[policy_name]
    sanitizer = phimask.Sanitizer(doc, KEY)
    assert destination in sanitizer.destinations()

    # NDJSON: the command's stdout, byte for byte.
    expected = cli(policy, destination, ndjson, KEY)
    got = sanitizer.sanitize_ndjson(ndjson, destination)
    assert got == expected
    report = sanitizer.take_report()[destination]
    lines = expected.split(b"\n")
    assert lines.pop() == b""
    # The corpus exercises this destination: lines are sent, refused and
    # blank, and none refused is quoted.
    assert report["sent"] == len(lines) > 0
    assert report["refused"] > 0 and report["blank"] > 0
    assert not [f for f in PHI_FRAGMENTS if f in repr(report["first_refused"])]

    # Each line on its own: the wheel's sanitize() and the wasm engine's
    # sanitizeJson agree on every event.
    rows = corpus.rows(ndjson)
    texts, where = [], []
    for i, row in enumerate(rows):
        try:
            texts.append(row.decode("utf-8"))
            where.append(i)
        except UnicodeDecodeError:
            # Not text: no engine takes it as an event.
            assert wheel(sanitizer, row, destination)[:2] == ("error", "invalid_json")
    theirs = wasm(policy, destination, texts, KEY)
    per_row = [None] * len(rows)
    for i, text, their in zip(where, texts, theirs):
        ours = wheel(sanitizer, text, destination)
        assert ours == their, f"line {i + 1}"
        if ours[0] == "sent":
            # A written line has each CR or LF between tokens as a space
            # (readers such as Spark's end lines at a CR too); sanitize()
            # gives the event as it was. In JSON text raw CR and LF can
            # only stand between tokens.
            per_row[i] = ours[1].replace("\r", " ").replace("\n", " ").encode("utf-8")

    # Arrow: row for row the command's lines, null where it wrote none.
    plain = sanitizer.sanitize_arrow(as_strings(rows, pa.string()), destination)
    assert plain.type == pa.string() and len(plain) == len(rows)
    out = values(plain)
    assert [v for v in out if v is not None] == lines
    for i, (v, want) in enumerate(zip(out, per_row)):
        assert v == want, f"line {i + 1}"

    rng = random.Random(policy_name + destination)
    chunked = uneven_chunks(rows, rng)
    done = sanitizer.sanitize_arrow(chunked, destination)
    assert isinstance(done, pa.ChunkedArray) and done.type == pa.string()
    assert [len(c) for c in done.chunks] == [len(c) for c in chunked.chunks]
    assert values(done) == out

    for kind in (pa.large_string(), pa.string_view()):
        done = sanitizer.sanitize_arrow(as_strings(rows, kind), destination)
        assert done.type == pa.large_string(), kind
        assert values(done) == out, kind

    # Nulls in the column stay null; every other row is as before.
    holes = sorted(rng.sample(range(len(rows)), 50))
    with_nulls = list(rows)
    for i in holes:
        with_nulls[i] = None
    done = values(sanitizer.sanitize_arrow(as_strings(with_nulls, pa.string()), destination))
    assert done == [None if i in set(holes) else v for i, v in enumerate(out)]
