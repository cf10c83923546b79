"""The Dask cluster a flow run fans out on, as a Prefect task runner."""

from collections.abc import Iterator
from contextlib import contextmanager

from prefect_dask import DaskTaskRunner

from tasks.request import WriteOptions
from tasks.running.cluster import local_cluster, scheduler_address


@contextmanager
def dask_task_runner(options: WriteOptions) -> Iterator[DaskTaskRunner]:
    """A task runner on the scheduler the run names, else on a LocalCluster started for it
    (`tasks/running/cluster.py`)."""
    address = scheduler_address(options)
    if address:
        with DaskTaskRunner(address=address) as runner:
            yield runner
        return
    with local_cluster(options) as cluster, DaskTaskRunner(cluster=cluster) as runner:
        yield runner


def cluster_threads(runner: DaskTaskRunner) -> int:
    """Worker threads of the runner's cluster (at least 1: workers of an external cluster may still be joining)."""
    return max(1, sum(runner.client.nthreads().values()))
