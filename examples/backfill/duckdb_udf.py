"""Sanitize a Parquet column of JSON events with DuckDB: the engine as an Arrow
UDF (`create_function(..., type="arrow")`, called once per vector of rows,
no Python per row), writing a Parquet file with one column `event`, the rows
in their input order: each one what `phimask sanitize` writes for it. Rows
not sent to the destination, refused, blank or null are left out; so are the
input's other columns, which the policy never saw. The column is text
(VARCHAR) or bytes (BLOB) holding UTF-8.

    PHI_MASKING_KEY=... python duckdb_udf.py --policy policy.json \\
        -d amplitude --column event 'events/*.parquet' sanitized.parquet

DuckDB runs on one machine, on all its cores; for a cluster, use spark.py
(the same engine and bytes). For NDJSON archives use segment_s3.py,
polars_batches.py or `phimask sanitize`.
"""

import argparse
import os
import sys

import duckdb

import phimask




def main(argv):
    # An argument like --key=... would be echoed by argparse's error.
    if any(a.split("=")[0] in ("--key", "-k", "--masking-key") for a in argv):
        sys.exit("the masking key is never an argument: set PHI_MASKING_KEY or use --key-file")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--policy", required=True, help="the policy file (JSON)")
    p.add_argument("-d", "--destination", required=True)
    p.add_argument("--column", default="event", help="the column of JSON strings")
    p.add_argument("--key-file", help="read the key from this file instead of PHI_MASKING_KEY")
    p.add_argument("input", help="Parquet file(s): a path or a glob")
    p.add_argument("out", help="the Parquet file to write")
    args = p.parse_args(argv)

    with open(args.policy, encoding="utf-8") as f:
        policy = f.read()
    try:  # A bad policy, key or destination stops here, before any output.
        sanitizer = phimask.Sanitizer(policy, phimask.masking_key(args.key_file))
        sanitizer.sanitize_ndjson(b"", args.destination)
    except phimask.Error as e:
        sys.exit(f"phimask: {e}")

    con = duckdb.connect()
    con.create_function(
        "phimask_sanitize",
        lambda events: sanitizer.sanitize_arrow(events, args.destination),
        ["VARCHAR"],
        "VARCHAR",
        type="arrow",
        # Null rows reach the engine (which gives null back), and each row
        # goes through it once: without side effects DuckDB may run it again
        # for the filter, counting rows twice.
        null_handling="special",
        side_effects=True,
    )
    rows = con.read_parquet(args.input)
    kinds = dict(zip(rows.columns, map(str, rows.types)))
    if args.column not in kinds:
        sys.exit(f"no column {args.column!r} in {args.input}")
    kind = kinds[args.column]
    if kind not in ("VARCHAR", "BLOB", "JSON"):
        # Only the type's kind: DuckDB's own message spells a STRUCT's or
        # MAP's field names, or an ENUM's values, which can be PHI.
        shown = "a LIST or ARRAY" if kind.endswith("]") else kind.split("(")[0]
        sys.exit(f"column {args.column!r} is {shown}, not text (VARCHAR) or bytes (BLOB)")
    column = '"' + args.column.replace('"', '""') + '"'
    if kind == "BLOB":
        # Bytes as UTF-8 text; bytes that are not give null, left out as
        # the command leaves out such a line.
        column = f"try(decode({column}))"
    events = rows.select(f"phimask_sanitize({column}) AS event").filter("event IS NOT NULL")
    # Written beside, then renamed: a failed run leaves no partial file.
    partial = args.out + ".partial"
    try:
        events.write_parquet(partial)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    os.replace(partial, args.out)
    counts = sanitizer.take_report().get(args.destination, {})
    print(f"{args.destination}:", " ".join(f"{k}={v}" for k, v in counts.items() if k != "first_refused"))


if __name__ == "__main__":
    main(sys.argv[1:])
