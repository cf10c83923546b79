"""The Dask cluster a run fans out on."""

from prefect_dask import DaskTaskRunner

from tasks.request import WriteOptions


def dask_task_runner(options: WriteOptions) -> DaskTaskRunner:
    """An existing scheduler when `dask_address` is given, else a LocalCluster sized to the machine."""
    if options.dask_address:
        return DaskTaskRunner(address=options.dask_address)
    cluster_kwargs: dict[str, object] = {"processes": options.processes}
    if options.n_workers is not None:
        cluster_kwargs["n_workers"] = options.n_workers
    return DaskTaskRunner(cluster_kwargs=cluster_kwargs)


def cluster_threads(runner: DaskTaskRunner) -> int:
    """Worker threads of the runner's cluster (at least 1: workers of an external cluster may still be joining)."""
    return max(1, sum(runner.client.nthreads().values()))
