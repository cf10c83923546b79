"""The Dask cluster a flow run fans out on, as a Prefect task runner; and the cluster a process keeps for the flow
runs it starts (the command's, `icefloe serve`'s)."""

from collections.abc import Iterator
from contextlib import contextmanager

from prefect_dask import DaskTaskRunner

from flows.environment import environment_variable
from tasks.request import WriteOptions
from tasks.running.cluster import run_cluster


@contextmanager
def dask_task_runner(options: WriteOptions) -> Iterator[DaskTaskRunner]:
    """A task runner on the run's cluster (`run_cluster`)."""
    with run_cluster(options) as cluster:
        where = {"address": cluster} if isinstance(cluster, str) else {"cluster": cluster}
        with DaskTaskRunner(**where) as runner:
            yield runner


@contextmanager
def cluster_for_flow_runs(options: WriteOptions, **overrides: object) -> Iterator[str]:
    """The scheduler the flow runs this process starts will use: `run_cluster`'s, whose address goes to them in
    ICEFLOE_DASK_ADDRESS when it was started here (their parameters stay the user's request)."""
    with run_cluster(options, **overrides) as cluster:
        if isinstance(cluster, str):
            yield cluster
            return
        with environment_variable("ICEFLOE_DASK_ADDRESS", cluster.scheduler_address):
            yield cluster.scheduler_address


def cluster_threads(runner: DaskTaskRunner) -> int:
    """Worker threads of the runner's cluster (at least 1: workers of an external cluster may still be joining)."""
    return max(1, sum(runner.client.nthreads().values()))
