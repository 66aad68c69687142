"""sanitize_arrow as Spark's mapInArrow, DuckDB and Polars call it: each
row of a string column is what sanitize_ndjson makes of it as one line,
in a column of the same length and chunks; anything that is not a column
of strings is a TypeError, and a column whose buffers lie is a ValueError,
never a crash or a row read from outside the column."""

import json
import struct
import subprocess
import sys

import pyarrow as pa
import pytest

import phimask
from conftest import KEY, ROOT, cli_sanitize

PRODUCTION = ROOT / "policies" / "production.json"
MAX = phimask.MAX_EVENT_BYTES
PLANTED = ("Jane Doe", "HIV positive", "MRN-88120045")
DESTINATIONS = ("amplitude", "mixpanel", "warehouse")


def sanitizer() -> phimask.Sanitizer:
    return phimask.Sanitizer(json.loads(PRODUCTION.read_text()), KEY)


def event(i: int, **extra) -> str:
    return json.dumps(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": f"patient-{i}",
            "properties": {"email": f"jane{i}@example.com", "note": "Jane Doe, HIV positive", **extra},
        },
        separators=(",", ":"),
    )


def sized(n: int) -> str:
    """A valid event exactly `n` bytes long."""
    short = event(0, pad="")
    return event(0, pad="x" * (n - len(short)))


def rows() -> list:
    """Rows of every kind: sent, not sent, blank, refused, null, at and
    over the size limit, with a line end's CR. No row holds a newline, so
    each is one line of NDJSON."""
    out = [
        event(1),
        None,
        "",
        "   ",
        "\t\r",
        '{"type":"track","event":"Viewed Jane Doe","userId":"u1"}',  # not sent
        '{"type":"track","properties":{"note":"Jane Doe, HIV positive"',  # invalid
        "Jane Doe HIV positive",
        '{"type":"identify","userId":"u2","traits":{"mrn":"MRN-88120045"}}',
        '{"type":"alias","userId":"u3","previousId":"u2"}',
        event(2) + "\r",
        "  " + event(3) + " \r",
        '{"type":"track","event":"Order Completed","userId":"u\\u0000Jane Doe"}',
        sized(MAX),
        sized(MAX + 1),
        sized(MAX) + "\r",  # a line's CR is not the event's
        sized(MAX - 1) + "\r\r",
        "Jane Doe " * (MAX // 4),
        None,
        event(4, zip="02118"),
    ]
    return out + [event(i) if i % 3 else None for i in range(5, 40)]


def as_line(s: phimask.Sanitizer, row, destination: str):
    """What sanitize_ndjson makes of `row` as a one-line input."""
    if row is None:
        return None
    out = s.sanitize_ndjson(row.encode("utf-8") + b"\n", destination)
    assert out.count(b"\n") <= 1
    return out[:-1].decode("utf-8") if out else None


def command(destination: str, data: bytes) -> bytes:
    return cli_sanitize(PRODUCTION, destination, data)


def expected(destination: str, values: list) -> list:
    reference = sanitizer()
    return [as_line(reference, row, destination) for row in values]


def chunks_of(column) -> list:
    return [c.to_pylist() for c in column.chunks]


# --- row for row what sanitize_ndjson gives ------------------------------


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_each_row_is_what_sanitize_ndjson_makes_of_it_as_a_line(destination):
    values = rows()
    want = expected(destination, values)
    assert any(w is not None for w in want) and None in want
    s = sanitizer()
    out = s.sanitize_arrow(pa.array(values, pa.string()), destination)
    assert out.type == pa.string()
    assert out.to_pylist() == want
    # And the command, given the same rows, writes the same lines.
    data = "".join(v + "\n" for v in values if v is not None).encode()
    assert "".join(w + "\n" for w in want if w is not None).encode() == command(destination, data)
    if destination != "warehouse":
        assert not any(p in "".join(w for w in want if w) for p in PLANTED)


def test_rows_over_the_limit_are_null_and_counted_refused():
    s = sanitizer()
    values = [sized(MAX), sized(MAX + 1), "Jane Doe " * 1_000_000, sized(MAX) + "\r", None]
    out = s.sanitize_arrow(pa.array(values), "warehouse").to_pylist()
    assert out[0] is not None and out[3] is not None
    assert out[1] is None and out[2] is None and out[4] is None
    report = s.take_report()["warehouse"]
    assert (report["sent"], report["refused"]) == (2, 2)
    assert [n for n, _ in report["first_refused"]] == [2, 3]
    assert not any(p in repr(report) for p in PLANTED)


@pytest.mark.parametrize(
    "arrow_type, out_type",
    [
        (pa.string(), pa.string()),
        (pa.large_string(), pa.large_string()),
        (pa.string_view(), pa.large_string()),
    ],
    ids=["string", "large_string", "string_view"],
)
def test_string_large_string_and_string_view(arrow_type, out_type):
    values = rows()
    want = expected("amplitude", values)
    s = sanitizer()
    out = s.sanitize_arrow(pa.array(values, arrow_type), "amplitude")
    assert out.type == out_type
    assert out.to_pylist() == want
    out.validate(full=True)
    chunked = s.sanitize_arrow(pa.chunked_array([values[:7], values[7:]], arrow_type), "amplitude")
    assert chunked.type == out_type
    assert chunks_of(chunked) == [want[:7], want[7:]]


@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string(), pa.string_view()], ids=str)
def test_chunks_keep_their_lengths_even_and_empty(arrow_type):
    values = rows()
    want = expected("mixpanel", values)
    cuts = [0, 0, 1, 1, 9, 10, 10, len(values) - 2, len(values), len(values)]
    pieces = [values[a:b] for a, b in zip(cuts, cuts[1:])]
    s = sanitizer()
    out = s.sanitize_arrow(pa.chunked_array(pieces, arrow_type), "mixpanel")
    assert [len(c) for c in out.chunks] == [len(p) for p in pieces]
    assert chunks_of(out) == [want[a:b] for a, b in zip(cuts, cuts[1:])]
    # Row numbers in the report run on across chunks.
    refused = [i + 1 for i, w in enumerate(want) if w is None and values[i] is not None and values[i].strip()]
    numbers = [n for n, _ in s.take_report()["mixpanel"]["first_refused"]]
    assert set(numbers) <= set(refused) and numbers == sorted(numbers) and numbers


@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string(), pa.string_view()], ids=str)
def test_no_rows_no_chunks(arrow_type):
    s = sanitizer()
    empty = s.sanitize_arrow(pa.array([], arrow_type), "amplitude")
    assert len(empty) == 0 and isinstance(empty, pa.Array)
    none = s.sanitize_arrow(pa.chunked_array([], arrow_type), "amplitude")
    assert isinstance(none, pa.ChunkedArray)
    assert none.num_chunks == 0 and len(none) == 0
    nulls = s.sanitize_arrow(pa.array([None] * 9, arrow_type), "amplitude")
    assert nulls.null_count == 9
    # Null rows are no events: nothing counted.
    counts = s.take_report()["amplitude"]
    assert not any(counts[k] for k in ("sent", "not_sent", "blank", "refused"))


@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string(), pa.string_view()], ids=str)
def test_slices_read_their_own_rows_and_validity_bits(arrow_type):
    values = rows()
    want = expected("amplitude", values)
    column = pa.array(values, arrow_type)
    s = sanitizer()
    for start, length in [(3, 10), (1, 0), (7, 9), (13, 4), (0, len(values)), (len(values) - 1, 1)]:
        part = column.slice(start, length)
        assert s.sanitize_arrow(part, "amplitude").to_pylist() == want[start : start + length]
    chunked = pa.chunked_array([column.slice(2, 11), column.slice(17)])
    assert chunks_of(s.sanitize_arrow(chunked, "amplitude")) == [want[2:13], want[17:]]


def test_rows_not_utf8_are_null_and_refused_without_echo():
    bad = [b'{"type":"track","userId":"Jane Doe \xff HIV positive"}', event(1).encode(), b"\xc0\xafJane Doe"]
    offsets = [0]
    for b in bad:
        offsets.append(offsets[-1] + len(b))
    column = pa.Array.from_buffers(
        pa.string(), len(bad), [None, pa.py_buffer(struct.pack(f"<{len(offsets)}i", *offsets)), pa.py_buffer(b"".join(bad))]
    )
    s = sanitizer()
    out = s.sanitize_arrow(column, "warehouse").to_pylist()
    assert out == [None, as_line(sanitizer(), event(1), "warehouse"), None]
    report = s.take_report()["warehouse"]
    assert report["refused"] == 2
    assert not any(p in repr(report) for p in PLANTED)


# --- what is not a column of strings -----------------------------------


def test_anything_but_a_string_column_is_a_type_error():
    pd = pytest.importorskip("pandas")
    s = sanitizer()
    strings = [event(1), None]
    not_columns = [
        pa.array([1, 2, 3], pa.int64()),
        pa.array([None, None], pa.null()),
        pa.array([[event(1)]], pa.list_(pa.string())),
        pa.array([1, 2, 1]).dictionary_encode(),
        pa.chunked_array([], pa.int64()),
        pa.chunked_array([[1], [2]]),
        pa.table({"event": strings}),
        pa.record_batch({"event": strings}),
        pd.Series(strings),
        strings,
        tuple(strings),
        event(1),
        event(1).encode(),
        None,
    ]
    for column in not_columns:
        with pytest.raises(TypeError) as info:
            s.sanitize_arrow(column, "amplitude")
        assert not isinstance(info.value, ValueError)
        assert not any(p in str(info.value) for p in PLANTED)
    assert s.take_report() == {}


@pytest.mark.parametrize(
    "kind, out_type",
    [(pa.binary(), pa.string()), (pa.large_binary(), pa.large_string()), (pa.binary_view(), pa.large_string())],
)
def test_binary_columns_are_read_as_text_and_rows_not_utf8_refused(kind, out_type):
    """JSON kept as bytes (Parquet's BYTE_ARRAY without a UTF-8
    annotation, a BLOB): each row is what the command makes of it as a
    line; a row that is not UTF-8 is null and counted refused."""
    values = [event(1).encode(), None, b"", b'{"type":"track","event":"\xff Jane Doe"}', event(2).encode()]
    s = sanitizer()
    out = s.sanitize_arrow(pa.array(values, kind), "amplitude")
    assert out.type == out_type
    lines = command("amplitude", b"".join(v + b"\n" for v in values if v is not None)).decode().splitlines()
    assert [v for v in out.to_pylist() if v is not None] == lines
    assert out[1].as_py() is None and out[2].as_py() is None and out[3].as_py() is None
    report = s.take_report()["amplitude"]
    assert report["refused"] == 1 and report["first_refused"][0][0] == 4
    assert not any(p in str(report) for p in PLANTED)


@pytest.mark.parametrize("value_type", [pa.string(), pa.large_string(), pa.binary()])
def test_dictionary_columns_are_read_as_their_values(value_type):
    """Polars' Categorical and Parquet's dictionary pages arrive
    dictionary-encoded: rows are their values, chunks keep their lengths."""
    values = [event(1), event(2), None, event(1), "{broken Jane Doe", event(2)]
    plain = pa.array([v if v is None or value_type != pa.binary() else v.encode() for v in values], value_type)
    encoded = plain.dictionary_encode()
    s = sanitizer()
    assert s.sanitize_arrow(encoded, "amplitude").to_pylist() == s.sanitize_arrow(plain, "amplitude").to_pylist()
    chunked = s.sanitize_arrow(pa.chunked_array([encoded.slice(0, 2), encoded.slice(2)]), "amplitude")
    assert [len(c) for c in chunked.chunks] == [2, 4]
    assert chunked.to_pylist() == s.sanitize_arrow(plain, "amplitude").to_pylist()
    assert chunked.to_pylist()[4] is None and chunked.to_pylist()[0] is not None


# --- columns whose buffers lie -----------------------------------------

ROW = event(1).encode()


def offsets(values, wide=False) -> pa.Buffer:
    return pa.py_buffer(struct.pack(f"<{len(values)}{'q' if wide else 'i'}", *values))


def lying_columns():
    """Columns pyarrow lets be made (its checks on making one are not
    full) whose offsets run backwards or below zero: every row between
    would be read from outside the column."""
    n = len(ROW)
    data = pa.py_buffer(ROW * 4)
    return {
        "backwards": pa.Array.from_buffers(pa.string(), 3, [None, offsets([0, 3 * n, n, 4 * n]), data]),
        "below zero": pa.Array.from_buffers(pa.string(), 3, [None, offsets([0, -n, 2 * n, 4 * n]), data]),
        "large, backwards": pa.Array.from_buffers(
            pa.large_string(), 3, [None, offsets([0, 3 * n, n, 4 * n], wide=True), data]
        ),
        "backwards inside a slice": pa.Array.from_buffers(
            pa.string(), 4, [None, offsets([0, n, 2 * n, n, 4 * n]), data]
        ).slice(1, 3),
        "backwards after nulls": pa.Array.from_buffers(
            pa.string(), 3, [pa.py_buffer(b"\x05"), offsets([0, 3 * n, 0, 4 * n]), data], null_count=1
        ),
    }


@pytest.mark.parametrize("name", list(lying_columns()))
def test_offsets_backwards_are_a_value_error_not_a_crash(name):
    column = lying_columns()[name]
    s = sanitizer()
    with pytest.raises(ValueError, match="not a valid Arrow string array"):
        s.sanitize_arrow(column, "warehouse")
    # In a chunked column after good chunks: no column at all, nothing
    # counted (the caller gets all rows or an error).
    good = pa.array([event(2), event(3)], column.type)
    with pytest.raises(ValueError, match="not a valid Arrow string array"):
        s.sanitize_arrow(pa.chunked_array([good, column], column.type), "warehouse")
    assert s.take_report() == {}


def view(length: int, data: bytes = b"", index: int = 0, offset: int = 0) -> bytes:
    """One string_view slot: inline up to 12 bytes, else prefix, buffer
    index and offset."""
    if length <= 12:
        return struct.pack("<i12s", length, data[:length])
    return struct.pack("<i4sii", length, data[:4], index, offset)


def lying_views():
    data = pa.py_buffer(ROW)
    n = len(ROW)
    return {
        "past its buffer": [view(n, ROW), view(1000, ROW, 0, 8)],
        "far past its buffer": [view(100_000, ROW, 0, 1000)],
        "a buffer not there": [view(n, ROW, 5, 0)],
        "a negative buffer": [view(n, ROW, -1, 0)],
        "a negative offset": [view(n, ROW, 0, -64)],
    }, data


@pytest.mark.parametrize("name", list(lying_views()[0]))
def test_string_views_past_their_buffers_are_a_value_error_not_a_read(name):
    # Run apart: were a view read out of bounds, this process crashes or
    # sanitizes memory that is not the column's.
    code = f"""
import json, sys
sys.path.insert(0, {str(ROOT / 'tests' / 'python')!r})
import pyarrow as pa
import phimask
from test_arrow import lying_views, sanitizer
slots, data = lying_views()
views = pa.py_buffer(b"".join(slots[{name!r}]))
column = pa.Array.from_buffers(pa.string_view(), len(slots[{name!r}]), [None, views, data])
s = sanitizer()
for column in (column, pa.chunked_array([pa.array(["{{}}"], pa.string_view()), column])):
    try:
        s.sanitize_arrow(column, "warehouse")
    except ValueError as e:
        assert "not a valid Arrow string array" in str(e), e
    else:
        sys.exit("no error")
assert s.take_report() == {{}}
print("refused")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "refused"), done.stderr[-2000:]


def test_pyarrow_itself_refuses_offsets_past_the_data_and_short_buffers():
    """Offsets past the data, too few offsets, a validity buffer too
    short: pyarrow refuses to make such a column (a ValueError), so none
    reaches the engine."""
    n = len(ROW)
    data = pa.py_buffer(ROW * 2)
    makers = [
        lambda: pa.Array.from_buffers(pa.string(), 2, [None, offsets([0, n, 9 * n]), data]),
        lambda: pa.Array.from_buffers(pa.string(), 3, [None, offsets([0, n]), data]),
        lambda: pa.Array.from_buffers(pa.string(), 20, [pa.py_buffer(b"\x01"), offsets([0] + [n] * 20), data], null_count=1),
        lambda: pa.Array.from_buffers(pa.large_string(), 2, [None, offsets([0, n, 1 << 40], wide=True), data]),
        lambda: pa.Array.from_buffers(pa.string(), 2, [None, offsets([0, n, 2 * n]), data], offset=1),
    ]
    s = sanitizer()
    for make in makers:
        with pytest.raises(ValueError):
            s.sanitize_arrow(make(), "warehouse")
    assert s.take_report() == {}


def test_rows_the_validity_bits_mark_null_stay_null_whatever_null_count_claims():
    """A column made with null_count=0 but validity bits marking a row
    null: the row is null (never read), as Arrow's bits, not the count,
    say what is present."""
    planted = json.dumps({"type": "track", "event": "Viewed", "properties": {"note": "Jane Doe HIV positive"}}).encode()
    data = ROW + planted + ROW
    n, m = len(ROW), len(planted)
    column = pa.Array.from_buffers(
        pa.string(), 3, [pa.py_buffer(b"\x05"), offsets([0, n, n + m, 2 * n + m]), pa.py_buffer(data)], null_count=0
    )
    s = sanitizer()
    out = s.sanitize_arrow(column, "warehouse")
    assert out[1].as_py() is None
    assert out[0].as_py() is not None and out[2].as_py() is not None
    assert s.take_report()["warehouse"]["sent"] == 2
