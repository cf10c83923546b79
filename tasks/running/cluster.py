"""The Dask cluster a run uses: the scheduler it names, or a LocalCluster started for it.

Threads by default: writing is decompression, computation, Zstandard and I/O in native code that releases the GIL,
and a threaded LocalCluster starts in milliseconds where process workers take seconds to start and to import what a
block needs. benchmarks/local_cluster.py measured the layouts on synthetic, NetCDF, Zarr and store_array sources:
a thread per core was fastest or tied on each (the README gives the figures). A run without Prefect needs no
cluster for that: it uses a plain pool of threads (`tasks/running/local.py`). Process workers remain an option
(`WriteOptions.processes`) for sources that hold the GIL.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dask.config

from tasks.request import WriteOptions

if TYPE_CHECKING:
    from distributed import LocalCluster

WORKER_PRELOAD = "tasks.writing.worker"
"""The module every Dask worker of icefloe's loads as it starts: each LocalCluster started here names it, and so do
docker-compose.yml's workers (`dask worker --preload tasks.writing.worker`)."""

# Each worker's statistical profiler samples every thread's stack 100 times a second for a dashboard that a cluster
# started for a run does not have.
_QUIET_WORKERS = {"distributed.worker.profile.enabled": False}


def scheduler_address(options: WriteOptions) -> str | None:
    """The scheduler the run names, or ICEFLOE_DASK_ADDRESS (which `icefloe serve` sets for its runs)."""
    return options.dask_address or os.environ.get("ICEFLOE_DASK_ADDRESS") or None


def local_cluster_kwargs(options: WriteOptions) -> dict[str, Any]:
    """`LocalCluster` keywords: a single-threaded worker per core (threads of this process unless `processes`)."""
    cores = os.cpu_count() or 1
    workers = options.n_workers or cores
    return {
        "processes": options.processes,
        "n_workers": workers,
        "threads_per_worker": max(1, cores // workers),
        # no dashboard, and the scheduler's health endpoint on a free port, not 8787 (which another cluster may have)
        "dashboard_address": "127.0.0.1:0",
        "scheduler_kwargs": {"dashboard": False},
    }


@contextmanager
def run_cluster(options: WriteOptions, **overrides: Any) -> Iterator["str | LocalCluster"]:
    """The one place a run's cluster is decided: the scheduler the run names (`scheduler_address`), else a
    LocalCluster started for it (`overrides`: LocalCluster keywords beyond those `options` give)."""
    address = scheduler_address(options)
    if address:
        yield address
        return
    with local_cluster(options, **overrides) as cluster:
        yield cluster


@contextmanager
def local_cluster(options: WriteOptions, **overrides: Any) -> Iterator["LocalCluster"]:
    from distributed import LocalCluster  # not imported by a run that needs no cluster

    kwargs = {**local_cluster_kwargs(options), "preload": [WORKER_PRELOAD], **overrides}
    with dask.config.set(_QUIET_WORKERS), LocalCluster(**kwargs) as cluster:
        try:
            yield cluster
        except BaseException:
            # Interrupted or failed: closing a threaded worker waits for the blocks it runs (a minute, for a large
            # one); they write only into forks nothing will merge, so close without waiting for them.
            if not options.processes:  # in-process workers; a process worker's Nanny takes no executor_wait
                for worker in list(cluster.workers.values()):
                    cluster.sync(worker.close, executor_wait=False)
            raise
