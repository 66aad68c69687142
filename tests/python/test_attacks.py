"""The wheel and the recipes under attack: a caller's slip or a hostile
column, file or schema that would have put PHI into an error message (and
so into a job's logs), or made the engine panic instead of refusing.

Each test plants PHI no detector recognises ("Jane Doe", "HIV positive")
where the attack puts it, and checks that no message shows it and that
what is refused is refused with an ordinary exception."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import phimask
from conftest import KEY, ROOT

POLICY = ROOT / "policies" / "production.json"
RECIPES = ROOT / "examples" / "backfill"
DESTINATION = "amplitude"
PLANTED = ("Jane Doe", "HIV positive", "123-45-6789")

EVENT = {
    "type": "track",
    "event": "Order Completed",
    "userId": "patient-004211",
    "messageId": "m-1",
    "properties": {"notes": "Jane Doe\r\nHIV positive\x00 ssn 123-45-6789", "value": 1},
}
LINE = json.dumps(EVENT)


def sanitizer() -> phimask.Sanitizer:
    return phimask.Sanitizer(POLICY.read_text(), KEY)


def refused(call, *args, error=Exception) -> BaseException:
    """The exception `call(*args)` raises: an ordinary one (a panic is a
    BaseException that `except Exception` lets through), showing no PHI."""
    try:
        call(*args)
    except BaseException as e:  # noqa: BLE001 - a panic must be caught to be seen
        assert isinstance(e, error), f"{type(e).__module__}.{type(e).__name__}: {e}"
        shown = f"{e} {e!r} {vars(e) if hasattr(e, '__dict__') else ''}"
        for phi in PLANTED:
            assert phi not in shown, f"{phi!r} in {shown!r}"
        return e
    pytest.fail(f"{call.__name__} did not refuse")


# ---- a caller's slip: the event where the destination goes ------------------


def test_an_event_given_as_the_destination_is_not_quoted_in_the_error():
    s = sanitizer()
    # The arguments swapped, as a positional call makes easy.
    for call, data in (
        (s.sanitize, DESTINATION),
        (s.sanitize_ndjson, DESTINATION.encode()),
        (s.sanitize_arrow, pa.array([DESTINATION])),
    ):
        for wrong in (LINE, "Jane Doe HIV positive", "jane.doe@example.com"):
            exc = refused(call, data, wrong, error=phimask.Error)
            assert exc.code == "unknown_destination"
            assert "jane.doe" not in str(exc)
            # Still says which names the policy has.
            assert "amplitude" in str(exc)
    # A name that looks like one is still named: the user sees their typo.
    exc = refused(s.sanitize, LINE, "amplitud", error=phimask.Error)
    assert '"amplitud"' in str(exc)
    assert s.take_report() == {}


# ---- columns of another type: their type names their fields ------------------


@pytest.mark.parametrize(
    "column",
    [
        pa.array([{"Jane Doe HIV positive": "x"}]),
        pa.array([[{"123-45-6789": 1}]]),
        pa.chunked_array([pa.array([{"Jane Doe HIV positive": 1}])]),
    ],
    ids=["struct", "list-of-struct", "chunked-struct"],
)
def test_a_column_of_another_type_is_refused_without_its_field_names(column):
    s = sanitizer()
    exc = refused(s.sanitize_arrow, column, DESTINATION, error=TypeError)
    assert "must hold strings" in str(exc)
    assert s.take_report() == {}


# ---- Arrow objects that lie about their buffers --------------------------------


class Bytes:
    """A stand-in for a pyarrow Buffer: claims `size` bytes, holds `data`."""

    def __init__(self, data: bytes, size=None):
        self.data, self.size = data, len(data) if size is None else size

    def slice(self, at, length):
        return Bytes(self.data[at : at + length])

    def to_pybytes(self):
        return self.data


def lying_array(length, buffers, offset=0):
    """A pyarrow StringArray subclass (so isinstance(pa.Array) holds) whose
    length, offset and buffers say what the test wants."""

    class Lying(pa.StringArray):
        type = pa.string()

        # pyarrow's own methods on an object made with __new__ alone read
        # a null pointer; pytest shows arguments with repr.
        def __repr__(self):
            return "<Lying StringArray>"

        def __len__(self):
            return length

        def buffers(self):
            return buffers

    Lying.offset = offset
    return Lying.__new__(Lying)


def real_buffers(rows):
    # Binary lays out its buffers as string does, and holds any bytes.
    return pa.array(rows, pa.binary()).buffers()


def lies():
    # An event, a row not UTF-8, and one over the engine's limit.
    rows = [LINE.encode(), b"\xff Jane Doe HIV positive\r", b"{" + b" " * phimask.MAX_EVENT_BYTES + b"}"]
    validity, offsets, data = real_buffers(rows)
    assert validity is None
    return {
        "offsets shorter than they claim": lying_array(3, [None, Bytes(offsets.to_pybytes()[:4], size=16), data]),
        "data shorter than it claims": lying_array(3, [None, offsets, Bytes(b"{}", size=1 << 20)]),
        "validity shorter than it claims": lying_array(3, [Bytes(b"", size=64), offsets, data]),
    }


@pytest.mark.parametrize("lie", list(lies()))
def test_arrays_lying_about_their_buffers_are_value_errors_not_panics(lie):
    s = sanitizer()
    array = lies()[lie]
    refused(s.sanitize_arrow, array, DESTINATION, error=ValueError)

    class Chunked(pa.ChunkedArray):
        type = pa.string()
        chunks = [array]

        def __repr__(self):
            return "<Chunked of a lying StringArray>"

    refused(s.sanitize_arrow, Chunked.__new__(Chunked), DESTINATION, error=ValueError)
    # Nothing was sanitized, so nothing is counted.
    assert s.take_report() == {}


def test_a_chunked_array_whose_chunks_are_not_arrays_is_a_type_error():
    s = sanitizer()
    validity, offsets, data = real_buffers([LINE.encode()])

    class Impostor:
        """Everything sanitize_arrow reads of a chunk, but no pyarrow Array."""

        type = pa.string()
        offset = 0

        def __len__(self):
            return 1

        def buffers(self):
            return [validity, Bytes(offsets.to_pybytes()[:4], size=8), data]

    class Chunked(pa.ChunkedArray):
        type = pa.string()
        chunks = [Impostor()]

        def __repr__(self):
            return "<Chunked of an impostor>"

    exc = refused(s.sanitize_arrow, Chunked.__new__(Chunked), DESTINATION, error=TypeError)
    assert "pyarrow Array or ChunkedArray" in str(exc)


# ---- recipes fed hostile files --------------------------------------------------


def run(recipe: str, *args) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(RECIPES / recipe), *map(str, args)],
        capture_output=True,
        env={**os.environ, "PHI_MASKING_KEY": KEY},
        check=False,
    )
    for phi in PLANTED + (KEY,):
        for out in (done.stdout, done.stderr):
            assert phi.encode() not in out, f"{phi!r} in {out[-2000:]!r}"
    return done


def test_segment_s3_names_a_file_that_is_not_gzip_without_quoting_it(tmp_path):
    day = tmp_path / "archive" / "segment-logs" / "src" / "1732233600000"
    day.mkdir(parents=True)
    (day / "a.gz").write_bytes(gzip.compress((LINE + "\n").encode()))
    # Plain NDJSON named .gz, first bytes PHI: gzip's message quotes them.
    (day / "b.gz").write_bytes(b"SS 123-45-6789 Jane Doe HIV positive\r\n" + LINE.encode() + b"\n")
    # Trailing bytes after a whole gzip member, PHI too.
    (day / "c.gz").write_bytes(gzip.compress((LINE + "\n").encode()) + b"SS Jane Doe\n")
    done = run("segment_s3.py", "--policy", POLICY, "-d", DESTINATION, tmp_path / "archive", tmp_path / "out")
    assert done.returncode != 0
    stderr = done.stderr.decode()
    assert "b'SS'" not in stderr and "SS" not in stderr
    # The user learns which of their files stopped the run.
    assert str(Path("segment-logs", "src", "1732233600000", "b.gz")) in stderr
    written = tmp_path / "out" / "segment-logs" / "src" / "1732233600000"
    assert sorted(p.name for p in written.iterdir()) == ["a.gz"]

    (day / "b.gz").unlink()
    done = run("segment_s3.py", "--policy", POLICY, "-d", DESTINATION, tmp_path / "archive", tmp_path / "out2")
    assert done.returncode != 0
    assert "SS" not in done.stderr.decode()
    assert "c.gz" in done.stderr.decode()
    assert sorted(p.name for p in (tmp_path / "out2" / written.relative_to(tmp_path / "out")).iterdir()) == ["a.gz"]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([{"Jane Doe HIV positive": "x"}]),
        pa.array([[{"Jane Doe": 1}]]),
    ],
    ids=["struct", "list-of-struct"],
)
def test_duckdb_refuses_a_column_of_another_type_without_its_field_names(tmp_path, column):
    pq.write_table(pa.table({"event": column}), tmp_path / "in.parquet")
    done = run("duckdb_udf.py", "--policy", POLICY, "-d", DESTINATION, tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert done.returncode != 0
    assert "not text (VARCHAR) or bytes (BLOB)" in done.stderr.decode()
    assert not (tmp_path / "out.parquet").exists()


def test_polars_refuses_a_column_of_another_type_without_its_field_names(tmp_path):
    pq.write_table(pa.table({"event": pa.array([{"Jane Doe HIV positive": "123-45-6789"}])}), tmp_path / "in.parquet")
    done = run("polars_batches.py", "--policy", POLICY, "-d", DESTINATION, tmp_path / "in.parquet", tmp_path / "out.ndjson")
    assert done.returncode != 0
    assert "must hold strings" in done.stderr.decode()
    assert not (tmp_path / "out.ndjson").exists()
