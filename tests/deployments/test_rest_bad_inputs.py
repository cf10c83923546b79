"""The bad-input catalogue's REST part (the rest is tests/test_bad_inputs.py), against the served stack: parameters
the API refuses outright create no run; parameters that pass the schema make a run that fails before writing,
its state saying why."""

import uuid
from pathlib import Path

import pytest

from tasks.storage.target import target_exists
from tests.conftest import BUCKET
from tests.deployments.stack import Stack
from tests.test_bad_inputs import SMALL

REST_REFUSED = {  # parameters the API refuses outright (no flow run is created), and what its answer names
    "rest-source-without-paths": (
        {"repo": "s3://b/r", "source": {"kind": "netcdf"}},
        ["source", "'paths' is a required property"],
    ),
    "rest-unknown-mode": ({"repo": "s3://b/r", "source": SMALL, "mode": "overwrite"}, ["mode"]),
    "rest-missing-repo": ({"source": SMALL}, ["repo"]),
    "rest-unknown-option": ({"repo": "s3://b/r", "source": SMALL, "options": {"bogus": 1}}, ["bogus"]),
}
REST_FAILED = {  # parameters that pass the schema; the run fails before writing, and its state says why
    "rest-hook-refuses": ({"validation_hook": "tests.sources:refuse_everything"}, ["refuse_everything"]),
    "rest-branch-missing": ({"branch": "nope"}, ["'nope'", "main"]),
    "rest-encoding-chunk-zero": ({"encoding": {"t2m": {"chunks": [0, 19, 36]}}}, ["'t2m'", "positive"]),
    # hostile parameters: what the runner's operator did not allow (tests/deployments/conftest.py allows the tests'
    # functions, its S3 buckets and the session's temporary directory)
    "rest-hostile-function": (
        {"source": {"kind": "callable", "function": "subprocess:getoutput", "keywords": {"cmd": "id > /tmp/x"}}},
        ["source.function 'subprocess:getoutput'", "ICEFLOE_ALLOWED_FUNCTIONS"],
    ),
    "rest-hostile-workers": ({"options": {"n_workers": 10_000}}, ["options.n_workers 10000", "ICEFLOE_MAX_WORKERS"]),
    "rest-hostile-block-size": (
        {"options": {"block_bytes": 100_000_000_000}},
        ["options.block_bytes 100000000000", "ICEFLOE_MAX_BLOCK_BYTES"],
    ),
    "rest-hostile-scheduler": (
        {"options": {"dask_address": "tcp://10.255.255.1:8786"}},
        ["options.dask_address 'tcp://10.255.255.1:8786'", "ICEFLOE_ALLOWED_DASK_ADDRESSES"],
    ),
    "rest-hostile-cluster-class": (
        {"options": {"cluster_class": "dask_jobqueue.SLURMCluster", "cluster_kwargs": {"job_script_prologue": ["id"]}}},
        ["options.cluster_class 'dask_jobqueue.SLURMCluster'", "ICEFLOE_CLUSTER_CLASS"],
    ),
    "rest-hostile-target": (
        {"repo": "/root/.icefloe-hostile"},
        ["repo '/root/.icefloe-hostile'", "ICEFLOE_ALLOWED_TARGETS"],
    ),
    "rest-hostile-source-file": (
        {"source": {"kind": "netcdf", "paths": "/etc/passwd"}},
        ["source.paths '/etc/passwd'", "ICEFLOE_ALLOWED_SOURCES"],
    ),
    "rest-hostile-source-address": (
        {"source": {"kind": "zarr", "url": "http://169.254.169.254/latest/meta-data/"}},
        ["source.url 'http://169.254.169.254/latest/meta-data/'", "ICEFLOE_ALLOWED_SOURCES"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REST_REFUSED))
def test_the_rest_api_refuses_bad_parameters_and_starts_nothing(name: str, stack: Stack) -> None:
    parameters, says = REST_REFUSED[name]
    deployment = stack.deployment_id("write-dataset", "write-dataset")
    before = len(stack.runs_of(deployment))

    response = stack.create_run(deployment, parameters)

    assert response.status_code in (409, 422), response.text
    for fragment in says:
        assert fragment in response.text, response.text
    assert len(stack.runs_of(deployment)) == before


@pytest.mark.slow
def test_rest_runs_with_bad_requests_fail_saying_why_and_create_nothing(stack: Stack, s3_env: None) -> None:
    """All at once (the runner takes them side by side): each fails, saying why, and leaves nothing behind."""
    deployment = stack.deployment_id("write-dataset", "write-dataset")
    targets = {name: f"s3://{BUCKET}/refused-{uuid.uuid4().hex}" for name in REST_FAILED}
    started = {}
    for name, (changes, _) in REST_FAILED.items():
        response = stack.create_run(deployment, {"repo": targets[name], "source": SMALL, **changes})
        assert response.status_code == 201, (name, response.text)
        started[name] = response.json()["id"]

    for name, (_, says) in REST_FAILED.items():
        run = stack.wait_until_done(started[name])
        assert run["state_type"] == "FAILED", (name, stack.log_text(run["id"]))
        for fragment in says:
            assert fragment in run["state"]["message"], (name, run["state"]["message"])
        assert not target_exists(targets[name]), name
    assert not Path("/root/.icefloe-hostile").exists()
