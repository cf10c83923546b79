"""The pickling path: process workers the flow starts, an external scheduler, and a worker that dies."""

from collections.abc import Iterator
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

from flows.store_array import store_array
from tasks.request import ArraySpec, ArrayWrite, WriteOptions
from tests.conftest import block_task_runs, snapshot_count
from tests.flows.test_store_array import read
from tests.processes import processes, wait_for
from tests.sources import killing_worker

pytestmark = pytest.mark.slow


def write_and_check(repo_path: str, options: WriteOptions, source: da.Array) -> list[str]:
    state = store_array(
        repo=repo_path,
        writes=[ArrayWrite(source=source, target=ArraySpec(path="x", chunks=(10, 10)))],
        options=options,
        return_state=True,
    )
    result = state.result()
    np.testing.assert_array_equal(read(repo_path, "x"), source.compute())
    assert snapshot_count(repo_path) == 2
    states = sorted(r.state_type.value for r in block_task_runs(state.state_details.flow_run_id))
    assert states.count("COMPLETED") == result.blocks == 4
    return states


def test_process_workers_of_a_cluster_the_flow_starts_report_to_its_api(repo_path: str) -> None:
    source = da.random.default_rng(1).random((40, 40), chunks=(20, 20))
    options = WriteOptions(processes=True, n_workers=2, block_bytes=1600 * 2)

    write_and_check(repo_path, options, source)


@pytest.fixture
def external_scheduler(tmp_path: Path) -> Iterator[str]:
    """`dask scheduler` and `dask worker` as separate processes, as on a real cluster."""
    scheduler_file = tmp_path / "scheduler.json"
    common = ["--scheduler-file", str(scheduler_file)]
    with processes() as start:
        start("dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", *common, env={},
              log=tmp_path / "scheduler.log")  # fmt: skip
        wait_for(lambda: scheduler_file.exists() or None, "dask scheduler start", timeout=60)
        start("dask", "worker", "--nworkers", "2", "--nthreads", "1", "--no-dashboard", *common, env={},
              log=tmp_path / "worker.log")  # fmt: skip
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        yield address


def test_external_scheduler_and_workers(repo_path: str, external_scheduler: str) -> None:
    source = da.random.default_rng(2).random((40, 40), chunks=(20, 20))
    options = WriteOptions(dask_address=external_scheduler, block_bytes=1600 * 2)

    write_and_check(repo_path, options, source)


@pytest.fixture
def fragile_cluster() -> Iterator[str]:
    """Process workers, and a scheduler that gives up on a task the first time its worker dies."""
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
    ):
        yield cluster.scheduler_address


def test_a_block_lost_with_its_worker_is_written_again(repo_path: str, fragile_cluster: str, tmp_path: Path) -> None:
    source = da.random.default_rng(3).random((40, 40), chunks=(20, 20))
    killer = killing_worker(source, str(tmp_path), times=1)
    options = WriteOptions(dask_address=fragile_cluster, block_bytes=1600 * 2, retry_delay_seconds=0)

    states = write_and_check(repo_path, options, killer)

    assert (tmp_path / "kill-0").exists()  # a worker really died
    assert set(states) <= {"COMPLETED", "CRASHED"}  # no lost attempt is left pending or running in the UI
