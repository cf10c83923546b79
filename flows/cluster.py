"""The Dask cluster a run fans out on."""

import os

from prefect_dask import DaskTaskRunner

from tasks.request import WriteOptions


def dask_task_runner(options: WriteOptions) -> DaskTaskRunner:
    """An existing scheduler when `dask_address` (or ICEFLOE_DASK_ADDRESS, a served deployment's default) names
    one, else a LocalCluster sized to the machine."""
    address = options.dask_address or os.environ.get("ICEFLOE_DASK_ADDRESS")
    if address:
        return DaskTaskRunner(address=address)
    cluster_kwargs: dict[str, object] = {"processes": options.processes}
    if options.n_workers is not None:
        cluster_kwargs["n_workers"] = options.n_workers
    return DaskTaskRunner(cluster_kwargs=cluster_kwargs)


def cluster_threads(runner: DaskTaskRunner) -> int:
    """Worker threads of the runner's cluster (at least 1: workers of an external cluster may still be joining)."""
    return max(1, sum(runner.client.nthreads().values()))
