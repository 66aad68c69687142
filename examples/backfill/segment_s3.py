"""Sanitize a copy of Segment's S3 archive: every
`segment-logs/{source-id}/{received-day}/*.gz` (gzipped NDJSON, one call a
line) under ARCHIVE becomes the same path under OUT, gzipped, holding what
`phimask sanitize` writes for it, byte for byte. Files are streamed a block
at a time (never a whole file, let alone the archive, in memory), and each
file's counts are printed: sent, not sent, blank, refused, never a value.

    aws s3 sync s3://BUCKET/segment-logs archive/segment-logs
    PHI_MASKING_KEY=... python segment_s3.py --policy policy.json \\
        -d amplitude archive/ sanitized/

On a cluster, spark.py reads the same layout straight from the bucket
(`--ndjson 's3://BUCKET/segment-logs/*/*/*.gz'`); or give each worker a
share of the files (one Ray task or Dask partition per source or day) and
run `sanitize_file` there, with the Sanitizer made in the worker.
"""

import argparse
import gzip
import sys
import zlib
from pathlib import Path

import phimask

LIMIT = phimask.MAX_EVENT_BYTES
# A line longer than the engine takes is dropped unread and this stands in
# for it: the engine refuses it as too large, as it would the line, and one
# endless line is never held in memory.
TOO_LONG = b" " * (LIMIT + 2) + b"\n"




def whole_lines(stream, block):
    """The stream's lines, a block's worth at a time, each piece ending at a
    \\n (or the stream's end)."""
    carry, skipping = b"", False
    while data := stream.read(block):
        if skipping:
            end = data.find(b"\n")
            if end < 0:
                continue
            data, skipping = data[end + 1 :], False
            yield TOO_LONG
        data = carry + data
        end = data.rfind(b"\n") + 1
        if end:
            yield data[:end]
        carry = data[end:]
        # Past the limit (and a \r), the line is refused whatever follows.
        if len(carry) > LIMIT + 1:
            carry, skipping = b"", True
    if skipping:
        yield TOO_LONG
    elif carry:
        yield carry


def sanitize_file(sanitizer, destination, source, target, block):
    # Written beside and renamed when whole: a file that fails (a truncated
    # or corrupt .gz) leaves nothing in the layout, and the run stops.
    partial = target.with_name(target.name + ".partial")
    try:
        with gzip.open(source, "rb") as lines, gzip.open(partial, "wb") as out:
            for piece in whole_lines(lines, block):
                out.write(sanitizer.sanitize_ndjson(piece, destination))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return sanitizer.take_report().get(destination, {})


def main(argv):
    # An argument like --key=... would be echoed by argparse's error.
    if any(a.split("=")[0] in ("--key", "-k", "--masking-key") for a in argv):
        sys.exit("the masking key is never an argument: set PHI_MASKING_KEY or use --key-file")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--policy", required=True, help="the policy file (JSON)")
    p.add_argument("-d", "--destination", required=True)
    p.add_argument("--key-file", help="read the key from this file instead of PHI_MASKING_KEY")
    p.add_argument("--block-bytes", type=int, default=8 << 20, help="how much of a file is read at once")
    p.add_argument("archive", type=Path, help="the directory holding segment-logs/")
    p.add_argument("out", type=Path, help="where the sanitized segment-logs/ is written")
    args = p.parse_args(argv)
    archive, out = args.archive.resolve(), args.out.resolve()
    if out == archive or archive in out.parents or out in archive.parents:
        # The sanitized copy would overwrite the raw archive, or be read as it.
        sys.exit("OUT must be outside ARCHIVE (and ARCHIVE outside OUT)")

    with open(args.policy, encoding="utf-8") as f:
        policy = f.read()
    try:  # A bad policy, key or destination stops here, before any output.
        sanitizer = phimask.Sanitizer(policy, phimask.masking_key(args.key_file))
        sanitizer.sanitize_ndjson(b"", args.destination)
    except phimask.Error as e:
        sys.exit(f"phimask: {e}")

    files = sorted(args.archive.glob("segment-logs/*/*/*.gz"))
    if not files:
        sys.exit(f"no segment-logs/*/*/*.gz under {args.archive}")
    shown = ("sent", "not_sent", "blank", "refused", "dropped", "masked", "transformed")
    totals = dict.fromkeys(shown, 0)
    for source in files:
        relative = source.relative_to(args.archive)
        target = args.out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            counts = sanitize_file(sanitizer, args.destination, source, target, args.block_bytes)
        except (OSError, EOFError, zlib.error) as e:
            # Named by its path, not gzip's message: that quotes the bytes
            # a file that is not gzip starts with (its first event's).
            sys.exit(
                f"phimask: {relative}: not a whole gzip file, or not readable or writable ({type(e).__name__}); "
                "the files listed above are written, this one and those after it are not"
            )
        for k in shown:
            totals[k] += counts.get(k, 0)
        print(relative, " ".join(f"{k}={counts.get(k, 0)}" for k in shown))
    print(f"{len(files)} files", " ".join(f"{k}={v}" for k, v in totals.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
