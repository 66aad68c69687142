"""The backfill recipes in examples/backfill/, run as a user runs them (a
subprocess with the key in the environment or a file) on generated archives
with hostile lines, give what `phimask sanitize` writes for the same input:
the same bytes where the engine keeps the order, the same lines where Spark
does not; and no planted PHI, nor the key, in any output or message."""

import gzip
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import KEY, ROOT, cli_sanitize

RECIPES = ROOT / "examples" / "backfill"
POLICY = ROOT / "policies" / "production.json"
DESTINATION = "amplitude"
LIMIT = 32 * 1024

# PHI planted where no detector recognises it (free text), and identifiers
# the policy masks: none of it may come out.
PLANTED = [b"Jane Doe", b"HIV positive", b"jane.doe@example.com", b"617 555 0100", b"1984-07-19", b"patient-"]


# ---- what the command writes ------------------------------------------------


def command_sanitize(data: bytes) -> bytes:
    """What `phimask sanitize --policy POLICY -d amplitude` writes for data."""
    return cli_sanitize(POLICY, DESTINATION, data)


def command_rows(rows) -> list:
    """The command's lines for a column's rows (text or bytes), one row a
    line (null rows have no line; they give nothing, as a blank line does)."""
    given = [r.encode() if isinstance(r, str) else r for r in rows if r is not None]
    assert not any(b"\n" in r for r in given), "a row with \\n would be two lines to the command"
    return command_sanitize(b"".join(r + b"\n" for r in given)).decode().splitlines()


def assert_clean(*outputs: bytes):
    for out in outputs:
        for phi in PLANTED + [KEY.encode()]:
            assert phi not in out, f"{phi!r} came out"


# ---- the archive --------------------------------------------------------------


def event(rng: random.Random, i: int) -> dict:
    patient = f"patient-{rng.randrange(10**6):06d}"
    kind = i % 6
    base = {"userId": patient, "anonymousId": f"anon-{i}", "messageId": f"m-{i}", "timestamp": "2026-11-22T14:05:11.000Z"}
    context = {
        "ip": f"203.0.113.{rng.randrange(256)}",
        "page": {
            "url": f"https://portal.clinic.example/patients/{patient}/appointments/new?email=jane.doe%40example.com&utm_source=mail",
            "path": f"/patients/{patient}/appointments/new",
            "title": "Results for Jane Doe: HIV positive",
        },
        "traits": {"name": "Jane Doe", "email": "jane.doe@example.com", "birthday": "1984-07-19"},
    }
    if kind == 0:
        return {**base, "type": "track", "event": "Booked Cardiology Appointment", "context": context, "properties": {
            "appointment_type": "new-patient", "department": "cardiology", "value": rng.randrange(500),
            "email": "jane.doe@example.com", "phone": "+1 617 555 0100", "zip": "02118-3301",
            "notes": "Jane Doe says she is HIV positive"}}
    if kind == 1:
        return {**base, "type": "track", "event": "Order Completed", "properties": {
            "value": rng.randrange(100), "currency": "USD", "comment": "ship to Jane Doe",
            "products": [{"sku": f"sku-{i}", "quantity": 1, "name": "HIV positive support kit"}]}}
    if kind == 2:
        return {**base, "type": "track", "event": "HIV Testing", "properties": {"step": "intro", "reason": "HIV positive partner"}}
    if kind == 3:
        return {**base, "type": "page", "name": "Services", "context": context, "properties": {"title": "Jane Doe"}}
    if kind == 4:
        return {**base, "type": "identify", "traits": {"name": "Jane Doe", "email": "jane.doe@example.com",
                                                      "birthday": "1984-07-19", "plan": "gold", "note": "HIV positive"}}
    return {**base, "type": "track", "event": "Symptom Logged", "properties": {"symptom": "HIV positive, Jane Doe"}}


def hostile_lines() -> list:
    """Lines no clean archive has: each refused, blank, or sent without its
    PHI."""
    return [
        # Invalid JSON with PHI inside.
        b'{"type":"track","event":"Order Completed","userId":"patient-1","properties":{"notes":"Jane Doe HIV positive"',
        b'{"type":"track","event":"Order Completed","properties":{"value":1}} Jane Doe is HIV positive',
        # A lone \r is white space between tokens: one event, not two lines.
        b'{"type":"track",\r"event":"Order Completed",\r"userId":"patient-7","properties":{"value":5,"note":"Jane Doe"}}',
        # Blank lines.
        b"",
        b"  \t ",
        # A raw NUL (invalid JSON) and an escaped one (valid).
        b'{"type":"track","event":"Order Completed","properties":{"notes":"Jane Doe\x00HIV positive"}}',
        b'{"type":"track","event":"Order Completed","userId":"patient-8","properties":{"value":2,"notes":"Jane Doe\\u0000HIV positive"}}',
        # Over 32 KiB: refused whole, however it ends.
        json.dumps({"type": "track", "event": "Order Completed", "userId": "patient-9",
                    "properties": {"value": 3, "notes": "Jane Doe is HIV positive. " * 1500}}).encode(),
    ]


NOT_UTF8 = b'{"type":"track","event":"Order Completed","userId":"patient-10","properties":{"value":4,"notes":"Jane Doe \xff\xfe HIV positive"}}'


# An event of exactly 32 KiB (white space inside) and then CRLF: the \r is
# the line's end, not a byte over the limit.
AT_LIMIT = b'{"type":"track","event":"Order Completed","userId":"patient-11","properties":{"value":6,"notes":"Jane Doe"}'
AT_LIMIT += b" " * (LIMIT - len(AT_LIMIT) - 1) + b"}"


def ndjson(seed: int, count: int, not_utf8: bool = True) -> bytes:
    """NDJSON of count generated events and the hostile lines among them,
    some lines ending in CRLF, the last one without a line end."""
    rng = random.Random(seed)
    lines = [json.dumps(event(rng, i), separators=rng.choice([(",", ":"), (", ", ": ")])).encode() for i in range(count)]
    lines = [line + rng.choice([b"\n", b"\n", b"\r\n"]) for line in lines]
    extra = [line + b"\n" for line in hostile_lines()] + [AT_LIMIT + b"\r\n"] + ([NOT_UTF8 + b"\r\n"] if not_utf8 else [])
    for line in extra:
        lines.insert(rng.randrange(len(lines) + 1), line)
    return b"".join(lines).rstrip(b"\r\n")


def parquet_rows(seed: int, count: int) -> list:
    """A column of JSON strings: generated events, the hostile ones that are
    text, nulls, a row ending in \\r."""
    rng = random.Random(seed)
    rows = [json.dumps(event(rng, i)) for i in range(count)]
    rows += [line.decode() for line in hostile_lines()] + [None, None, json.dumps(event(rng, 1)) + "\r"]
    rng.shuffle(rows)
    return rows


# ---- running a recipe ---------------------------------------------------------


def run(recipe: str, *args, env=None, cwd=None, **kwargs) -> subprocess.CompletedProcess:
    """The recipe as a user runs it, with the key in PHI_MASKING_KEY unless
    env says otherwise; its stdout and stderr never show PHI or the key."""
    env = {**os.environ, "PHI_MASKING_KEY": KEY, **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}
    done = subprocess.run(
        [sys.executable, str(RECIPES / recipe), *map(str, args)],
        capture_output=True, env=env, cwd=cwd, check=False, **kwargs,
    )
    assert_clean(done.stdout, done.stderr)
    return done


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-3000:]
    return done


# ---- Spark --------------------------------------------------------------------


def test_spark_ndjson_and_parquet_with_the_key_read_on_executors(tmp_path):
    if importlib.util.find_spec("pyspark") is None:
        pytest.fail("the Spark recipe needs pyspark: pip install -r tests/python/requirements.txt")
    if shutil.which("java") is None:
        pytest.fail("the Spark recipe needs a Java runtime: apt-get install openjdk-17-jre-headless")
    data = ndjson(seed=1, count=200)
    (tmp_path / "events.ndjson").write_bytes(data)
    rows = parquet_rows(seed=2, count=100)
    pq.write_table(pa.table({"event": pa.array(rows, pa.string())}), tmp_path / "events.parquet")
    # The key from a secret-manager hook the executors call (no key in the
    # environment): the hook logs each process that calls it.
    (tmp_path / "vault.py").write_text(
        "import os\n"
        "def masking_key():\n"
        "    with open(os.environ['VAULT_LOG'], 'a') as log:\n"
        "        log.write(f'{os.getpid()}\\n')\n"
        "    with open(os.environ['VAULT_SECRET'], 'rb') as f:\n"
        "        return f.read()\n"
    )
    (tmp_path / "secret").write_bytes(KEY.encode())
    python = sys.executable
    env = {
        "PHI_MASKING_KEY": None,
        "PYTHONPATH": str(tmp_path),
        "VAULT_SECRET": str(tmp_path / "secret"),
        "VAULT_LOG": str(tmp_path / "vault.log"),
        # Executors start their own Python: this one, which has the wheel.
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_SUBMIT_ARGS": "--master local[2] --conf spark.ui.enabled=false "
        "--conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 pyspark-shell",
    }
    done = ok(run(
        "spark.py", "--policy", POLICY, "-d", DESTINATION, "--key-hook", "vault:masking_key",
        "--ndjson", "events.ndjson", "--parquet", "events.parquet", "--column", "event", "--out", "out",
        env=env, cwd=tmp_path,
    ))
    parts = sorted((tmp_path / "out").glob("part-*"))
    assert parts, done.stderr.decode("utf-8", "replace")[-3000:]
    written = b"".join(p.read_bytes() for p in parts)
    assert_clean(written)
    expected = command_sanitize(data).decode().splitlines() + command_rows(rows)
    assert len(expected) > 150
    assert Counter(written.decode().splitlines()) == Counter(expected)
    # Read on the driver (its check) and in the executors' own processes.
    callers = set((tmp_path / "vault.log").read_text().split())
    assert len(callers) >= 2


# ---- DuckDB -------------------------------------------------------------------


def test_duckdb_udf_writes_the_commands_lines_in_order(tmp_path):
    rows = parquet_rows(seed=3, count=300)
    # Another column beside the events: it must not be carried through.
    pq.write_table(pa.table({"id": list(range(len(rows))), "email": ["jane.doe@example.com"] * len(rows),
                             "event": pa.array(rows, pa.string())}), tmp_path / "in.parquet")
    done = ok(run("duckdb_udf.py", "--policy", POLICY, "-d", DESTINATION, "--column", "event",
                  tmp_path / "in.parquet", tmp_path / "out.parquet"))
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == ["event"]
    expected = command_rows(rows)
    assert table.column("event").to_pylist() == expected
    assert_clean((tmp_path / "out.parquet").read_bytes())
    # Each row counted once.
    assert f"{DESTINATION}: sent={len(expected)} ".encode() in done.stdout


def test_duckdb_udf_reads_a_blob_column_and_leaves_out_bytes_that_are_not_utf8(tmp_path):
    rows = [r.encode() if r is not None else None for r in parquet_rows(seed=10, count=200)]
    rows.insert(77, NOT_UTF8)
    pq.write_table(pa.table({"event": pa.array(rows, pa.binary())}), tmp_path / "in.parquet")
    ok(run("duckdb_udf.py", "--policy", POLICY, "-d", DESTINATION, tmp_path / "in.parquet", tmp_path / "out.parquet"))
    assert pq.read_table(tmp_path / "out.parquet").column("event").to_pylist() == command_rows(rows)
    assert_clean((tmp_path / "out.parquet").read_bytes())


# ---- Polars -------------------------------------------------------------------


def test_polars_ndjson_gives_the_commands_bytes(tmp_path):
    data = ndjson(seed=4, count=300, not_utf8=False)
    (tmp_path / "in.ndjson").write_bytes(data)
    done = ok(run("polars_batches.py", "--policy", POLICY, "-d", DESTINATION, tmp_path / "in.ndjson", tmp_path / "out.ndjson"))
    written = (tmp_path / "out.ndjson").read_bytes()
    expected = command_sanitize(data)
    assert written == expected
    assert_clean(written)
    # The counts it prints are of each line once (Polars may call a
    # batch's function more than once; the audit must not say so).
    sent = expected.count(b"\n")
    assert f"{DESTINATION}: sent={sent} ".encode() in done.stdout


def test_polars_parquet_gives_the_commands_lines_in_order(tmp_path):
    rows = parquet_rows(seed=5, count=300)
    pq.write_table(pa.table({"payload": pa.array(rows, pa.string())}), tmp_path / "in.parquet")
    (tmp_path / "masking.key").write_bytes(KEY.encode() + b"\n")
    done = ok(run("polars_batches.py", "--policy", POLICY, "-d", DESTINATION, "--column", "payload",
                  "--key-file", tmp_path / "masking.key", tmp_path / "in.parquet", tmp_path / "out.parquet",
                  env={"PHI_MASKING_KEY": None}))
    expected = command_rows(rows)
    assert pq.read_table(tmp_path / "out.parquet").column("event").to_pylist() == expected
    assert f"{DESTINATION}: sent={len(expected)} ".encode() in done.stdout
    assert_clean((tmp_path / "out.parquet").read_bytes())


def test_polars_stops_on_bytes_that_are_not_utf8_and_writes_nothing(tmp_path):
    (tmp_path / "in.ndjson").write_bytes(ndjson(seed=6, count=50))
    done = run("polars_batches.py", "--policy", POLICY, "-d", DESTINATION, tmp_path / "in.ndjson", tmp_path / "out.ndjson")
    assert done.returncode != 0
    assert b"UTF-8" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ndjson"]


# ---- Segment's S3 layout ----------------------------------------------------


def segment_archive(root: Path) -> dict:
    """segment-logs/{source-id}/{received-day}/*.gz, as Segment's S3
    destination writes it: path -> the NDJSON inside."""
    files = {}
    for s, source in enumerate(["src-web", "src-ios"]):
        for d, day in enumerate(["1732233600000", "1732320000000"]):
            for n in range(2):
                seed = 100 + 10 * s + 4 * d + n
                files[f"segment-logs/{source}/{day}/{day[:10]}.{seed:04x}.gz"] = ndjson(seed, count=40)
    files["segment-logs/src-ios/1732320000000/empty.gz"] = b""
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data))
    return files


def test_segment_s3_layout_file_by_file_with_counts(tmp_path):
    files = segment_archive(tmp_path / "archive")
    key_file = tmp_path / "masking.key"
    # As an editor on Windows saves it: the line end is not the key's.
    key_file.write_bytes(KEY.encode() + b"\r\n")
    # Small blocks: lines, CRLFs and the 32 KiB line cross their edges.
    done = ok(run("segment_s3.py", "--policy", POLICY, "-d", DESTINATION, "--key-file", key_file,
                  "--block-bytes", 4096, tmp_path / "archive", tmp_path / "out", env={"PHI_MASKING_KEY": None}))
    out = tmp_path / "out"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(files)
    report = done.stdout.decode().splitlines()
    sent_total = 0
    for relative, data in files.items():
        written = gzip.decompress((out / relative).read_bytes())
        expected = command_sanitize(data)
        assert written == expected, relative
        assert_clean(written)
        sent = expected.count(b"\n")
        sent_total += sent
        # Refused: the two invalid JSON lines, the raw NUL, the 32 KiB and
        # the non-UTF-8 one.
        counts = next(line for line in report if line.startswith(relative + " "))
        assert f" sent={sent} " in counts and f" refused={5 if data else 0} " in counts, counts
    assert report[-1].startswith(f"{len(files)} files sent={sent_total} ")


def test_segment_s3_stops_at_a_truncated_file_and_leaves_no_part_of_it(tmp_path):
    day = tmp_path / "archive" / "segment-logs" / "src" / "1732233600000"
    day.mkdir(parents=True)
    (day / "a.gz").write_bytes(gzip.compress(ndjson(seed=8, count=30)))
    whole = gzip.compress(ndjson(seed=9, count=300))
    (day / "b.gz").write_bytes(whole[: len(whole) // 2])
    done = run("segment_s3.py", "--policy", POLICY, "-d", DESTINATION, "--block-bytes", 4096,
               tmp_path / "archive", tmp_path / "out")
    assert done.returncode != 0
    written = tmp_path / "out" / "segment-logs" / "src" / "1732233600000"
    assert sorted(p.name for p in written.iterdir()) == ["a.gz"]


def test_segment_s3_refuses_to_write_over_or_inside_its_archive(tmp_path):
    """OUT the archive itself would overwrite the raw files with sanitized
    ones (and back); nested either way, one would be read as the other."""
    files = segment_archive(tmp_path / "archive")
    before = {r: (tmp_path / "archive" / r).read_bytes() for r in files}
    for out in (tmp_path / "archive", tmp_path / "archive" / "clean", tmp_path):
        done = run("segment_s3.py", "--policy", POLICY, "-d", DESTINATION, tmp_path / "archive", out)
        assert done.returncode != 0 and b"outside ARCHIVE" in done.stderr, out
    assert {r: (tmp_path / "archive" / r).read_bytes() for r in files} == before
    assert not (tmp_path / "archive" / "clean").exists()


def test_segment_s3_never_holds_an_endless_line(tmp_path):
    """A line of 256 MiB with no end is refused as too large while the
    recipe runs under a 200 MiB address-space limit."""
    archive = tmp_path / "archive" / "segment-logs" / "src" / "1732233600000"
    archive.mkdir(parents=True)
    head = b'{"type":"track","event":"Order Completed","userId":"u1","properties":{"value":1}}\n'
    with gzip.open(archive / "big.gz", "wb", compresslevel=1) as f:
        f.write(head)
        f.write(b'{"notes":"Jane Doe HIV positive ' + b" " * (1 << 20))
        for _ in range(255):
            f.write(b" " * (1 << 20))

    def limit():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (200 << 20, 200 << 20))

    done = ok(run("segment_s3.py", "--policy", POLICY, "-d", DESTINATION, "--block-bytes", 1 << 20,
                  tmp_path / "archive", tmp_path / "out", preexec_fn=limit))
    written = gzip.decompress((tmp_path / "out" / "segment-logs" / "src" / "1732233600000" / "big.gz").read_bytes())
    assert written == command_sanitize(head)
    assert b"sent=1 " in done.stdout and b" refused=1 " in done.stdout


# ---- the key and the policy -----------------------------------------------------


def test_every_recipe_refuses_a_key_given_as_an_argument(tmp_path):
    for recipe in ["spark.py", "duckdb_udf.py", "polars_batches.py", "segment_s3.py"]:
        done = run(recipe, "--policy", POLICY, "-d", DESTINATION, f"--key={KEY}", "in", "out", cwd=tmp_path)
        assert done.returncode != 0, recipe
        assert b"never an argument" in done.stderr, recipe
    assert list(tmp_path.iterdir()) == []


def test_every_recipe_stops_before_writing_without_a_key_or_with_an_unknown_destination(tmp_path):
    data = ndjson(seed=7, count=20, not_utf8=False)
    (tmp_path / "in.ndjson").write_bytes(data)
    pq.write_table(pa.table({"event": [json.dumps(event(random.Random(7), 0))]}), tmp_path / "in.parquet")
    (tmp_path / "archive" / "segment-logs" / "s" / "1").mkdir(parents=True)
    (tmp_path / "archive" / "segment-logs" / "s" / "1" / "a.gz").write_bytes(gzip.compress(data))
    runs = {
        "spark.py": ["--ndjson", "in.ndjson", "--out", "out"],
        "duckdb_udf.py": ["in.parquet", "out"],
        "polars_batches.py": ["in.ndjson", "out"],
        "segment_s3.py": ["archive", "out"],
    }
    for recipe, args in runs.items():
        for destination, env, why in [
            (DESTINATION, {"PHI_MASKING_KEY": None}, b"no masking key"),
            ("ga4", {}, b"unknown destination"),
        ]:
            done = run(recipe, "--policy", POLICY, "-d", destination, *args, env=env, cwd=tmp_path)
            assert done.returncode != 0, recipe
            assert why in done.stderr, recipe
            assert sorted(os.listdir(tmp_path)) == ["archive", "in.ndjson", "in.parquet"], recipe
