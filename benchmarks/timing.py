"""Timing two write paths fairly on one machine: fresh target per run, alternating order, best run of each."""

import argparse
import importlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from distributed import Client, LocalCluster

from flows.prefect_api import running_prefect_api


def timed(run: Callable[[Path], object], workdir: Path) -> float:
    target = Path(tempfile.mkdtemp(dir=workdir))
    os.sync()  # start each run with no dirty pages left by the one before
    started = time.perf_counter()
    run(target)
    elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    return elapsed


def compare(
    raw: Callable[[Path], object],
    ours: Callable[[Path], object],
    repeat: int,
    workdir: Path,
    before: Callable[[], object] = lambda: None,
) -> dict[str, list[float]]:
    """Run both `repeat` times, alternating who goes first, `before` each run off the clock; seconds per run."""
    runs = {"raw": raw, "ours": ours}
    times: dict[str, list[float]] = {"raw": [], "ours": []}
    for i in range(repeat):
        for name in ("raw", "ours") if i % 2 == 0 else ("ours", "raw"):
            before()
            times[name].append(timed(runs[name], workdir))
    return times


WORKER_MODULES = (
    "icechunk",
    "icechunk.dask",
    "zarr",
    "xarray",
    "prefect",
    "tasks.writing.block_task",
    "tasks.writing.block",
)


def _import(modules: tuple[str, ...]) -> None:
    for module in modules:
        importlib.import_module(module)


def fresh_workers(client: Client) -> None:
    """New worker processes, with both paths' modules imported: icefloe's block tasks raise Zarr's settings in the
    process they run in, and a raw run after them must not inherit that; imports are not what is compared."""
    client.restart(timeout=300, wait_for_workers=True)  # restarts here took over 120 s once
    client.run(_import, WORKER_MODULES)


def report(times: dict[str, list[float]], nbytes: float, raw_name: str, our_name: str) -> None:
    """Per-run times, best throughput of each, and last the ratio of throughputs icefloe/raw."""
    raw_mbs, our_mbs = nbytes / 1e6 / min(times["raw"]), nbytes / 1e6 / min(times["ours"])
    width = max(len(raw_name), len(our_name)) + 1
    print(f"{raw_name + ':':<{width}} {' '.join(f'{t:.2f}s' for t in times['raw'])} -> best {raw_mbs:.0f} MB/s")
    print(f"{our_name + ':':<{width}} {' '.join(f'{t:.2f}s' for t in times['ours'])} -> best {our_mbs:.0f} MB/s")
    print(f"ratio icefloe/raw = {our_mbs / raw_mbs:.3f}")


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The options both benchmarks take."""
    result = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--gib", type=float, default=2.0, help="source size in GiB (default 2)")
    result.add_argument("--repeat", type=int, default=2, help="runs of each path (default 2)")
    result.add_argument("--workdir", type=Path, default=Path("data/bench"), help="where the repositories go")
    return result


def _on[T](where: T, path: Callable[[Path, T], object]) -> Callable[[Path], object]:
    return lambda target: path(target, where)


def compare_on_cluster(
    raw: Callable[[Path, Client], object],
    ours: Callable[[Path, str], object],
    args: argparse.Namespace,
    nbytes: float,
    names: tuple[str, str],
) -> None:
    """Both paths alternating, each run on a LocalCluster of its own, started (and both paths' modules imported in
    its workers) off the clock: `raw` gets its client, `ours` the scheduler's address; then the report. A new
    cluster rather than `fresh_workers`: restarting the workers in place hung here, twice in one day, after a raw
    run."""
    times: dict[str, list[float]] = {"raw": [], "ours": []}
    with running_prefect_api():
        for i in range(args.repeat):
            for name in ("raw", "ours") if i % 2 == 0 else ("ours", "raw"):
                with LocalCluster(dashboard_address=None) as local, Client(local) as client:
                    if i == 0 and name == "raw":
                        threads = sum(w["nthreads"] for w in local.scheduler_info["workers"].values())
                        print(f"cluster: {len(local.workers)} workers, {threads} threads, new for each run")
                    client.run(_import, WORKER_MODULES)
                    run = _on(client, raw) if name == "raw" else _on(local.scheduler_address, ours)
                    times[name].append(timed(run, args.workdir))
    report(times, nbytes, *names)
