"""What publishing costs (`icefloe write --publish`: a staging branch, the checks, then the branch moved) against a
plain write, on object storage: an S3 server (SeaweedFS) behind the latency proxy of `benchmarks/object_store.py`.

    uv run python -m benchmarks.publish_gate                       # 1 GiB at 20 ms, best of 3
    uv run python -m benchmarks.publish_gate --size 256MiB --repeat 5

Two figures: the whole commands, `icefloe write` and `icefloe write --publish`, alternating, best of N (the user's
clock, requests by method); and, from N more `--publish` runs, the seconds its checks took (its log) as a share of
the seconds its blocks took to write (its summary).
"""

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from benchmarks.object_store import (
    BIN,
    BUCKET,
    ENCODING,
    SIZES,
    STEP_BYTES,
    command_env,
    compare,
    icefloe_command,
    ntime,
    report,
    s3_server,
    source,
)

CHECKED = re.compile(r"checked snapshot \S+ in ([\d.]+) s: (\d+) checks passed, (\d+) failed")
WRITTEN = re.compile(r"written in ([\d.]+) s")


def checks_of_a_run(steps: int, home: Path, latency_ms: float) -> tuple[float, float, int]:
    """`icefloe write --publish`'s own figures: its blocks' write seconds, then its checks' seconds and count."""
    with s3_server(latency_ms) as s3:
        target = f"s3://{BUCKET}/{uuid.uuid4().hex}"
        argv = [str(BIN / "icefloe"), "write", json.dumps(source(steps)), target, "--encoding", json.dumps(ENCODING)]
        done = subprocess.run(
            [*argv, "--publish"], env=command_env(s3, home), capture_output=True, text=True, check=True
        )
        checked, written = CHECKED.search(done.stderr), WRITTEN.search(done.stdout)
        assert checked is not None, done.stderr
        assert written is not None, done.stdout
        assert checked.group(3) == "0", done.stderr
        return float(written.group(1)), float(checked.group(1)), int(checked.group(2))


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--size", default="1GiB", choices=list(SIZES))
    arguments.add_argument("--latency", type=float, default=20.0, help="added milliseconds per request")
    arguments.add_argument("--repeat", type=int, default=3, help="runs of each path (default 3)")
    args = arguments.parse_args()
    steps = ntime(SIZES[args.size])
    nbytes = steps * STEP_BYTES
    home = Path(tempfile.mkdtemp(prefix="prefect-home-"))
    try:
        paths = {
            "icefloe write": icefloe_command(steps, home),
            "icefloe write --publish": icefloe_command(steps, home, "--publish"),
        }
        runs = compare(paths, args.repeat, args.latency)
        title = f"command, whole processes: {args.size} ({nbytes / 1e6:.0f} MB) at {args.latency:.0f} ms per request"
        report(title, runs, nbytes, ("icefloe write",))
        figures = [checks_of_a_run(steps, home, args.latency) for _ in range(args.repeat)]
        for write_seconds, check_seconds, count in figures:
            print(
                f"  a --publish run: its {count} checks took {check_seconds:.2f} s, "
                f"{100 * check_seconds / write_seconds:.1f}% of its blocks' {write_seconds:.2f} s of writing"
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
