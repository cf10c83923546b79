"""Shared fixtures: one Prefect API per session, a Dask cluster per module, real repositories (disk, and S3 on
SeaweedFS)."""

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import icechunk
import numpy as np
import pytest
import xarray as xr
from distributed import LocalCluster
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.client.schemas.sorting import TaskRunSort
from prefect.testing.utilities import prefect_test_harness

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "icefloe-test-key",
    "AWS_SECRET_ACCESS_KEY": "icefloe-test-secret-0123456789",
    "AWS_REGION": "us-east-1",
}
BUCKET = "icefloe-test"


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One real Prefect API for the whole session (it takes ~10 s to start)."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """A threaded in-process cluster per module: as fast as a thread pool, real Dask scheduling."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def repo_path(tmp_path: Path) -> str:
    return str(tmp_path / "repo")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 server on loopback (SeaweedFS), with one bucket, started for the session and stopped by its process
    id; the credentials are checked like real ones."""
    from tests.s3_server import seaweedfs

    keys = S3_ENV["AWS_ACCESS_KEY_ID"], S3_ENV["AWS_SECRET_ACCESS_KEY"]
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs"), BUCKET, *keys) as endpoint:
        yield endpoint


def s3_keys() -> dict[str, str]:
    return {"aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"]}


@pytest.fixture
def s3_target(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An S3 target with a unique prefix; endpoint and credentials only in the environment, as in production."""
    for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    return f"s3://{BUCKET}/{uuid.uuid4().hex}"


def open_repo(target: str) -> icechunk.Repository:
    from tasks.storage.target import repository_storage

    return icechunk.Repository.open(repository_storage(target))


def committed(target: str, **version: str) -> xr.Dataset:
    """What the target holds, loaded: the tip of main, or the `branch`, `tag` or `snapshot_id` given."""
    session = open_repo(target).readonly_session(**(version or {"branch": "main"}))
    return xr.open_zarr(session.store, consolidated=False).compute()


def snapshot_count(target: str, branch: str = "main") -> int:
    return len(list(open_repo(target).ancestry(branch=branch)))


def assert_appends_landed_once(target: str, expected_steps: list[int]) -> None:
    """After appends of `tests.sources:steps`: every snapshot opens and reads; the tip holds each landed step
    exactly once, with the source's values."""
    from tests.sources import steps

    repo = open_repo(target)
    for snapshot in repo.ancestry(branch="main"):
        if snapshot.message != "Repository initialized":
            session = repo.readonly_session(snapshot_id=snapshot.id)
            xr.open_zarr(session.store, consolidated=False).load()
    tip = xr.open_zarr(repo.readonly_session("main").store, consolidated=False).load()
    expected = xr.concat([steps(s, s + 1) for s in sorted(expected_steps)], dim="time").load()
    assert tip.sizes["time"] == len(expected_steps)  # nothing duplicated
    assert np.unique(tip["time"].values).size == len(expected_steps)
    xr.testing.assert_identical(tip.sortby("time"), expected)  # nothing lost


def task_runs(flow_run_id: UUID | None) -> list[TaskRun]:
    """The run's task runs, as the Prefect API the caller talks to recorded them."""
    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_DESC,
            limit=200,
        )


def block_task_runs(flow_run_id: UUID) -> list[TaskRun]:
    """The run's block-write task runs."""
    return [r for r in task_runs(flow_run_id) if r.name.startswith("write ")]


def raised_by(call: Callable[[], object]) -> Exception:
    """What `call` raised (the reference's refusal, to compare icefloe's with); fails when it raised nothing."""
    try:
        call()
    except Exception as e:
        return e
    raise AssertionError("the reference accepted it")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


_EXIT_STATUS = pytest.StashKey[int]()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the process with the session's status once pytest is done, before the interpreter's finalization: in
    that, a native thread left by the libraries under test (Icechunk's and HDF5's runtimes, Dask's) once crashed the
    process after every test had passed (CI, exit 139), and a crash there says nothing about icefloe. Servers and
    clusters the tests started are stopped by their fixtures before this. Not in a pytest-xdist worker: its last
    report to the controller may still be on its way."""
    if _EXIT_STATUS in config.stash and not hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])
