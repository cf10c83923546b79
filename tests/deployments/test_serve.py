"""`icefloe serve` with no Dask scheduler named: one warm cluster, started with the server, serves every run.

`prefect server start` and `icefloe serve` run as local processes; runs are created through the REST API."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import xarray as xr

from tasks.storage.synthetic import SyntheticDataset
from tests.conftest import open_repo
from tests.deployments.stack import Stack, allowance, closed_api, wait_for_api
from tests.processes import command_env, free_port, processes, started_prefect_home, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SMALL = {"kind": "synthetic", "ntime": 48, "nlat": 19, "nlon": 36, "time_chunk": 24}
ATTACHED = re.compile(r"Connecting to an existing Dask cluster at (tcp://127\.0\.0\.1:\d+)")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("serve-logs")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = started_prefect_home(logs / "prefect-home")
    env = command_env(home, PREFECT_API_URL=api, PREFECT_UI_ENABLED="false", **closed_api())
    env |= allowance(tmp_path_factory.getbasetemp())
    with processes() as start:
        start("prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), env=env,
              log=logs / "prefect-server.log")  # fmt: skip
        wait_for_api(api, env)
        start("icefloe", "serve", env=env, log=logs / "icefloe-serve.log")
        stack = Stack(api, env, "", logs)
        wait_for(lambda: stack.deployment_id("write-dataset", "write-dataset"), "deployments served", timeout=180)
        yield stack


def test_every_run_attaches_to_the_one_warm_cluster(served: Stack, tmp_path: Path) -> None:
    deployment = served.deployment_id("write-dataset", "write-dataset")
    target = tmp_path / "target"
    # the second run rewrites all of it in place: a region as JSON gives one, [start, stop] pairs
    region = {"time": [0, SMALL["ntime"]], "lat": [0, SMALL["nlat"]], "lon": [None, None]}
    for parameters in ({"mode": "w"}, {"mode": "r+", "region": region}):
        response = served.create_run(deployment, {"repo": str(target), "source": SMALL, **parameters})
        run = served.wait_until_done(response.raise_for_status().json()["id"])
        assert run["state_type"] == "COMPLETED", served.log_text(run["id"])
        written = xr.open_zarr(open_repo(str(target)).readonly_session("main").store, consolidated=False)
        xr.testing.assert_identical(written, SyntheticDataset(**SMALL).open())

    # the task runner logs to the serving process's output, not to the run's logs
    output = (served.logs / "icefloe-serve.log").read_text()
    assert len(set(ATTACHED.findall(output))) == 1  # one scheduler, kept by `icefloe serve` between the runs
    assert len(ATTACHED.findall(output)) == 2
    assert "Creating a new Dask cluster" not in output
