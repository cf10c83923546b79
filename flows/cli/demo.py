"""`icefloe demo`: a synthetic weather dataset written into a local repository, read back and compared."""

import argparse
from typing import TYPE_CHECKING

from flows.cli.arguments import PREFECT_HELP, add_run_options

if TYPE_CHECKING:  # the parser is built without importing the models
    from tasks.storage.synthetic import SyntheticDataset

VARIABLES = ("t2m", "u10")
ENCODING = {name: {"chunks": (8, 361, 720)} for name in VARIABLES}  # ~8 MiB chunks


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    demo = commands.add_parser(
        "demo",
        help="write a synthetic weather dataset into a local repository",
        description="The demo's synthetic 0.25-degree dataset (two float32 variables, 6-hourly) into a local "
        "repository, read back and compared. " + PREFECT_HELP,
    )
    demo.add_argument("--target", default="data/demo.icechunk", help="repository (default data/demo.icechunk)")
    demo.add_argument("--gib", type=float, default=1.0, help="size of the dataset in GiB (default 1)")
    add_run_options(demo)
    demo.set_defaults(run=run)


def demo_source(gib: float) -> "SyntheticDataset":
    """The demo's synthetic 0.25-degree dataset of about `gib` GiB (two float32 variables, 6-hourly)."""
    from tasks.storage.synthetic import SyntheticDataset

    step_bytes = 721 * 1440 * 4 * 2
    ntime = max(8, round(gib * 2**30 / step_bytes / 8) * 8)
    return SyntheticDataset(ntime=ntime, nlat=721, nlon=1440, variables=VARIABLES, time_chunk=8, freq="6h")


def run(args: argparse.Namespace) -> int:
    from flows.cli.run import Prefect

    prefect = Prefect.choose(args.temporary_server)  # before the heavy imports, as `write` does
    try:
        import icechunk
        import xarray as xr

        from flows.cli.requests import write_options
        from flows.cli.run import WriteCall, print_summary, run_write
        from tasks.request import DatasetWrite
        from tasks.storage.target import repository_storage

        source = demo_source(args.gib)
        print(f"demo: synthetic dataset {dict(source.open().sizes)}, {source.variables}, -> {args.target}")
        write = DatasetWrite(mode="w", encoding=ENCODING)
        result, recorded = run_write(
            WriteCall(args.target, source, write, "icefloe demo", write_options(args)), prefect
        )
        print_summary(result, args.target, recorded)
        repo = icechunk.Repository.open(repository_storage(args.target))
        written = xr.open_zarr(repo.readonly_session(write.branch).store, consolidated=False)
        xr.testing.assert_identical(written, source.open())
        print("read back with xr.open_zarr(repo.readonly_session('main').store): identical to the source")
        return 0
    finally:
        prefect.close()
