"""icefloe's `store_array` against raw `icechunk.dask.store_dask`, same source, cluster, chunks and disk, one run.

    make bench            (or: uv run python benchmarks/store_array_vs_store_dask.py --gib 2)

The last line is the ratio of throughputs icefloe/raw; both paths run `--repeat` times, alternating, alternating who
goes first, and the best run of each counts (the machine's noise only ever slows a run down).
"""

import time
from pathlib import Path

import dask.array as da
import icechunk
import icechunk.dask
import numpy as np
import zarr
from distributed import Client

from benchmarks.timing import compare_on_cluster, parser
from flows.store_array import store_array
from tasks.records import CommitResult
from tasks.request import ArraySpec, ArrayWrite, WriteOptions

CHUNKS = (16, 256, 256)  # 4 MiB of float32 per chunk


def source_array(gib: float) -> da.Array:
    """A deterministic float32 cube of about `gib` GiB: smooth field plus noise, like a weather variable."""
    nt = max(CHUNKS[0], int(gib * 2**30 / (4 * 1024 * 1024)) // CHUNKS[0] * CHUNKS[0])
    shape = (nt, 1024, 1024)
    noise = da.random.default_rng(0).random(shape, dtype="float32", chunks=CHUNKS)
    ramp = da.arange(shape[2], dtype="float32", chunks=CHUNKS[2]) / shape[2]
    return (noise + da.sin(ramp * 6.28)[None, None, :]).astype("float32")


def raw_store_dask(path: Path, source: da.Array, client: Client, chunks: tuple[int, ...] = CHUNKS) -> float:
    """The raw path into a new repository at `path`; its commit's seconds."""
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    group = zarr.open_group(session.store, mode="a")
    group.create_array("x", shape=source.shape, chunks=chunks, dtype=source.dtype, fill_value=np.nan)
    fork = session.fork()
    target = zarr.open_array(fork.store, path="x", mode="r+")
    with client.as_current():
        session.merge(icechunk.dask.store_dask(sources=[source], targets=[target]))
    started = time.perf_counter()
    session.commit("raw store_dask")
    return time.perf_counter() - started


def icefloe_store_array(
    path: Path, source: da.Array, options: WriteOptions, chunks: tuple[int, ...] = CHUNKS
) -> CommitResult:
    spec = ArraySpec(path="x", chunks=chunks, fill_value=float("nan"))
    return store_array(repo=str(path), writes=[ArrayWrite(source=source, target=spec)], options=options)


def main() -> None:
    arguments = parser(__doc__)
    arguments.add_argument("--block-mib", type=int, default=None, help="icefloe block size in MiB (default: auto)")
    args = arguments.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    block_bytes = args.block_mib * 2**20 if args.block_mib else None
    source = source_array(args.gib)
    nbytes = source.nbytes
    print(f"source: {source.shape} float32, {nbytes / 2**30:.2f} GiB, chunks {CHUNKS}")
    compare_on_cluster(
        raw=lambda p, client: raw_store_dask(p, source, client),
        ours=lambda p, address: icefloe_store_array(
            p, source, WriteOptions(dask_address=address, block_bytes=block_bytes)
        ),
        args=args,
        nbytes=nbytes,
        names=("raw store_dask", "icefloe store_array"),
    )


if __name__ == "__main__":
    main()
