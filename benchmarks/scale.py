"""Scale: (a) a quarter of a million small chunks, (b) ten thousand blocks, (c) the plan of a 10 TB write.

    uv run python -m benchmarks.scale              (all three; --parts a,b,c picks some)

(a) `store_array` against raw `icechunk.dask.store_dask`, same source, dask chunking, cluster and disk: time, per-chunk
    cost, commit time and the ratio of throughputs icefloe/raw.
(b) `store_array` of 10,000 one-chunk blocks on a threaded cluster with a Prefect API: time, the Prefect task runs it
    made, the process's peak memory (workers included: they are its threads), one new snapshot, data read back equal.
(c) `icefloe write '{"kind":"synthetic","ntime":20000000}' T --dry-run` (10.4 TB), the whole command in a new
    process: seconds and its peak memory.
Each part runs in a process of its own, so that each peak memory is its own.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import icechunk
import icechunk.dask
import numpy as np
import zarr
from distributed import Client, LocalCluster

from benchmarks.store_array_vs_store_dask import icefloe_store_array, raw_store_dask
from benchmarks.timing import compare, fresh_workers
from flows.fan_out import task_run_bound
from flows.prefect_api import running_prefect_api
from tasks.records import CommitResult
from tasks.request import WriteOptions

SMALL_CHUNK = (1, 25, 25)  # 2,500 bytes of float32


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def small_chunks_source(chunks: int) -> da.Array:
    """float32 of `chunks` chunks of 2.5 KB, 16 steps (6,400 chunks) per dask chunk."""
    steps = max(16, chunks // 256 // 16 * 16)
    values = da.random.default_rng(0).random((steps, 400, 400), dtype="float32", chunks=(16, 400, 400))
    return values.astype("float32")


def small_chunks(args: argparse.Namespace) -> None:
    source = small_chunks_source(args.chunks)
    n = source.size // int(np.prod(SMALL_CHUNK))
    print(f"(a) {n:,} chunks of 2.5 KB ({source.nbytes / 1e6:.0f} MB, {source.npartitions} dask chunks)")
    commits: dict[str, list[float]] = {"raw": [], "ours": []}

    def ours(path: Path, address: str) -> None:
        result = icefloe_store_array(
            path, source, WriteOptions(dask_address=address, retry_delay_seconds=0), SMALL_CHUNK
        )
        commits["ours"].append(result.committed_at - result.written_at)

    with running_prefect_api(), LocalCluster(dashboard_address=None) as cluster, Client(cluster) as client:
        times = compare(
            raw=lambda p: commits["raw"].append(raw_store_dask(p, source, client, SMALL_CHUNK)),
            ours=lambda p: ours(p, cluster.scheduler_address),
            repeat=args.repeat,
            workdir=args.workdir,
            before=lambda: fresh_workers(client),
        )
    for name, label in (("raw", "raw store_dask"), ("ours", "icefloe store_array")):
        best = min(times[name])
        print(
            f"    {label:<20} {' '.join(f'{t:.1f}s' for t in times[name])} -> best {best:.1f} s, "
            f"{best / n * 1e3:.3f} ms/chunk, commit {min(commits[name]):.1f} s"
        )
    print(f"    ratio icefloe/raw = {min(times['raw']) / min(times['ours']):.3f}; peak memory {peak_mb():.0f} MB")


def many_blocks(args: argparse.Namespace) -> None:
    chunk = (1, 32, 64)  # 8 KB: one chunk per block
    source = da.random.default_rng(1).random((args.blocks, 32, 64), dtype="float32", chunks=chunk)
    print(f"(b) {args.blocks:,} blocks of one chunk ({source.nbytes / 1e6:.0f} MB), threaded cluster")
    path = Path(tempfile.mkdtemp(dir=args.workdir))
    with (
        running_prefect_api(),
        LocalCluster(dashboard_address=None, processes=False) as cluster,
        Client(cluster) as client,
    ):
        options = WriteOptions(dask_address=cluster.scheduler_address, block_bytes=source.nbytes // args.blocks)
        started = time.perf_counter()
        result = icefloe_store_array(path, source, options, chunk)
        seconds = time.perf_counter() - started
        peak = peak_mb()  # before the raw path runs in this process too
        runs = _task_runs(result)
        bound = options.max_task_runs or task_run_bound(sum(client.nthreads().values()))
        raw = time.perf_counter()
        raw_store_dask(Path(tempfile.mkdtemp(dir=args.workdir)), source, client, chunk)
        raw_seconds = time.perf_counter() - raw
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    snapshots = len(list(repo.ancestry(branch="main")))
    equal = np.array_equal(zarr.open_array(repo.readonly_session("main").store, path="x")[...], source.compute())
    print(
        f"    icefloe {seconds:.1f} s ({result.blocks:,} blocks in {runs} task runs, bound "
        f"{bound}; commit {result.committed_at - result.written_at:.1f} s); "
        f"raw store_dask {raw_seconds:.1f} s"
    )
    print(f"    snapshots {snapshots} (root + 1), data equal {equal}; peak memory {peak:.0f} MB (icefloe's run)")


def _task_runs(result: CommitResult) -> int:
    """The flow run's task runs, counted by the Prefect API."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(result.target))
    flow_run_id = next(iter(repo.ancestry(branch="main"))).metadata["icefloe"]["flow_run_id"]
    body = {"flow_runs": {"id": {"any_": [flow_run_id]}}}
    response = httpx.post(f"{PREFECT_API_URL.value()}/task_runs/count", json=body, timeout=60)
    return int(response.raise_for_status().json())


def dry_run(args: argparse.Namespace) -> None:
    source = json.dumps({"kind": "synthetic", "ntime": args.ntime})
    icefloe_command = str(Path(sys.executable).parent / "icefloe")  # what the user types
    command = [icefloe_command, "write", source, str(args.workdir / "t.icechunk"), "--dry-run"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"(c) icefloe write '{source}' T --dry-run")
    print("\n".join(f"    | {line}" for line in done.stdout.splitlines()))
    print(f"    {seconds:.1f} s, peak memory {peak:.0f} MB (the whole command)")


PARTS = {"a": small_chunks, "b": many_blocks, "c": dry_run}


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--parts", default="a,b,c", help="which parts, comma-separated (default a,b,c)")
    arguments.add_argument("--chunks", type=int, default=256_000, help="(a) chunks (default 256,000)")
    arguments.add_argument("--repeat", type=int, default=1, help="(a) runs of each path (default 1)")
    arguments.add_argument("--blocks", type=int, default=10_000, help="(b) blocks (default 10,000)")
    arguments.add_argument("--ntime", type=int, default=20_000_000, help="(c) synthetic steps (default 2e7: 10.4 TB)")
    arguments.add_argument("--workdir", type=Path, default=Path("data/bench"), help="where the repositories go")
    arguments.add_argument("--part", help=argparse.SUPPRESS)  # one part, in this process
    args = arguments.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.part:
        PARTS[args.part](args)
        return
    for part in args.parts.split(","):
        subprocess.run([sys.executable, "-m", "benchmarks.scale", *sys.argv[1:], "--part", part], check=True)


if __name__ == "__main__":
    main()
