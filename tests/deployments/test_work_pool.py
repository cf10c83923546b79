"""The work-pool route, as prefect.yaml's header gives it: `prefect work-pool create`, `prefect deploy --all` and
`prefect worker start` against a real `prefect server start`, with a Dask scheduler and worker; each deployment is
triggered through the REST API and its snapshot checked."""

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import xarray as xr

from tests.conftest import open_repo, snapshot_count
from tests.deployments.stack import Stack, allowance, start_api_and_cluster
from tests.processes import BIN, processes
from tests.sources import steps

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"kind": "synthetic", "ntime": 48, "nlat": 19, "nlon": 36, "time_chunk": 24}
STEPS = {"kind": "callable", "function": "tests.sources:steps", "keywords": {"start": 0, "stop": 72}}


def prefect(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `prefect` command run from the project root, as a user deploys."""
    return subprocess.run([str(BIN / "prefect"), *args], env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("work-pool")
    with processes() as start:
        extra = {"PREFECT_WORKER_QUERY_SECONDS": "1", "ICEFLOE_PROJECT_DIR": str(ROOT)}
        extra |= allowance(tmp_path_factory.getbasetemp())
        api, env = start_api_and_cluster(start, logs, extra, workers=1, threads=2)

        created = prefect("work-pool", "create", "icefloe", "--type", "process", env=env)
        assert created.returncode == 0, created.stdout + created.stderr
        deployed = prefect("--no-prompt", "deploy", "--all", env=env)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        worker = start("prefect", "worker", "start", "--pool", "icefloe", env=env, log=logs / "prefect-worker.log")
        try:
            yield Stack(api, env, "", logs)
        finally:  # the worker ignores its first signal, and would keep the test waiting for the second
            for _ in range(2):
                os.killpg(worker.pid, signal.SIGINT)
                try:
                    worker.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue


def run(pool: Stack, name: str, parameters: dict[str, object]) -> None:
    response = pool.create_run(pool.deployment_id(name, name), parameters)
    assert response.status_code == 201, response.text
    done = pool.wait_until_done(response.json()["id"], timeout=300)
    assert done["state_type"] == "COMPLETED", pool.log_text(done["id"])


def test_each_deployment_runs_on_the_pool_and_lands_one_snapshot(pool: Stack, tmp_path: Path) -> None:
    target = str(tmp_path / "target.icechunk")

    run(pool, "write-dataset", {"repo": target, "source": SMALL})
    assert snapshot_count(target) == 2
    run(pool, "ingest", {"repo": target, "source": STEPS, "overlap": "skip"})  # appends steps 48-71
    assert snapshot_count(target) == 3
    run(pool, "backfill", {"repo": target, "source": STEPS})  # rewrites 0-71 from the same series
    assert snapshot_count(target) == 4

    written = xr.open_zarr(open_repo(target).readonly_session("main").store, consolidated=False)
    xr.testing.assert_identical(written.load(), steps(0, 72).load())


def test_the_deployed_ingest_skips_a_run_while_one_is_running(pool: Stack) -> None:
    ingest = pool.get("/deployments/name/ingest/ingest").raise_for_status().json()

    assert ingest["global_concurrency_limit"]["limit"] == 1
    assert ingest["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert ingest["entrypoint"] == "flows.ingest.ingest"
