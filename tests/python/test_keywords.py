"""The keywords of sanitize, sanitize_ndjson and sanitize_arrow, as a
backfill uses them to decide an archive as its live requests were decided:
`gpc`, `region`, `user_agent` and `bot_score` give what `phimask sanitize`
gives with --gpc, --region, --user-agent and --bot-score, and what the wasm
engine gives with the same signals; `native` gives what --native gives.
Each changes what is sent where the policy says it does, and a value the
command refuses is a ValueError, never a guess."""

import json
import subprocess

import pyarrow as pa
import pytest

import phimask
from conftest import KEY, ROOT, run_sanitize
from test_same_bytes import as_strings, values, wasm, wheel

DEVELOPMENT = ROOT / "policies" / "development.json"
EXAMPLES = sorted((ROOT / "examples" / "events").glob("*.json"))
PLANTED = (b"Jane Doe", b"HIV positive", b"jane.doe@example.com")

BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"

# The request each archive line is decided as, by keyword (the others the
# next test checks change nothing: a browser, a human's score, US-WA).
SIGNALS = {
    "none": {},
    "gpc": {"gpc": True},
    "region US-CA": {"region": "US-CA"},
    "region us-ca": {"region": "us-ca"},
    "bot user agent": {"user_agent": "curl/8.4.0"},
    "bot score 5": {"bot_score": 5},
    "all at once": {"gpc": True, "region": "US-CA", "user_agent": BROWSER, "bot_score": 90},
}


def policy(bots: str) -> dict:
    """The development policy (consent with GPC and regions, every native
    format) with `bots` set."""
    doc = json.loads(DEVELOPMENT.read_text())
    doc["bots"] = bots
    return doc


def options(native=False, gpc=False, region=None, user_agent=None, bot_score=None) -> list:
    """The command's options for the keywords."""
    out = ["--native"] if native else []
    out += ["--gpc"] if gpc else []
    out += [f"--region={region}"] if region is not None else []
    out += [f"--user-agent={user_agent}"] if user_agent is not None else []
    out += [f"--bot-score={bot_score}"] if bot_score is not None else []
    return out


def js_signals(gpc=False, region=None, user_agent=None, bot_score=None) -> dict:
    """The keywords as the wasm engine's Signals."""
    out = {"gpc": True} if gpc else {}
    out.update({} if region is None else {"region": region})
    out.update({} if user_agent is None else {"userAgent": user_agent})
    out.update({} if bot_score is None else {"botScore": bot_score})
    return out


def run_command(policy_file, destination: str, data: bytes, *extra: str) -> subprocess.CompletedProcess:
    return run_sanitize(policy_file, destination, data, *extra)


def command(policy_file, destination: str, data: bytes, **keywords) -> bytes:
    done = run_command(policy_file, destination, data, *options(**keywords))
    assert done.returncode in (0, 1), done.stderr.decode("utf-8", "replace")
    return done.stdout


def archive() -> bytes:
    """Lines of every kind the keywords decide: advertising consent given,
    not given and refused; an event whose own context.userAgent is a
    bot's; the examples; and hostile lines (PHI in broken JSON, a raw NUL,
    CRLF, a lone CR between tokens, blank, not UTF-8, over 32 KiB)."""
    context = {"ip": "203.0.113.9", "page": {"title": "Results for Jane Doe: HIV positive"}}
    order = {
        "type": "track",
        "event": "Order Completed",
        "userId": "patient-004217",
        "anonymousId": "anon-1",
        "properties": {"value": 42, "currency": "USD", "email": "jane.doe@example.com", "comment": "Jane Doe, HIV positive"},
    }
    events = [
        {**order, "context": {**context, "consent": {"categoryPreferences": {"C0002": True, "C0004": True}}}},
        {**order, "context": context},
        {**order, "context": {**context, "consent": {"categoryPreferences": {"C0002": True, "C0004": False}}}},
        {**order, "context": {**context, "userAgent": "Googlebot/2.1", "consent": {"categoryPreferences": {"C0004": True}}}},
        {"type": "page", "name": "Services", "userId": "patient-7", "properties": {"title": "Jane Doe: HIV positive"}},
        {"type": "identify", "userId": "patient-7", "traits": {"email": "jane.doe@example.com", "note": "HIV positive"}},
    ]
    events += [json.loads(p.read_text()) for p in EXAMPLES]
    lines = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    lines[1] += b"\r"  # a CRLF line end
    lines += [
        b'{"type":"track","event":"Order Completed","userId":"patient-1","properties":{"notes":"Jane Doe HIV positive"',
        b'{"type":"track","event":"Order Completed","userId":"u\x00","properties":{"notes":"Jane Doe"}}',
        b'{"type":"track",\r"event":"Order Completed","userId":"u2","context":{"consent":{"categoryPreferences":{"C0004":true}}}}',
        b"  \t",
        b'{"type":"track","event":"Order Completed","userId":"Jane Doe \xff HIV positive"}',
        b'{"type":"track","event":"Order Completed","properties":{"notes":"' + b"Jane Doe HIV positive " * 2000 + b'"}}',
    ]
    return b"\n".join(lines) + b"\n"


@pytest.fixture(scope="module")
def policy_files(tmp_path_factory):
    where = tmp_path_factory.mktemp("policies")
    out = {}
    for bots in ("drop", "flag"):
        path = where / f"bots-{bots}.json"
        path.write_text(json.dumps(policy(bots)))
        out[bots] = path
    return out


@pytest.mark.parametrize("bots", ["drop", "flag"])
@pytest.mark.parametrize("name", list(SIGNALS))
def test_signals_give_the_commands_and_the_wasm_engines_bytes(policy_files, bots, name):
    keywords = SIGNALS[name]
    s = phimask.Sanitizer(policy(bots), KEY)
    data = archive()
    rows = data.split(b"\n")[:-1]
    texts = [r.decode("utf-8") for r in rows if b"\xff" not in r]
    for destination in s.destinations():
        expected = command(policy_files[bots], destination, data, **keywords)
        assert s.sanitize_ndjson(data, destination, **keywords) == expected, destination
        lines = expected.split(b"\n")[:-1]
        column = s.sanitize_arrow(as_strings(rows, pa.string()), destination, **keywords)
        assert [v for v in values(column) if v is not None] == lines, destination
        if destination in ("ads", "warehouse"):
            # The wasm engine once per destination and request: restricted
            # with consent, and unrestricted (where a flagged bot shows).
            theirs = wasm(policy_files[bots], destination, texts, KEY, js_signals(**keywords))
            ours = [wheel(s, t, destination, **keywords) for t in texts]
            assert ours == theirs, destination
        if destination != "warehouse":
            assert not [p for p in PLANTED if p in expected], destination


def sent(s, destination, **keywords) -> list:
    return s.sanitize_ndjson(archive(), destination, **keywords).split(b"\n")[:-1]


def test_the_signals_change_what_is_sent_as_the_policy_says():
    """Without these, every comparison above could be of keywords the
    engine never read."""
    drop = phimask.Sanitizer(policy("drop"), KEY)
    flag = phimask.Sanitizer(policy("flag"), KEY)
    # ads needs advertising consent (opt-in); GPC denies it; US-CA is
    # opt-out (consent unless refused), US-WA opt-in.
    given = sent(drop, "ads")
    assert given
    assert sent(drop, "ads", gpc=True) == []
    assert len(sent(drop, "ads", region="US-CA")) > len(given)
    assert sent(drop, "ads", region="us-ca") == sent(drop, "ads", region="US-CA")
    assert sent(drop, "ads", region="US-WA") == given
    # A bot's request under "drop": nothing to any destination; a browser
    # or a human's score changes nothing.
    for destination in drop.destinations():
        everything = sent(drop, destination)
        assert everything, destination
        assert sent(drop, destination, user_agent="curl/8.4.0") == [], destination
        assert sent(drop, destination, bot_score=5) == [], destination
        assert sent(drop, destination, bot_score=29) == [], destination
        assert sent(drop, destination, bot_score=30) == everything, destination
        assert sent(drop, destination, user_agent=BROWSER) == everything, destination
    # Under "flag" the unrestricted destination is told.
    flagged = sent(flag, "warehouse", user_agent="curl/8.4.0")
    assert flagged and all(b'"bot":true' in line for line in flagged)
    assert sent(flag, "warehouse") != flagged
    # One event at a time, likewise: GPC withholds it from ads alone (the
    # warehouse asks no consent), a bot's request from every destination.
    event = json.loads(archive().split(b"\n")[0])
    assert drop.sanitize(event, "ads") is not None
    assert drop.sanitize(event, "ads", gpc=True) is None
    assert drop.sanitize(event, "warehouse", gpc=True) == drop.sanitize(event, "warehouse")
    for destination in drop.destinations():
        assert drop.sanitize(event, destination, user_agent="curl/8.4.0") is None, destination
        assert drop.sanitize(event, destination, bot_score=5) is None, destination
    assert '"bot":true' in flag.sanitize(event, "warehouse", bot_score=5)


@pytest.mark.parametrize("column_type", [pa.string(), pa.large_string()], ids=str)
def test_native_gives_what_the_command_writes_with_native(policy_files, column_type):
    s = phimask.Sanitizer(policy("drop"), KEY)
    data = archive()
    rows = data.split(b"\n")[:-1]
    formats = {name: d.get("format") for name, d in policy("drop")["destinations"].items()}
    checked = 0
    for destination in s.destinations():
        expected = command(policy_files["drop"], destination, data, native=True, region="US-CA")
        got = s.sanitize_ndjson(data, destination, native=True, region="US-CA")
        assert got == expected, destination
        column = s.sanitize_arrow(as_strings(rows, column_type), destination, native=True, region="US-CA")
        assert [v for v in values(column) if v is not None] == expected.split(b"\n")[:-1], destination
        segment = s.sanitize_ndjson(data, destination, region="US-CA")
        if formats[destination]:
            # The destination's own API object: not a Segment event.
            assert got and got != segment, destination
            assert not any(json.loads(line).get("type") in ("track", "page", "identify") for line in got.splitlines())
            checked += 1
        else:
            assert got == segment, destination
    assert checked == 4  # amplitude, mixpanel, ga4, posthog


BAD = [
    ({"region": "Washington"}, "region"),
    ({"region": "US-"}, "region"),
    ({"region": ""}, "region"),
    ({"bot_score": 0}, "bot_score"),
    ({"bot_score": 100}, "bot_score"),
    ({"bot_score": -5}, "bot_score"),
    ({"bot_score": 2**70}, "bot_score"),
]


@pytest.mark.parametrize("keywords,word", BAD, ids=[repr(k) for k, _ in BAD])
def test_a_signal_the_command_refuses_is_a_value_error_and_nothing_is_sanitized(policy_files, keywords, word):
    line = archive().split(b"\n")[0]
    done = run_command(policy_files["drop"], "warehouse", line + b"\n", *options(**keywords))
    assert done.returncode == 2 and done.stdout == b""
    s = phimask.Sanitizer(policy("drop"), KEY)
    calls = (
        (s.sanitize, line),
        (s.sanitize_ndjson, line + b"\n"),
        (s.sanitize_arrow, pa.array([line.decode()])),
    )
    for call, data in calls:
        with pytest.raises((ValueError, OverflowError)) as info:
            call(data, "warehouse", **keywords)
        assert not isinstance(info.value, phimask.EventError)
        assert word.replace("_", " ") in str(info.value).replace("_", " ") or isinstance(info.value, OverflowError)
        assert not [p for p in PLANTED if p.decode() in str(info.value)]
    assert s.take_report() == {}
