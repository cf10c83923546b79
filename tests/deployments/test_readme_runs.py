"""The README's ways of triggering a deployment's run, as written, against the served stack: `prefect deployment
run` with JSON parameters, the REST API through curl, and Python's `run_deployment` (a backfill). The buckets the
README names (raw, lake) are made on the stack's S3 server; only `uv run` is replaced (tests/readme.py)."""

import json
import re
from pathlib import Path

import icechunk
import pytest
import xarray as xr
from icechunk.xarray import to_icechunk
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

from tests.conftest import committed
from tests.deployments.stack import Stack
from tests.readme import block, commands, fresh_buckets, run, small, upload

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.timeout(600)]


def test_the_readme_triggers_runs_as_written(stack: Stack, s3_env: None, tmp_path: Path) -> None:
    from tasks.storage.synthetic import SyntheticDataset
    from tasks.storage.target import repository_storage

    fresh_buckets(stack.env["AWS_ENDPOINT_URL"], "raw", "lake")
    env = {**stack.env, "PREFECT_API_URL": stack.api}

    # prefect deployment run, parameters as JSON: a new target
    (deployment_run,) = commands(block("prefect deployment run write-dataset/write-dataset"))
    created = re.search(r"UUID: ([0-9a-f-]{36})", run(deployment_run, env, tmp_path))
    assert created, deployment_run
    assert stack.wait_until_done(created.group(1))["state_type"] == "COMPLETED", stack.log_text(created.group(1))
    xr.testing.assert_identical(committed("s3://lake/era5.icechunk"), SyntheticDataset(ntime=48).open().compute())

    # the REST API through curl: a Zarr store on S3 over it, mode w
    source = small(48, "2026-09-01", seed=5)
    source.to_zarr("s3://raw/era5.zarr", mode="w", consolidated=False)
    answer = json.loads(run("\n".join(commands(block("create_flow_run"))), env, tmp_path))
    assert "id" in answer, answer  # an answer without a run, shown
    assert stack.wait_until_done(answer["id"])["state_type"] == "COMPLETED", stack.log_text(answer["id"])
    xr.testing.assert_identical(committed("s3://lake/era5.icechunk"), source)

    # run_deployment: a backfill of 2026-10-03 to 2026-10-05 from daily files, into October
    fresh_buckets(stack.env["AWS_ENDPOINT_URL"], "raw", "lake")
    october = small(24 * 7, "2026-10-01")
    session = icechunk.Repository.create(repository_storage("s3://lake/era5.icechunk")).writable_session("main")
    to_icechunk(october, session, encoding={name: {"chunks": (24, 19, 36)} for name in october.data_vars})
    session.commit("October's first week")
    fixed = [small(24, f"2026-10-0{day}", seed=day) for day in (3, 4, 5)]
    for day, dataset in zip((3, 4, 5), fixed, strict=True):
        upload(dataset, f"s3://raw/era5/2026-10-0{day}.nc", tmp_path)
    namespace: dict[str, object] = {}
    with temporary_settings({PREFECT_API_URL: stack.api, PREFECT_API_AUTH_STRING: stack.auth_string}):  # as exported
        exec(block('"backfill/backfill"'), namespace)
    assert namespace["run"].state.is_completed()  # type: ignore[attr-defined]
    expected = october.copy()
    expected.loc[{"time": slice("2026-10-03", "2026-10-05")}] = xr.concat(fixed, "time")
    xr.testing.assert_equal(committed("s3://lake/era5.icechunk"), expected)
