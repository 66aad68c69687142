"""The Python wheel's speed (part of `make bench`), beside the phimask command.

The same NDJSON as benches/cli.mjs: the generated corpus's realistic
slices (benches/corpus.mjs, seed 1), each slice's events repeated to a
file. For policies/production.json and two destinations, per slice:
`sanitize_ndjson` on the file's bytes, `sanitize_arrow` on the same lines
as a pyarrow string column in 10,000-row chunks (Spark's batch size), a
per-row `sanitize()` loop for contrast, `phimask sanitize` on the same
file, and two threads each given half (the engine runs without the GIL).
MB/s are of input bytes, wall time, median of 5 rounds in turns; one
thread is one core. Then Spark: `mapInArrow` over a larger NDJSON file
in local[1] and local[2], the action timed after a warm-up job (so no
JVM start-up), beside the same job passing the batches through
unsanitized, with the CPU time of the JVM and its Python workers.

Every figure's output is checked first: the wheel's NDJSON against the
command's bytes, the Arrow column, the threads' halves and the per-row
loop against the wheel's NDJSON, Spark's rows against the NDJSON's count
and bytes. A mismatch stops the bench.

    make bench    (or: python benches/wheel.py, with the wheel installed)

Environment: PHIMASK (the command; default target/release/phimask),
WHEEL_BENCH_MB (bytes of each slice's file, default 24), SPARK_BENCH_MB
(Spark's input, default 48), WHEEL_BENCH_SPARK=0 to leave Spark out.
"""

import os
import platform
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICY = os.path.join(ROOT, "policies", "production.json")
# The key benches/bench.mjs masks with.
KEY = "benchmark-key-0123456789abcdefghijklmnop"
DESTINATIONS = ["amplitude", "mixpanel"]
# benches/cli.mjs's realistic slices.
SLICES = [300, 1024, 32000]
SPARK_SLICE = 1024
CHUNK_ROWS = 10_000
ROUNDS = 5
TARGET = 100  # MB/s per core, NDJSON and Arrow
WORK = os.path.join(ROOT, "dist", "bench", "wheel")

try:
    import phimask
    import pyarrow as pa
except ImportError as e:
    sys.exit(
        f"benches/wheel.py: {e}: build the wheel (make wheel) and install it "
        "with pyarrow into this Python (pip install dist/phimask-*.whl)"
    )


def write_corpus(file_bytes):
    """Writes each realistic slice's events, repeated to about file_bytes,
    as the command's bench does (benches/cli.mjs); returns {size: path}."""
    os.makedirs(WORK, exist_ok=True)
    sizes = sorted(set(SLICES + [SPARK_SLICE]))
    script = (
        "import { corpus } from './benches/corpus.mjs';"
        "import { writeFileSync } from 'node:fs';"
        "const [dir, bytes, sizes] = process.argv.slice(1);"
        "for (const s of corpus(1)) {"
        "  if (s.shape !== 'realistic' || !sizes.split(',').includes(String(s.bytes))) continue;"
        "  const block = s.events.join('\\n') + '\\n';"
        "  const n = Math.max(1, Math.round(Number(bytes) / block.length));"
        "  writeFileSync(`${dir}/realistic-${s.bytes}.ndjson`, block.repeat(n));"
        "}"
    )
    subprocess.run(
        ["node", "--input-type=module", "-e", script, WORK, str(file_bytes), ",".join(map(str, sizes))],
        cwd=ROOT,
        check=True,
    )
    return {size: os.path.join(WORK, f"realistic-{size}.ndjson") for size in sizes}


def rate(nbytes, seconds):
    return nbytes / 1e6 / seconds


def fail(what):
    sys.exit(f"benches/wheel.py: {what}: the figures would not be of the same output, stopped")


def command(path, destination, out="/dev/null"):
    run = subprocess.run(
        [PHIMASK, "sanitize", "--quiet", "-p", POLICY, "-d", destination, "-o", out, path],
        env={**os.environ, "PHI_MASKING_KEY": KEY},
        capture_output=True,
    )
    if run.returncode != 0:
        fail(f"phimask sanitize -d {destination} exited {run.returncode}")


def arrow_column(lines):
    """The lines as a pyarrow string column in 10,000-row chunks."""
    return pa.chunked_array(
        [pa.array(lines[i : i + CHUNK_ROWS], pa.string()) for i in range(0, len(lines), CHUNK_ROWS)],
        type=pa.string(),
    )


def as_ndjson(column):
    """A sanitized column as the NDJSON the same rows give: the rows sent,
    a line each."""
    rows = column.drop_null().to_pylist()
    return "".join(r + "\n" for r in rows).encode()


def in_threads(jobs):
    """Runs each job in its own thread at once; returns (seconds, CPU
    seconds of the process, results)."""
    results = [None] * len(jobs)
    ready = threading.Barrier(len(jobs) + 1)

    def run(i):
        ready.wait()
        results[i] = jobs[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    ready.wait()
    start, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    return time.perf_counter() - start, time.process_time() - cpu, results


def slice_rows(sanitizer, path, destination):
    with open(path, "rb") as f:
        data = f.read()
    n = len(data)
    # The command's bytes, then the wheel's: the same or no figures.
    expected_path = os.path.join(WORK, "command.out")
    command(path, destination, expected_path)
    with open(expected_path, "rb") as f:
        expected = f.read()
    os.remove(expected_path)
    ndjson = sanitizer.sanitize_ndjson(data, destination)
    if ndjson != expected:
        fail(f"sanitize_ndjson differs from phimask sanitize ({os.path.basename(path)}, {destination})")

    lines = data.decode().split("\n")[:-1]
    column = arrow_column(lines)
    if as_ndjson(sanitizer.sanitize_arrow(column, destination)) != ndjson:
        fail(f"sanitize_arrow differs from sanitize_ndjson ({destination})")

    # The same halves of the lines for both, for the threads.
    m = len(lines) // 2
    cut = len("".join(line + "\n" for line in lines[:m]).encode())
    halves = [data[:cut], data[cut:]]
    column_halves = [arrow_column(lines[:m]), arrow_column(lines[m:])]

    def loop():
        # From the file's bytes, like the others: the split is part of it.
        out = []
        for line in data.split(b"\n")[:-1]:
            try:
                sent = sanitizer.sanitize(line, destination)
            except phimask.EventError:
                continue
            if sent is not None:
                out.append(sent)
        return out

    start = time.perf_counter()
    looped = loop()
    t_loop = time.perf_counter() - start
    if "".join(r + "\n" for r in looped).encode() != ndjson:
        fail(f"the sanitize() loop differs from sanitize_ndjson ({destination})")

    def two(make, parts, join, name):
        seconds, cpu, outs = in_threads([lambda p=p: make(p) for p in parts])
        if join(outs) != ndjson:
            fail(f"two threads' {name} differs from one ({destination})")
        return seconds, cpu

    def timed(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start, None

    # In turns, round after round, so that a slow spell of the shared
    # machine falls on all of them alike; medians.
    ways = {
        "command": lambda: timed(lambda: command(path, destination)),
        "ndjson": lambda: timed(lambda: sanitizer.sanitize_ndjson(data, destination)),
        "arrow": lambda: timed(lambda: sanitizer.sanitize_arrow(column, destination)),
        "2 ndjson": lambda: two(lambda h: sanitizer.sanitize_ndjson(h, destination), halves, b"".join, "sanitize_ndjson"),
        "2 arrow": lambda: two(
            lambda c: sanitizer.sanitize_arrow(c, destination),
            column_halves,
            lambda outs: b"".join(as_ndjson(o) for o in outs),
            "sanitize_arrow",
        ),
    }
    runs = {way: [] for way in ways}
    for _ in range(ROUNDS):
        for way, run in ways.items():
            runs[way].append(run())
    med = {way: sorted(r, key=lambda x: x[0])[ROUNDS // 2] for way, r in runs.items()}
    t_cmd, t_ndjson, t_arrow = med["command"][0], med["ndjson"][0], med["arrow"][0]
    r2_ndjson, busy_ndjson = rate(n, med["2 ndjson"][0]), med["2 ndjson"][1] / med["2 ndjson"][0]
    r2_arrow, busy_arrow = rate(n, med["2 arrow"][0]), med["2 arrow"][1] / med["2 arrow"][0]

    r_ndjson, r_arrow, r_cmd = rate(n, t_ndjson), rate(n, t_arrow), rate(n, t_cmd)
    return {
        "slice": f"realistic {os.path.basename(path).split('-')[1].split('.')[0]}",
        "destination": destination,
        "MB": f"{n / 1e6:.1f}",
        "lines": len(lines),
        "sanitize_ndjson": r_ndjson,
        "sanitize_arrow": r_arrow,
        "sanitize() loop": rate(n, t_loop),
        "phimask sanitize": r_cmd,
        "ndjson/command": f"{r_ndjson / r_cmd:.2f}",
        "arrow/command": f"{r_arrow / r_cmd:.2f}",
        "ndjson MB/s": r2_ndjson,
        "ndjson × 1 thread": f"{r2_ndjson / r_ndjson:.2f}",
        "ndjson cores busy": f"{busy_ndjson:.2f}",
        "arrow MB/s": r2_arrow,
        "arrow × 1 thread": f"{r2_arrow / r_arrow:.2f}",
        "arrow cores busy": f"{busy_arrow:.2f}",
    }


def table(rows, columns):
    def cell(v):
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    cells = [[cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(v.rjust(w) for v, w in zip(r, widths)) + " |")


def tree_cpu_seconds():
    """CPU seconds of this process's descendants (Spark's JVM and its
    Python workers), with those of their children that ended; None where
    /proc cannot tell."""
    try:
        parent, cpu = {}, {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(pid)] = int(fields[1])
            cpu[int(pid)] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        mine, total = {os.getpid()}, 0
        for pid in sorted(parent):
            chain, p = [], pid
            while p in parent and p not in mine and p > 1:
                chain.append(p)
                p = parent[p]
            if p in mine:
                mine.update(chain)
                total += sum(cpu[c] for c in chain)
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def spark_rows(path, expected):
    """mapInArrow over `path` in local[1] then local[2]: the noop write's
    wall time after a warm-up job, median of 3; the same job passing the
    batches through unsanitized beside it. `expected` is the wheel's NDJSON
    of the file, which the sanitized rows must add up to."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    with open(POLICY, encoding="utf-8") as f:
        policy = f.read()
    n = os.path.getsize(path)
    destination = DESTINATIONS[0]

    def sanitized(batches):
        # The recipe's shape: one Sanitizer per partition, in the executor.
        import phimask
        import pyarrow as pa

        s = phimask.Sanitizer(policy, KEY)
        for b in batches:
            yield pa.RecordBatch.from_arrays([s.sanitize_arrow(b.column(0), destination)], names=["value"])

    def passed(batches):
        yield from batches

    rows = []
    for cores in (1, 2):
        spark = (
            SparkSession.builder.master(f"local[{cores}]")
            .appName("phimask-bench")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            # The same partitions (8 MB, under 10,000 rows a batch) for both.
            .config("spark.sql.files.maxPartitionBytes", str(8 << 20))
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(CHUNK_ROWS))
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        try:
            text = spark.read.text(path)
            partitions = text.rdd.getNumPartitions()
            for name, fn in (("sanitize_arrow", sanitized), ("batches passed through", passed)):
                df = text.mapInArrow(fn, "value string")

                def job():
                    df.write.format("noop").mode("overwrite").save()

                job()  # warm-up: Python workers started, classes loaded
                runs = []
                for _ in range(3):
                    cpu, start = tree_cpu_seconds(), time.perf_counter()
                    job()
                    seconds, after = time.perf_counter() - start, tree_cpu_seconds()
                    runs.append((seconds, None if cpu is None or after is None else after - cpu))
                seconds, cpu = sorted(runs, key=lambda r: r[0])[1]
                if fn is sanitized:
                    count, total = df.selectExpr("count(value)", "sum(octet_length(value))").first()
                    if count != expected.count(b"\n") or total + count != len(expected):
                        fail("Spark's sanitized rows differ from sanitize_ndjson's lines")
                rows.append(
                    {
                        "Spark": f"local[{cores}]",
                        "job": name,
                        "partitions": partitions,
                        "MB": f"{n / 1e6:.1f}",
                        "s": f"{seconds:.2f}",
                        "MB/s": rate(n, seconds),
                        "CPU s": "–" if cpu is None else f"{cpu:.2f}",
                        "cores busy": "–" if cpu is None else f"{cpu / seconds:.2f}",
                        "MB per CPU s": "–" if not cpu else rate(n, cpu),
                    }
                )
        finally:
            spark.stop()
    one = {r["job"]: r["MB/s"] for r in rows if r["Spark"] == "local[1]"}
    for r in rows:
        r["× local[1]"] = f"{r['MB/s'] / one[r['job']]:.2f}"
    return rows


def main():
    global PHIMASK
    PHIMASK = os.environ.get("PHIMASK", os.path.join(ROOT, "target", "release", "phimask"))
    if not os.access(PHIMASK, os.X_OK):
        sys.exit(f"benches/wheel.py: no command at {PHIMASK}: cargo build --release --bin phimask, or set PHIMASK")
    started = time.perf_counter()
    load = os.getloadavg()[0]
    mb = float(os.environ.get("WHEEL_BENCH_MB", "24"))
    spark_mb = float(os.environ.get("SPARK_BENCH_MB", "48"))
    with open(POLICY, encoding="utf-8") as f:
        sanitizer = phimask.Sanitizer(f.read(), KEY)
    print(
        f"the Python wheel: phimask {phimask.__version__} ({os.path.dirname(phimask.__file__)}), "
        f"CPython {platform.python_version()}, pyarrow {pa.__version__}, {os.cpu_count()} cores; "
        f"policies/production.json, the corpus's realistic slices (benches/cli.mjs's), MB/s of input, median of 5 rounds in turns"
    )
    files = write_corpus(mb * 1e6)
    try:
        rows = [slice_rows(sanitizer, files[size], d) for size in SLICES for d in DESTINATIONS]
        print("one thread (one core):")
        table(
            rows,
            ["slice", "destination", "MB", "lines", "sanitize_ndjson", "sanitize_arrow", "sanitize() loop",
             "phimask sanitize", "ndjson/command", "arrow/command"],
        )
        print("two threads, one a half (the engine runs without the GIL); cores busy = the process's CPU s / wall s:")
        table(
            rows,
            ["slice", "destination", "ndjson MB/s", "ndjson × 1 thread", "ndjson cores busy",
             "arrow MB/s", "arrow × 1 thread", "arrow cores busy"],
        )
        worst = min(min(r["sanitize_ndjson"], r["sanitize_arrow"]) for r in rows)
        verdict = "met" if worst >= TARGET else f"missed by {(1 - worst / TARGET) * 100:.0f}%"
        print(f"the wheel per core, NDJSON and Arrow (slowest): {worst:.1f} MB/s, target ≥ {TARGET} — {verdict}")
        scaling = [float(r[f"{k} × 1 thread"]) for r in rows for k in ("ndjson", "arrow")]
        print(f"two threads against one: {min(scaling):.2f}–{max(scaling):.2f} ×")

        if os.environ.get("WHEEL_BENCH_SPARK", "1") != "0":
            spark_file = os.path.join(WORK, "spark.ndjson")
            with open(files[SPARK_SLICE], "rb") as f:
                block = f.read()
            with open(spark_file, "wb") as f:
                for _ in range(max(1, round(spark_mb * 1e6 / len(block)))):
                    f.write(block)
            with open(spark_file, "rb") as f:
                expected = sanitizer.sanitize_ndjson(f.read(), DESTINATIONS[0])
            print(
                f"Spark mapInArrow, realistic {SPARK_SLICE} for {DESTINATIONS[0]}: a noop write after a warm-up job, "
                "median of 3 (wall time); CPU s of the JVM and its Python workers:"
            )
            table(
                spark_rows(spark_file, expected),
                ["Spark", "job", "partitions", "MB", "s", "MB/s", "× local[1]", "CPU s", "cores busy", "MB per CPU s"],
            )
    finally:
        for path in os.listdir(WORK):
            if path.endswith(".ndjson"):
                os.remove(os.path.join(WORK, path))
    print(
        f"the wheel's bench took {time.perf_counter() - started:.0f} s; "
        f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after (other work shares the cores)"
    )


if __name__ == "__main__":
    main()
