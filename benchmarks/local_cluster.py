"""Where a run's blocks should run when it names no Dask scheduler: threads or processes, how many of each.

    uv run python -m benchmarks.local_cluster --gib 1 --repeat 2

Each source is written whole, without a Prefect API (`tasks/running/local.py`), once per cluster layout,
alternating, best of each. The clock includes starting the cluster and its workers' first imports, as a user's run
pays them. Sources: the synthetic Dataset (computed: random numbers), NetCDF4 files (zlib, read with h5netcdf), a
Zarr store (Zstandard), and `store_array` of a dask array.
"""

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.timing import parser
from tasks.request import ArraySpec, ArrayWrite, DatasetWrite, WriteOptions
from tasks.running.cluster import local_cluster
from tasks.running.local import LocalOrchestrator
from tasks.running.runs import run_store_array, run_write_dataset
from tasks.storage.file_sources import NetCDFSource
from tasks.storage.sources import DatasetSource, ZarrSource
from tasks.storage.synthetic import SyntheticDataset

NLAT, NLON = 721, 1440
CHUNKS = (8, 361, 720)
CORES = os.cpu_count() or 1


@contextmanager
def options_for(layout: str) -> Iterator[WriteOptions]:
    """The run's options for a layout; a threaded LocalCluster is started here, on the clock, as a run would."""
    if layout == "threaded LocalCluster, a worker per core":
        with local_cluster(WriteOptions()) as cluster:
            yield WriteOptions(dask_address=cluster.scheduler_address)
        return
    yield {
        "pool of threads, one per core (default)": WriteOptions(),
        "process LocalCluster, a worker per core": WriteOptions(processes=True),
        "process LocalCluster, 1 worker": WriteOptions(processes=True, n_workers=1),
    }[layout]


LAYOUTS = [
    "pool of threads, one per core (default)",
    "threaded LocalCluster, a worker per core",
    "process LocalCluster, a worker per core",
    "process LocalCluster, 1 worker",
]


def synthetic(gib: float) -> SyntheticDataset:
    steps = max(8, round(gib * 2**30 / (NLAT * NLON * 4 * 2) / 8) * 8)
    return SyntheticDataset(ntime=steps, nlat=NLAT, nlon=NLON, time_chunk=8, freq="6h")


def write_dataset(source: DatasetSource) -> Callable[[Path, WriteOptions], None]:
    encoding = {name: {"chunks": CHUNKS} for name in ("t2m", "u10")}

    def write(target: Path, options: WriteOptions) -> None:
        run_write_dataset(
            LocalOrchestrator(), str(target), source, DatasetWrite(mode="w", encoding=encoding), options=options
        )

    return write


def store_array(gib: float) -> Callable[[Path, WriteOptions], None]:
    from benchmarks.store_array_vs_store_dask import CHUNKS as ARRAY_CHUNKS
    from benchmarks.store_array_vs_store_dask import source_array

    source = source_array(gib)

    def write(target: Path, options: WriteOptions) -> None:
        spec = ArraySpec(path="x", chunks=ARRAY_CHUNKS, fill_value=float("nan"))
        run_store_array(LocalOrchestrator(), str(target), [ArrayWrite(source=source, target=spec)], "main", None,
                        options)  # fmt: skip

    return write


def prepared_sources(gib: float, workdir: Path) -> dict[str, Callable[[Path, WriteOptions], None]]:
    """The sources, the files ones written once into `workdir`."""
    dataset = synthetic(gib).open()
    netcdf = workdir / "netcdf"
    if not netcdf.exists():
        netcdf.mkdir()
        for start in range(0, dataset.sizes["time"], 24):
            part = dataset.isel(time=slice(start, start + 24))
            encoding = {name: {"zlib": True, "complevel": 1, "chunksizes": (8, NLAT, NLON)} for name in part.data_vars}
            part.to_netcdf(netcdf / f"part-{start:05d}.nc", engine="h5netcdf", encoding=encoding)
    zarr_store = workdir / "source.zarr"
    if not zarr_store.exists():
        dataset.to_zarr(zarr_store, zarr_format=3, encoding={name: {"chunks": CHUNKS} for name in dataset.data_vars})
    return {
        "synthetic Dataset": write_dataset(synthetic(gib)),
        "NetCDF files": write_dataset(NetCDFSource(paths=str(netcdf / "*.nc"), concat_dim="time")),
        "Zarr store": write_dataset(ZarrSource(url=str(zarr_store))),
        "store_array": store_array(gib),
    }


def timed(write: Callable[[Path, WriteOptions], None], layout: str, workdir: Path) -> float:
    target = Path(tempfile.mkdtemp(dir=workdir))
    os.sync()
    started = time.perf_counter()
    with options_for(layout) as options:
        write(target, options)
    elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    return elapsed


def main() -> None:
    arguments = parser(__doc__)
    arguments.set_defaults(gib=1.0)
    args = arguments.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    sources = prepared_sources(args.gib, args.workdir)
    print(f"{args.gib:g} GiB per source, {CORES} cores; seconds, best of {args.repeat} (each run)")
    for name, write in sources.items():
        times: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
        for i in range(args.repeat):
            order = list(LAYOUTS) if i % 2 == 0 else list(reversed(LAYOUTS))
            for layout in order:
                times[layout].append(timed(write, layout, args.workdir))
        best = min(min(t) for t in times.values())
        print(f"{name}:")
        for layout, runs in times.items():
            mark = "  <- fastest" if min(runs) == best else ""
            print(f"  {layout:<42} {min(runs):6.2f}  ({' '.join(f'{t:.2f}' for t in runs)}){mark}")


if __name__ == "__main__":
    main()
