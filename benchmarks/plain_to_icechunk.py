"""The scripts icefloe is meant to replace: the synthetic dataset into a new repository on dask's default
(threaded) scheduler, one commit, either with `to_icechunk` or, array by array, with `icechunk.dask.store_dask`
(metadata and coordinates by `to_zarr(compute=False)` first). benchmarks/end_to_end.py and
benchmarks/object_store.py time them as whole processes.

    python -m benchmarks.plain_to_icechunk TARGET NTIME [--chunks 8,361,720] [--store-dask] [--existing]

TARGET is a local path or s3://bucket/prefix (S3 settings from AWS_*, as for icefloe); with --existing, a repository
created beforehand (of either format) is opened rather than a new one created.
"""

import argparse

import icechunk
import icechunk.dask
import zarr
from icechunk.xarray import to_icechunk

from tasks.storage.synthetic import SyntheticDataset
from tasks.storage.target import repository_storage

VARIABLES = ("t2m", "u10")


def main() -> None:
    arguments = argparse.ArgumentParser()
    arguments.add_argument("target")
    arguments.add_argument("ntime", type=int)
    arguments.add_argument("--chunks", default="8,361,720", help="Zarr chunks (time, lat, lon)")
    arguments.add_argument("--time-chunk", type=int, default=8, help="dask chunk along time")
    arguments.add_argument("--store-dask", action="store_true", help="store_dask per array instead of to_icechunk")
    arguments.add_argument("--existing", action="store_true", help="open the repository there instead of creating it")
    args = arguments.parse_args()
    chunks = tuple(int(c) for c in args.chunks.split(","))
    source = SyntheticDataset(
        ntime=args.ntime, nlat=721, nlon=1440, variables=VARIABLES, time_chunk=args.time_chunk, freq="6h"
    )
    dataset = source.open()
    encoding = {name: {"chunks": chunks} for name in VARIABLES}
    storage = repository_storage(args.target)
    repository = icechunk.Repository.open(storage) if args.existing else icechunk.Repository.create(storage)
    session = repository.writable_session("main")
    if not args.store_dask:
        to_icechunk(dataset, session, mode="w", encoding=encoding)
        session.commit("plain to_icechunk")
        return
    dataset.to_zarr(session.store, mode="w", encoding=encoding, compute=False, zarr_format=3, consolidated=False)
    fork = session.fork()
    targets = [zarr.open_array(fork.store, path=name, mode="r+") for name in VARIABLES]
    session.merge(icechunk.dask.store_dask(sources=[dataset[name].data for name in VARIABLES], targets=targets))
    session.commit("plain store_dask")


if __name__ == "__main__":
    main()
