"""The `icefloe` command."""

import argparse
import logging
import sys

import dask.array as da
from prefect.settings import PREFECT_API_URL

from flows.prefect_api import running_prefect_api
from flows.store_array import store_array
from tasks.request import ArraySpec, ArrayWrite, WriteOptions


def demo_source(mib: int) -> da.Array:
    """A deterministic float32 (time, lat, lon) cube of about `mib` MiB: a smooth field plus noise."""
    ny, nx = 361, 720
    nt = max(1, mib * 2**20 // (4 * ny * nx))
    noise = da.random.default_rng(42).random((nt, ny, nx), dtype="float32", chunks=(24, ny, nx))
    lat = da.cos(da.linspace(-1.57, 1.57, ny, chunks=ny, dtype="float32"))
    return (280 + 30 * lat[None, :, None] + noise).astype("float32")


def demo(args: argparse.Namespace) -> int:
    source = demo_source(args.mib)
    spec = ArraySpec(
        path="temperature", chunks=(24, 361, 720), fill_value=float("nan"), dimension_names=("time", "lat", "lon")
    )
    temporary = not PREFECT_API_URL.value()
    with running_prefect_api() as api:
        result = store_array(
            repo=args.target,
            writes=[ArrayWrite(source=source, target=spec)],
            message="icefloe demo",
            options=WriteOptions(),
        )
    print(f"snapshot {result.snapshot_id} on {args.target} (branch {result.branch})")
    print(f"{result.bytes / 1e6:.0f} MB in {result.blocks} blocks, {result.seconds:.1f} s, {result.mb_per_s:.0f} MB/s")
    if temporary:
        print("the run was recorded by a temporary Prefect server, now stopped; to keep runs and see them in the UI:")
        print("  uv run prefect server start  and  export PREFECT_API_URL=http://127.0.0.1:4200/api")
    else:
        print(f"runs: {api.removesuffix('/api')}/runs")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="icefloe", description="Parallel, atomic writes into Icechunk with Prefect")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="write a synthetic array into a local repository")
    demo_parser.add_argument("--target", default="data/demo.icechunk", help="repository (default data/demo.icechunk)")
    demo_parser.add_argument("--mib", type=int, default=1024, help="size of the synthetic array in MiB (default 1024)")
    demo_parser.set_defaults(run=demo)
    args = parser.parse_args(argv)
    logging.getLogger("distributed").setLevel(logging.WARNING)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
