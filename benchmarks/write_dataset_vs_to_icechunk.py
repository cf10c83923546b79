"""icefloe's `write_dataset` against raw `icechunk.xarray.to_icechunk`, same Dataset, cluster, chunks and disk, one run.

    uv run python -m benchmarks.write_dataset_vs_to_icechunk --gib 2

The last line is the ratio of throughputs icefloe/raw; both paths run `--repeat` times, alternating, alternating who
goes first, and the best run of each counts (the machine's noise only ever slows a run down).
"""

import math
from pathlib import Path
from typing import Any

import icechunk
import icechunk.xarray
from distributed import Client

from benchmarks.timing import compare_on_cluster, parser
from flows.write_dataset import write_dataset
from tasks.request import WriteOptions
from tasks.storage.synthetic import SyntheticDataset

NLAT, NLON = 721, 1440  # a quarter-degree global grid
VARIABLES = ("t2m", "u10")
TIME_CHUNK = 8  # dask chunk along time: a multiple of the Zarr one, so that to_icechunk's safe_chunks passes
ZARR_CHUNKS = (8, 361, 720)  # about 8 MiB of float32 per chunk
ENCODING: dict[str, dict[str, Any]] = {name: {"chunks": ZARR_CHUNKS} for name in VARIABLES}


def source_model(gib: float) -> SyntheticDataset:
    """A synthetic float32 (time, lat, lon) dataset of at least `gib` GiB, whole dask chunks along time."""
    step_bytes = 4 * NLAT * NLON * len(VARIABLES)
    ntime = max(TIME_CHUNK, math.ceil(gib * 2**30 / step_bytes / TIME_CHUNK) * TIME_CHUNK)
    return SyntheticDataset(ntime=ntime, nlat=NLAT, nlon=NLON, variables=VARIABLES, time_chunk=TIME_CHUNK)


def raw_to_icechunk(path: Path, model: SyntheticDataset, client: Client) -> None:
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    with client.as_current():
        icechunk.xarray.to_icechunk(model.open(), session, mode="w", encoding=ENCODING)
    session.commit("raw to_icechunk")


def icefloe_write_dataset(path: Path, model: SyntheticDataset, address: str) -> None:
    options = WriteOptions(dask_address=address)
    write_dataset(repo=str(path), source=model, mode="w", encoding=ENCODING, options=options)


def main() -> None:
    arguments = parser(__doc__)
    args = arguments.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    model = source_model(args.gib)
    dataset = model.open()
    nbytes = sum(dataset[name].nbytes for name in VARIABLES)
    shape = dataset[VARIABLES[0]].shape
    print(
        f"source: {len(VARIABLES)} x {shape} float32, {nbytes / 2**30:.2f} GiB, "
        f"dask chunks {(TIME_CHUNK, NLAT, NLON)}, zarr chunks {ZARR_CHUNKS}"
    )
    compare_on_cluster(
        raw=lambda p, client: raw_to_icechunk(p, model, client),
        ours=lambda p, address: icefloe_write_dataset(p, model, address),
        args=args,
        nbytes=nbytes,
        names=("raw to_icechunk", "icefloe write_dataset"),
    )


if __name__ == "__main__":
    main()
