"""The wheel's Python API as a user calls it: what Sanitizer, sanitize and
sanitize_ndjson take and give, the errors they raise, and that nothing a
caller can reach (an exception, a repr, a pickle, the report) ever holds
an event's value or the masking key, whatever the input."""

import copy
import hashlib
import hmac
import json
import pickle
import random
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest

import phimask
from conftest import KEY, ROOT, cli_sanitize

PRODUCTION = ROOT / "policies" / "production.json"
VECTORS = ROOT / "tests" / "vectors"
EXAMPLES = sorted((ROOT / "examples" / "events").glob("*.json"))

# PHI no detector recognises, planted in hostile input: none may come back.
PLANTED = ("Jane Doe", "HIV positive", "MRN-88120045", "123-45-6789")
# A key with a marker of its own, for the tests that look for the key.
MARKED_KEY = "kEy-SeNtInEl-7f3a9c-masking-key-0123456789"
SECRETS = PLANTED + (KEY, MARKED_KEY, "kEy-SeNtInEl")

# Restricted (amplitude, mixpanel) and unrestricted (warehouse) alike.
DESTINATIONS = ("amplitude", "mixpanel", "warehouse")


def command(destination: str, data: bytes, policy=PRODUCTION, key: str = KEY) -> bytes:
    """What `phimask sanitize -p POLICY -d DESTINATION` writes for `data`."""
    return cli_sanitize(policy, destination, data, key=key)


def production() -> dict:
    return json.loads(PRODUCTION.read_text())


def sanitizer(key=KEY) -> phimask.Sanitizer:
    return phimask.Sanitizer(production(), key)


def mask(value: str, key: str = KEY) -> str:
    """The engine's mask, computed here without it: HMAC-SHA256 hex."""
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def exposed(exc: BaseException) -> str:
    """Everything of an exception a caller, a log or a crash report sees."""
    parts = [
        str(exc),
        repr(exc),
        repr(exc.args),
        repr(vars(exc)),
        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    ]
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None:
            parts.append(exposed(linked))
    return "\n".join(parts)


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets or SECRETS:
        assert secret not in text, f"{secret!r} exposed"


def refused(call, *args, error=phimask.EventError) -> BaseException:
    """The exception `call(*args)` raises, checked to carry no chained
    exception (Python's own messages may quote a value)."""
    with pytest.raises(error) as info:
        call(*args)
    exc = info.value
    assert exc.__cause__ is None and exc.__context__ is None
    return exc


def one_line(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


# --- Sanitizer, destinations, sanitize ---------------------------------


@pytest.mark.parametrize("form", ["dict", "str", "bytes"])
@pytest.mark.parametrize("key_form", ["str", "bytes"])
def test_policy_and_key_in_every_form_give_the_commands_bytes(form, key_form):
    text = PRODUCTION.read_text()
    policy = {"dict": json.loads(text), "str": text, "bytes": text.encode()}[form]
    key = KEY if key_form == "str" else KEY.encode()
    s = phimask.Sanitizer(policy, key)
    server_side = [
        name
        for name, d in production()["destinations"].items()
        if d["connection"] == "server-side"
    ]
    assert s.destinations() == server_side
    lines = [one_line(json.loads(p.read_text())) for p in EXAMPLES]
    for destination in s.destinations():
        expected = command(destination, b"".join(lines))
        assert expected, "the examples send something"
        got = b"".join(
            (out + "\n").encode()
            for line in lines
            if (out := s.sanitize(line, destination)) is not None
        )
        assert got == expected


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_an_event_as_str_bytes_or_dict_gives_the_same_text(path):
    s = sanitizer()
    # Compact, as a dict is given to the engine: the destination that
    # takes events as they are keeps their white space.
    text = json.dumps(json.loads(path.read_text()), ensure_ascii=False, separators=(",", ":"))
    for destination in DESTINATIONS:
        as_str = s.sanitize(text, destination)
        assert s.sanitize(text.encode(), destination) == as_str
        assert s.sanitize(json.loads(text), destination) == as_str


def test_masks_are_the_hmac_of_the_value_under_the_key():
    event = {
        "type": "track",
        "event": "Order Completed",
        "userId": "patient-004217",
        "properties": {"email": "jane.doe@example.com", "note": "Jane Doe, HIV positive"},
    }
    out = json.loads(sanitizer().sanitize(event, "amplitude"))
    assert out["userId"] == mask("patient-004217")
    assert out["properties"]["email"] == mask("jane.doe@example.com")
    assert "note" not in out["properties"]
    # The key is counted in bytes, as PHI_MASKING_KEY is: 16 two-byte
    # characters are a 32-byte key, and str and its UTF-8 bytes are one key.
    wide = "é" * 16
    as_str = json.loads(sanitizer(wide).sanitize(event, "amplitude"))
    as_bytes = json.loads(sanitizer(wide.encode()).sanitize(event, "amplitude"))
    assert as_str == as_bytes
    assert as_str["userId"] == mask("patient-004217", wide)


def test_none_when_the_policy_sends_the_destination_nothing():
    s = sanitizer()
    # "*": "drop" keeps unlisted event names from restricted destinations.
    unlisted = {"type": "track", "event": "Viewed Jane Doe", "userId": "u1"}
    assert s.sanitize(unlisted, "amplitude") is None
    # mixpanel takes track, page and identify calls only.
    alias = {"type": "alias", "userId": "u1", "previousId": "u0"}
    assert s.sanitize(alias, "mixpanel") is None
    assert s.sanitize(alias, "warehouse") is not None


def test_no_key_is_needed_until_a_destination_masks():
    policy = {
        "version": 1,
        "environment": "production",
        "hipaa": True,
        "destinations": {
            "warehouse": {
                "connection": "server-side",
                "endpoint": "https://ingest.example/segment",
                "restrict_phi": False,
                "baa": True,
            }
        },
    }
    event = {"type": "track", "event": "Order Completed", "userId": "u1"}
    assert json.loads(phimask.Sanitizer(policy).sanitize(event, "warehouse")) == event
    policy["identifiers"] = {"userId": "mask"}
    policy["destinations"]["warehouse"]["restrict_phi"] = True
    exc = refused(phimask.Sanitizer, policy, error=phimask.PolicyError)
    assert (exc.code, exc.problems) == ("missing_key", [])


# --- errors ------------------------------------------------------------


def test_policy_error_lists_every_problem_at_its_path():
    cases = json.loads((VECTORS / "policy-validation.json").read_text())["cases"]
    checked = 0
    for case in cases:
        if not case["errors"]:
            continue
        policy = case.get("policy_json", case.get("policy"))
        exc = refused(phimask.Sanitizer, policy, KEY, error=phimask.PolicyError)
        assert isinstance(exc, phimask.Error) and isinstance(exc, ValueError)
        assert exc.code == "invalid_policy", case["name"]
        expected = [(e["path"], e["message"]) for e in case["errors"]]
        assert sorted(exc.problems) == sorted(expected), case["name"]
        assert exc.message == str(exc)
        checked += 1
    assert checked >= 10


def test_policy_error_for_a_policy_python_cannot_give_as_json():
    circular = production()
    circular["events"]["loop"] = circular
    for policy in (
        b'{"version": 1, "environment": "Jane Doe \xff HIV positive"}',
        {**production(), "hipaa": float("nan")},
        {**production(), "environment": {"Jane Doe"}},
        circular,
        '{"version": 1, "environment": "Jane Doe", "hipaa": ',
    ):
        exc = refused(phimask.Sanitizer, policy, KEY, error=phimask.PolicyError)
        assert exc.code == "invalid_policy"
        assert len(exc.problems) == 1 and exc.problems[0][0] == ""
        assert_hidden(exposed(exc))


def test_a_key_too_short_is_refused_without_showing_it():
    for key in ("", "Jane Doe HIV positive", b"Jane Doe HIV positive 123-45-67"):
        exc = refused(phimask.Sanitizer, production(), key, error=phimask.PolicyError)
        assert (exc.code, exc.problems) == ("key_too_short", [])
        assert_hidden(exposed(exc))
    # 32 bytes is enough.
    assert phimask.Sanitizer(production(), b"k" * 32).destinations()


def test_refused_events_raise_event_error_with_the_shared_codes_and_messages():
    vectors = json.loads((VECTORS / "event-errors.json").read_text())
    s = phimask.Sanitizer(vectors["policy"], vectors["key"])
    for case in vectors["cases"]:
        event = case.get("event_json", case.get("event"))
        exc = refused(s.sanitize, event, case["destination"])
        assert isinstance(exc, phimask.Error) and isinstance(exc, ValueError)
        assert (exc.code, exc.message) == (case["error"], case["message"]), case["name"]
        assert exc.args == (case["message"],)


def test_unknown_and_client_side_destinations_are_errors_of_their_own():
    policy = json.loads((VECTORS / "destinations.json").read_text())["policy"]
    s = phimask.Sanitizer(policy, KEY)
    assert "ga4" not in s.destinations()  # client-side: the browser sends it
    event = {"type": "track", "event": "Signed Up", "userId": "u1"}
    import pyarrow as pa

    calls = (
        (s.sanitize, event),
        (s.sanitize_ndjson, one_line(event)),
        (s.sanitize_arrow, pa.array([json.dumps(event)])),
    )
    for destination in ("ga4", "Amplitude", "nowhere", ""):
        for call, data in calls:
            exc = refused(call, data, destination, error=phimask.Error)
            assert type(exc) is phimask.Error
            assert exc.code == "unknown_destination"
    assert s.take_report() == {}


def test_wrong_argument_types_are_type_errors():
    s = sanitizer()
    event = {"type": "track", "event": "Order Completed", "userId": "u1"}
    for args in (
        (123,),
        ([production()],),
        (None,),
        (production(), 12345678901234567890123456789012),
        (production(), ["k" * 32]),
        # A str that is not UTF-8 (a lone surrogate) is no key.
        (production(), "k" * 32 + "\ud800"),
    ):
        with pytest.raises(TypeError) as info:
            phimask.Sanitizer(*args)
        assert not isinstance(info.value, phimask.Error)
        assert_hidden(exposed(info.value))
    for call, args in (
        (s.sanitize, (123, "amplitude")),
        (s.sanitize, ([event], "amplitude")),
        (s.sanitize, (None, "amplitude")),
        (s.sanitize, (event, 5)),
        (s.sanitize, (event, b"amplitude")),
        (s.sanitize_ndjson, (json.dumps(event), "amplitude")),
        (s.sanitize_ndjson, (event, "amplitude")),
        (s.sanitize_ndjson, (one_line(event), None)),
    ):
        with pytest.raises(TypeError):
            call(*args)
    assert s.take_report() == {}


# --- hostile input -----------------------------------------------------

HUGE = " ".join(PLANTED) * (2 * phimask.MAX_EVENT_BYTES // len(" ".join(PLANTED)))

HOSTILE_TEXT = {
    "truncated": ('{"type":"track","userId":"u1","properties":{"note":"Jane Doe, HIV positive"', "invalid_json"),
    "value after the event": ('{"type":"track","userId":"u1"} "Jane Doe HIV positive"', "invalid_json"),
    "bare text": ("Jane Doe HIV positive MRN-88120045", "invalid_json"),
    "planted key, no value": ('{"type":"track","Jane Doe HIV positive":}', "invalid_json"),
    "NUL in a string": ('{"type":"track","userId":"u1","properties":{"n":"Jane Doe\x00HIV positive"}}', "invalid_json"),
    "raw CRLF in a string": ('{"type":"track","userId":"u1","properties":{"n":"Jane Doe\r\nHIV positive"}}', "invalid_json"),
    "duplicate planted key": (
        '{"type":"track","event":"Order Completed","userId":"u1","properties":{"Jane Doe":1,"Jane Doe":"HIV positive"}}',
        "duplicate_key",
    ),
    "planted type": ('{"type":"Jane Doe HIV positive","userId":"u1"}', "unknown_type"),
    "huge": ('{"type":"track","userId":"u1","properties":{"n":"' + HUGE + '"}}', "event_too_large"),
    "huge key": ('{"type":"track","userId":"u1","properties":{"' + HUGE + '":1}}', "event_too_large"),
    "deep": (
        '{"type":"track","userId":"u1","properties":' + '{"Jane Doe":' * 80 + '"HIV positive"' + "}" * 81,
        "event_too_deep",
    ),
    "lone surrogate": ('{"type":"track","userId":"u1","properties":{"n":"Jane Doe \ud800 HIV positive"}}', "invalid_json"),
}

HOSTILE_BYTES = {
    "not UTF-8": b'{"type":"track","userId":"u1","properties":{"n":"Jane Doe \xff HIV positive"}}',
    "UTF-16": '{"type":"track","userId":"Jane Doe HIV positive"}'.encode("utf-16"),
    "overlong UTF-8": b'{"type":"track","userId":"Jane Doe \xc0\xa2 HIV positive"}',
}


class Leaky:
    """An object whose repr holds PHI: json.dumps' error may quote it."""

    def __repr__(self):
        return "Jane Doe HIV positive"


class RaisingDict(dict):
    """A dict whose items raise with PHI in the message."""

    def items(self):
        raise ValueError("Jane Doe HIV positive MRN-88120045")

    def keys(self):
        raise ValueError("Jane Doe HIV positive MRN-88120045")


def hostile_dicts():
    base = {"type": "track", "event": "Order Completed", "userId": "u1"}
    circular = {**base, "properties": {"note": "Jane Doe"}}
    circular["properties"]["self"] = circular
    circular_list = ["Jane Doe", "HIV positive"]
    circular_list.append(circular_list)
    deep = "HIV positive"
    for _ in range(100_000):
        deep = {"Jane Doe": deep}
    return {
        "NaN": {**base, "properties": {"note": "Jane Doe", "v": float("nan")}},
        "infinity": {**base, "properties": {"note": "HIV positive", "v": float("inf")}},
        "set": {**base, "properties": {"tags": {"Jane Doe", "HIV positive"}}},
        "bytes": {**base, "properties": {"note": b"Jane Doe HIV positive"}},
        "object with a planted repr": {**base, "properties": {"note": Leaky()}},
        "tuple key": {**base, "properties": {("Jane Doe", "HIV positive"): 1}},
        "circular dict": circular,
        "circular list": {**base, "properties": {"tags": circular_list}},
        "lone surrogate value": {**base, "properties": {"note": "Jane Doe \udc80 HIV positive"}},
        "lone surrogate key": {**base, "properties": {"Jane Doe \ud800 HIV positive": 1}},
        "deeper than Python recurses": {**base, "properties": deep},
        "dict that raises": RaisingDict(base, note="Jane Doe HIV positive"),
    }


@pytest.mark.parametrize("name", HOSTILE_TEXT)
def test_hostile_text_is_refused_without_echo(name):
    text, code = HOSTILE_TEXT[name]
    s = sanitizer(MARKED_KEY)
    forms = [text]
    if "\ud800" not in text:
        forms.append(text.encode())
    for event in forms:
        exc = refused(s.sanitize, event, "amplitude")
        assert exc.code == code
        assert_hidden(exposed(exc))
    report = s.take_report()
    assert report["amplitude"]["refused"] == len(forms)
    assert_hidden(repr(report))


@pytest.mark.parametrize("name", HOSTILE_BYTES)
def test_bytes_not_utf8_are_refused_without_echo(name):
    s = sanitizer(MARKED_KEY)
    for destination in DESTINATIONS:
        exc = refused(s.sanitize, HOSTILE_BYTES[name], destination)
        assert exc.code == "invalid_json"
        assert_hidden(exposed(exc))
    report = s.take_report()
    assert [report[d]["refused"] for d in DESTINATIONS] == [1, 1, 1]
    assert_hidden(repr(report))


def test_dicts_json_cannot_hold_are_refused_without_echo():
    s = sanitizer(MARKED_KEY)
    dicts = hostile_dicts()
    for name, event in dicts.items():
        # Even for the destination that takes everything: never a guess.
        exc = refused(s.sanitize, event, "warehouse")
        assert exc.code == "invalid_json", name
        assert_hidden(exposed(exc))
    report = s.take_report()
    assert report["warehouse"]["refused"] == len(dicts)
    assert report["warehouse"]["sent"] == 0
    assert_hidden(repr(report))


def test_hostile_ndjson_gives_the_commands_bytes_and_no_phi():
    good = {
        "type": "track",
        "event": "Order Completed",
        "userId": "patient-1",
        "properties": {"note": "Jane Doe, HIV positive", "email": "jane@example.com"},
    }
    lines = [one_line(good)]
    for text, _ in HOSTILE_TEXT.values():
        if "\n" not in text:
            lines.append(text.encode("utf-8", "surrogatepass") + b"\n")
    lines += [b + b"\n" for b in HOSTILE_BYTES.values()]
    lines += [
        one_line(good)[:-1] + b"\r\n",  # CRLF line end
        b"\r\n",
        b"\x00\x00Jane Doe\x00\n",
        # A lone CR between tokens is JSON white space: sent, note dropped.
        b'{"type":"track","event":"Order Completed","userId":"u1",\r"properties":{"note":"HIV positive"}}\n',
        b"Jane Doe " * 1_000_000 + b"\n",  # 9 MB, one line
        one_line(good)[:-1],  # no final newline
    ]
    data = b"".join(lines)
    s = sanitizer(MARKED_KEY)
    for destination in ("amplitude", "mixpanel"):
        out = s.sanitize_ndjson(data, destination)
        assert out == command(destination, data, key=MARKED_KEY)
        assert out.count(b"\n") == 4  # the good event thrice, the CR one
        assert_hidden(out.decode())
    report = s.take_report()
    # All but the four sent and the one blank line are refused.
    assert (report["amplitude"]["sent"], report["amplitude"]["blank"]) == (4, 1)
    assert report["amplitude"]["refused"] == len(lines) - 5
    assert_hidden(repr(report))


def test_the_key_is_in_no_repr_dir_or_pickle():
    s = sanitizer(MARKED_KEY)
    assert_hidden(repr(s) + str(s) + repr(dir(s)) + repr(s.destinations()))
    assert "masking key" not in repr(s)
    assert not hasattr(s, "__dict__")
    assert_hidden(repr(s.__getstate__()) if hasattr(s, "__getstate__") else "")
    copies = [copy.copy, copy.deepcopy]
    copies += [lambda o, p=p: pickle.dumps(o, protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)]
    for attempt in copies:
        with pytest.raises(TypeError) as info:
            attempt(s)
        assert "never pickled" in str(info.value)
        assert_hidden(exposed(info.value))
    # Nor through a container: the pickle of a list would hold it too.
    with pytest.raises(TypeError):
        pickle.dumps({"sanitizer": [s]})


# --- threads -----------------------------------------------------------


def corpus(n: int = 3000) -> list:
    """Events of every kind, seeded: sent, not sent, refused, blank."""
    rng = random.Random(28)
    names = ["Order Completed", "Booked Cardiology Appointment", "HIV Testing", "Viewed Jane Doe"]
    out = []
    for i in range(n):
        kind = rng.randrange(10)
        if kind == 0:
            out.append(b'{"type":"track","properties":{"note":"Jane Doe"' + str(i).encode())
        elif kind == 1:
            out.append(b"   ")
        elif kind == 2:
            out.append(b'{"type":"identify","userId":"\xff' + str(i).encode() + b'"}')
        else:
            event = {
                "type": rng.choice(["track", "track", "page", "identify", "alias"]),
                "event": rng.choice(names),
                "userId": f"patient-{rng.randrange(10_000)}",
                "properties": {
                    "email": f"Jane.Doe{i}@Example.com",
                    "zip": f"{rng.randrange(100_000):05}",
                    "note": "HIV positive " * rng.randrange(5),
                    "value": rng.random() * 1000,
                },
                "traits": {"email": f"jane{i}@example.com", "birthday": "1984-07-19"},
                "context": {"ip": f"203.0.113.{rng.randrange(256)}"},
            }
            out.append(json.dumps(event).encode())
    return out


def test_eight_threads_on_one_sanitizer_give_the_single_threaded_bytes():
    events = corpus()
    data = b"\n".join(events) + b"\n"
    s = sanitizer()

    def run():
        ndjson = {d: s.sanitize_ndjson(data, d) for d in DESTINATIONS}
        each = []
        for e in events[:500]:
            try:
                each.append(s.sanitize(e, "amplitude"))
            except phimask.EventError as exc:
                each.append(exc.code)
        return ndjson, each

    single = run()
    alone = s.take_report()
    assert single[0]["amplitude"] == command("amplitude", data)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: run(), range(8)))
    assert all(r == single for r in results)
    # Each thread's counts were added, none lost to a race.
    together = s.take_report()
    for destination, counts in alone.items():
        for field in ("sent", "not_sent", "blank", "refused", "dropped", "masked", "transformed"):
            assert together[destination][field] == 8 * counts[field], (destination, field)


@pytest.mark.parametrize("method", ["sanitize", "sanitize_ndjson", "sanitize_arrow"])
def test_the_gil_is_released_while_the_engine_runs(method):
    import pyarrow as pa

    s = sanitizer()
    events = corpus(2000)
    # Calls, each a few microseconds (sanitize) or milliseconds long.
    data, calls = {
        "sanitize": ((ROOT / "examples" / "events" / "track-appointment.json").read_bytes(), 5000),
        "sanitize_ndjson": (b"\n".join(events), 50),
        "sanitize_arrow": (pa.array([e.decode("utf-8", "replace") for e in events]), 50),
    }[method]
    call = getattr(s, method)

    def other_thread_ran_during_the_calls() -> bool:
        started = threading.Event()
        state = {"done": False}

        def work():
            started.set()
            for _ in range(calls):
                call(data, "amplitude")
            state["done"] = True

        # With a switch interval this long Python never takes the GIL
        # from the worker: this thread runs before the worker's calls are
        # done only if the engine lets go of the GIL while it works.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)
        try:
            worker = threading.Thread(target=work)
            worker.start()
            started.wait()
            ran = not state["done"]
            worker.join()
        finally:
            sys.setswitchinterval(interval)
        assert state["done"]
        return ran

    # Held, it is never seen; released, the chance this thread is not
    # woken in any of the calls' windows is small, and three tries make
    # it negligible.
    assert any(other_thread_ran_during_the_calls() for _ in range(3))


# --- take_report -------------------------------------------------------


def test_take_report_counts_what_was_built_in():
    s = sanitizer()
    sent = {
        "type": "track",
        "event": "Order Completed",
        "userId": "patient-1",
        # Masked: userId and email; transformed: zip (to 3 digits);
        # dropped: note (no rule allows it).
        "properties": {"email": "jane@example.com", "zip": "02118", "note": "Jane Doe"},
    }
    not_sent = {"type": "track", "event": "Viewed Jane Doe", "userId": "u1"}
    plan = ["sent", "blank", "refused", "not_sent", "sent", "refused", "blank", "sent"]
    plan += ["refused"] * 150 + ["sent"] * 3
    line_of = {
        "sent": one_line(sent),
        "not_sent": one_line(not_sent),
        "blank": b" \t \r\n",
        "refused": b'{"type":"track","note":"HIV positive"\n',
    }
    data = b"".join(line_of[kind] for kind in plan)
    refused_lines = [i + 1 for i, kind in enumerate(plan) if kind == "refused"]
    n = {kind: plan.count(kind) for kind in line_of}

    out = s.sanitize_ndjson(data, "amplitude")
    assert out.count(b"\n") == n["sent"]
    report = s.take_report()
    assert list(report) == ["amplitude"]
    r = report["amplitude"]
    assert (r["sent"], r["not_sent"], r["blank"], r["refused"]) == (
        n["sent"], n["not_sent"], n["blank"], n["refused"]
    )
    assert (r["masked"], r["transformed"], r["dropped"]) == (2 * n["sent"], n["sent"], n["sent"])
    # The first refused lines, by number, each with why: never the line.
    # 152 refused: the first 100 listed, the rest only counted.
    numbers = [number for number, _ in r["first_refused"]]
    assert len(refused_lines) > 100
    assert numbers == refused_lines[:100]
    assert all(why.startswith("event is not valid JSON") for _, why in r["first_refused"])
    assert_hidden(repr(report))

    # Taken: the next report starts from nothing.
    assert s.take_report() == {}

    # One event at a time: refused ones are numbered 0 (no line), and
    # each destination is counted apart.
    assert s.sanitize(sent, "mixpanel") is not None
    assert s.sanitize(not_sent, "amplitude") is None
    for event in (line_of["refused"], b"\xffJane Doe", {"v": float("nan")}):
        with pytest.raises(phimask.EventError):
            s.sanitize(event, "amplitude")
    report = s.take_report()
    assert (report["mixpanel"]["sent"], report["mixpanel"]["refused"]) == (1, 0)
    a = report["amplitude"]
    assert (a["sent"], a["not_sent"], a["refused"]) == (0, 1, 3)
    assert [number for number, _ in a["first_refused"]] == [0, 0, 0]
    assert_hidden(repr(report))


def test_masking_key_reads_a_key_file_or_the_environment_as_the_command_does(tmp_path, monkeypatch):
    """The key file's one trailing LF or CRLF is its line end; without a
    file, PHI_MASKING_KEY; neither: None. The key it gives masks as the
    command's does with the same file."""
    monkeypatch.delenv("PHI_MASKING_KEY", raising=False)
    assert phimask.masking_key() is None
    monkeypatch.setenv("PHI_MASKING_KEY", MARKED_KEY)
    assert phimask.masking_key() == MARKED_KEY.encode()
    for ending in (b"\r\n", b"\n", b""):
        path = tmp_path / f"key{len(ending)}"
        path.write_bytes(KEY.encode() + ending)
        assert phimask.masking_key(path) == KEY.encode()
        assert phimask.masking_key(str(path)) == KEY.encode()
    # Only one line end is the file's: a second is part of the key.
    (tmp_path / "two").write_bytes(KEY.encode() + b"\n\n")
    assert phimask.masking_key(tmp_path / "two") == KEY.encode() + b"\n"
    data = b"".join(json.dumps(json.loads(p.read_text())).encode() + b"\n" for p in EXAMPLES)
    keyed = phimask.Sanitizer(PRODUCTION.read_text(), phimask.masking_key(tmp_path / "key2"))
    assert keyed.sanitize_ndjson(data, "amplitude") == command("amplitude", data)
    (tmp_path / "empty").write_bytes(b"\n")
    with pytest.raises(ValueError, match="is empty"):
        phimask.masking_key(tmp_path / "empty")
    with pytest.raises(OSError, match="cannot read key file"):
        phimask.masking_key(tmp_path / "missing")


def test_take_report_counts_each_call_type_alike():
    """The same lines given to sanitize_ndjson, as rows to sanitize_arrow
    and one by one to sanitize() are counted the same: a backfill's totals
    do not depend on the call it uses."""
    import pyarrow as pa

    events = [json.loads(p.read_text()) for p in EXAMPLES]
    lines = [one_line(e)[:-1] for e in events]
    lines += [
        b'{"type":"track","event":"Viewed Jane Doe","userId":"u1"}',  # not sent
        b'{"type":"alias","userId":"u1","previousId":"u0"}',  # not sent to mixpanel
        b'{"type":"track","properties":{"note":"Jane Doe, HIV positive"',
        b'{"type":"track","event":"Order Completed","userId":"u\x00"}',
        b'{"type":"track","event":"Order Completed","userId":"Jane Doe \xff HIV positive"}',
        b'{"type":"track","event":"Order Completed","userId":"u2","properties":{"zip":"02118","note":"HIV positive"}}\r',
    ]
    blank = [b"", b"  \t", b"\r"]
    s = sanitizer()
    fields = ("sent", "not_sent", "blank", "refused", "dropped", "masked", "transformed")
    for destination in DESTINATIONS:
        data = b"".join(line + b"\n" for line in lines + blank)
        s.sanitize_ndjson(data, destination)
        by_lines = s.take_report()[destination]
        # Each count is exercised (warehouse takes every event whole).
        assert by_lines["sent"] and by_lines["blank"] == len(blank) and by_lines["refused"] == 3
        if destination != "warehouse":
            assert by_lines["not_sent"] and by_lines["masked"] and by_lines["dropped"], destination
            assert by_lines["transformed"], destination

        rows = lines + blank
        column = pa.array(rows, pa.binary()).view(pa.string())
        s.sanitize_arrow(column, destination)
        # Rows are numbered as lines are: the whole report is the same.
        assert s.take_report()[destination] == by_lines, destination

        for line in lines:
            try:
                s.sanitize(line, destination)
            except phimask.EventError:
                pass
        one_by_one = s.take_report()[destination]
        # sanitize() has no blank events and numbers its refusals 0.
        assert {f: one_by_one[f] for f in fields} == {**{f: by_lines[f] for f in fields}, "blank": 0}, destination
        assert [n for n, _ in one_by_one["first_refused"]] == [0] * by_lines["refused"]
        assert all(why for _, why in one_by_one["first_refused"])
        assert_hidden(repr(one_by_one) + repr(by_lines))


def test_first_refused_keeps_the_first_100_across_calls():
    """Counts add up over any number of calls until take_report(), but the
    listed refusals stop at 100: a backfill of millions of broken lines
    must not grow the report without end."""
    import pyarrow as pa

    s = sanitizer()
    good = one_line({"type": "track", "event": "Order Completed", "userId": "patient-1"})
    bad = b'{"type":"track","note":"Jane Doe, HIV positive"\n'
    data = (good + bad) * 80  # lines 2, 4, ... 160 refused
    s.sanitize_ndjson(data, "amplitude")
    s.sanitize_ndjson(data, "amplitude")
    s.sanitize_arrow(pa.array([bad.decode()[:-1]] * 5), "amplitude")
    for _ in range(30):
        with pytest.raises(phimask.EventError):
            s.sanitize(bad, "amplitude")
    r = s.take_report()["amplitude"]
    assert (r["sent"], r["refused"]) == (160, 80 + 80 + 5 + 30)
    # Numbered within their call: all of the first call's, then the
    # second's first 20.
    assert [n for n, _ in r["first_refused"]] == list(range(2, 161, 2)) + list(range(2, 41, 2))
    assert_hidden(repr(r))
