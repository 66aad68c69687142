"""Sanitize archived events with Spark: NDJSON text (.gz too) and/or a Parquet
column of JSON strings in; the destination's events out, as NDJSON text or as
Parquet with one column `event`: the lines `phimask sanitize` writes, in
Spark's order. Rows reach the engine as Arrow batches (`mapInArrow`), never
one by one in Python.

    PHI_MASKING_KEY=... python spark.py --policy policy.json -d amplitude \\
        --ndjson 'segment-logs/*/*/*.gz' --out sanitized/

On a cluster the same file runs with spark-submit (EMR, Dataproc) or as a
Databricks job, with the wheel installed on every node (a cluster library).
The Sanitizer is made inside the function each executor runs, with the key
read there: from PHI_MASKING_KEY in the executors' environment, from
--key-file (a path on every node, e.g. a mounted secret), or from --key-hook
MODULE:FUNCTION, your function that fetches it from a secret manager (AWS
Secrets Manager, GCP Secret Manager). The key never travels inside a task.
"""

import argparse
import importlib
import sys

import pyarrow as pa
from pyspark.sql import SparkSession, functions as F

import phimask


def load_key(key_file, key_hook):
    """The masking key from a hook, else as the command reads it (a key
    file, else PHI_MASKING_KEY); None when there is none (the engine then
    says so)."""
    if key_hook:
        module, _, function = key_hook.partition(":")
        return getattr(importlib.import_module(module), function)()
    return phimask.masking_key(key_file)


def main(argv):
    # An argument like --key=... would be echoed by argparse's error.
    if any(a.split("=")[0] in ("--key", "-k", "--masking-key") for a in argv):
        sys.exit("the masking key is never an argument: set PHI_MASKING_KEY, --key-file or --key-hook")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--policy", required=True, help="the policy file (JSON)")
    p.add_argument("-d", "--destination", required=True)
    p.add_argument("--ndjson", action="append", default=[], help="NDJSON files, directories or globs")
    p.add_argument("--parquet", action="append", default=[], help="Parquet files or directories")
    p.add_argument("--column", default="event", help="the Parquet column of JSON strings")
    p.add_argument("--out", required=True, help="the output directory (must not exist)")
    p.add_argument("--write", choices=("ndjson", "parquet"), default="ndjson")
    p.add_argument("--key-file", help="read the key from this file, on each executor")
    p.add_argument("--key-hook", help="MODULE:FUNCTION returning the key, called on each executor")
    args = p.parse_args(argv)
    if not args.ndjson and not args.parquet:
        p.error("give --ndjson and/or --parquet inputs")
    with open(args.policy, encoding="utf-8") as f:
        policy = f.read()
    destination, key_file, key_hook = args.destination, args.key_file, args.key_hook

    def sanitize_batches(batches):
        # On an executor: the Sanitizer (never pickled) and its key are made
        # here, once per partition; the closure holds only the names above.
        sanitizer = phimask.Sanitizer(policy, load_key(key_file, key_hook))
        for batch in batches:
            events = sanitizer.sanitize_arrow(batch.column(0), destination)
            yield pa.RecordBatch.from_arrays([events.cast(pa.string())], names=["event"])

    try:  # The same checks on the driver first: a bad policy, key or destination stops here.
        phimask.Sanitizer(policy, load_key(key_file, key_hook)).sanitize_ndjson(b"", destination)
    except phimask.Error as e:
        sys.exit(f"phimask: {e}")

    spark = SparkSession.builder.appName("phimask-backfill").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    frames = []
    if args.ndjson:
        # Lines end at \n only: Spark's default also ends them at a lone \r,
        # which is white space inside an event. A row's last \r (CRLF) is
        # taken by the engine as the line's end, as the command takes it.
        frames.append(spark.read.option("lineSep", "\n").text(args.ndjson))
    if args.parquet:
        frames.append(spark.read.parquet(*args.parquet).select(F.col(args.column).cast("string").alias("value")))
    rows = frames[0] if len(frames) == 1 else frames[0].unionAll(frames[1])
    events = rows.mapInArrow(sanitize_batches, "event string").where("event IS NOT NULL")
    (events.write.parquet if args.write == "parquet" else events.write.text)(args.out)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
