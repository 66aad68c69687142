"""Sanitize events with Polars: NDJSON lines or a Parquet column of JSON
strings in, the destination's events out (NDJSON lines, or Parquet with one
column `event` when OUT ends in .parquet), in input order, byte for byte what
`phimask sanitize` writes. `map_batches` hands the engine whole Arrow batches
(no Python per row) and Polars streams the file, so it is never held whole.

    PHI_MASKING_KEY=... python polars_batches.py --policy policy.json \\
        -d amplitude events.ndjson sanitized.ndjson

Lines end at \\n only (a lone \\r is white space inside an event). Polars
refuses a file with bytes that are not UTF-8: the run stops and writes
nothing (use segment_s3.py or `phimask sanitize`, which refuse just those
lines). Polars runs on one machine; on a Ray cluster, call the same
`sanitize` function from `ray.data`'s `map_batches(batch_format="pyarrow")`,
making the Sanitizer inside each worker with the key from its secret.
"""

import argparse
import os
import sys

import polars as pl

import phimask




def main(argv):
    # An argument like --key=... would be echoed by argparse's error.
    if any(a.split("=")[0] in ("--key", "-k", "--masking-key") for a in argv):
        sys.exit("the masking key is never an argument: set PHI_MASKING_KEY or use --key-file")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--policy", required=True, help="the policy file (JSON)")
    p.add_argument("-d", "--destination", required=True)
    p.add_argument("--column", default="event", help="the Parquet column of JSON strings")
    p.add_argument("--key-file", help="read the key from this file instead of PHI_MASKING_KEY")
    p.add_argument("input", help="NDJSON lines, or Parquet when it ends in .parquet")
    p.add_argument("out", help="NDJSON lines, or Parquet when it ends in .parquet")
    args = p.parse_args(argv)

    with open(args.policy, encoding="utf-8") as f:
        policy = f.read()
    try:  # A bad policy, key or destination stops here, before any output.
        sanitizer = phimask.Sanitizer(policy, phimask.masking_key(args.key_file))
        sanitizer.sanitize_ndjson(b"", args.destination)
    except phimask.Error as e:
        sys.exit(f"phimask: {e}")

    def sanitize(batch: pl.Series) -> pl.Series:
        return pl.from_arrow(sanitizer.sanitize_arrow(batch.to_arrow(), args.destination))

    if args.input.endswith(".parquet"):
        rows = pl.scan_parquet(args.input).select(args.column)
    else:
        rows = pl.scan_lines(args.input)
    events = (
        rows.select(pl.first().map_batches(sanitize, return_dtype=pl.String, is_elementwise=True).alias("event"))
        .filter(pl.col("event").is_not_null())
    )
    # Written beside, then renamed: a failed run leaves no partial file.
    partial = args.out + ".partial"
    try:
        if args.out.endswith(".parquet"):
            events.sink_parquet(partial)
        else:
            # One column, never quoted: each line as the engine wrote it.
            events.sink_csv(partial, include_header=False, quote_style="never")
    except BaseException as e:
        if os.path.exists(partial):
            os.remove(partial)
        if isinstance(e, pl.exceptions.ComputeError):
            # Not Polars' message: it may quote the data.
            sys.exit(f"polars could not read {args.input} ({type(e).__name__}): is every line UTF-8?")
        raise
    os.replace(partial, args.out)
    counts = sanitizer.take_report().get(args.destination, {})
    print(f"{args.destination}:", " ".join(f"{k}={v}" for k, v in counts.items() if k != "first_refused"))


if __name__ == "__main__":
    main(sys.argv[1:])
