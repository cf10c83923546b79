"""The served `ingest` deployment publishes by default: a run through the REST API stages its day, checks it and
moves `main`; a day with a step of NaNs is rejected (the run fails, `main` stays, the staged snapshot is kept), each
with its event."""

import uuid
from typing import Any

import httpx
import icechunk
import pytest
import xarray as xr
from icechunk.xarray import to_icechunk

from tests.conftest import BUCKET, committed, open_repo
from tests.deployments.conftest import ENCODING
from tests.deployments.stack import Stack
from tests.processes import wait_for
from tests.sources import steps

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _event(stack: Stack, name: str, run_id: str) -> list[dict[str, Any]] | None:
    body = {"filter": {"event": {"name": [name]}, "related": {"id": [f"prefect.flow-run.{run_id}"]}}}
    events = httpx.post(f"{stack.api}/events/filter", json=body, timeout=30).raise_for_status().json()["events"]
    return events or None


def _ingest(stack: Stack, target: str, source: dict[str, Any]) -> dict[str, Any]:
    """An ingest run created as `curl` does, with only the repository and the source: the deployment's defaults
    (its schedule paused meanwhile: a run created while a scheduled one works is cancelled)."""
    deployment = stack.deployment_id("ingest", "ingest")
    with stack.schedule_paused(deployment):
        response = stack.create_run(deployment, {"repo": target, "source": source})
        return stack.wait_until_done(response.raise_for_status().json()["id"])


def test_served_ingest_publishes_by_default_and_rejects_a_day_with_a_nan_step(stack: Stack, s3_env: None) -> None:
    from tasks.storage.target import repository_storage

    target = f"s3://{BUCKET}/published-{uuid.uuid4().hex}"
    session = icechunk.Repository.create(repository_storage(target)).writable_session("main")
    to_icechunk(steps(0, 24), session, encoding=ENCODING)
    first_day = session.commit("first day")
    day = {"kind": "callable", "function": "tests.sources:steps", "keywords": {"start": 0, "stop": 48}}

    good = _ingest(stack, target, day)

    assert good["state_type"] == "COMPLETED", stack.log_text(good["id"])
    assert "publish" not in good["parameters"]  # not given: the flow's default
    (published,) = wait_for(lambda: _event(stack, "icefloe.snapshot.published", good["id"]), "published", timeout=60)
    repo = open_repo(target)
    tip = repo.lookup_branch("main")
    assert published["payload"]["snapshot"] == tip
    assert published["payload"]["parent"] == first_day
    assert repo.list_branches() == {"main"}
    xr.testing.assert_identical(committed(target), steps(0, 48).compute())

    keywords = {"start": 48, "stop": 72, "defect": "nan"}
    nan_day = {"kind": "callable", "function": "tests.sources:defective", "keywords": keywords}
    bad = _ingest(stack, target, nan_day)

    assert bad["state_type"] == "FAILED"
    (rejected,) = wait_for(lambda: _event(stack, "icefloe.snapshot.rejected", bad["id"]), "rejected", timeout=60)
    (check,) = rejected["payload"]["failed_checks"]
    assert check["check"] == "no all-NaN 'time' step"
    assert "'t2m' at 2020-01-03 01:00:00" in check["detail"]
    assert open_repo(target).lookup_branch("main") == tip
    staged = rejected["payload"]["staged_branch"]
    assert open_repo(target).list_branches() == {"main", staged}
    assert committed(target, branch=staged).sizes["time"] == 72
    wait_for(lambda: "failed its checks" in stack.log_text(bad["id"]) or None, "the rejected run's log", timeout=60)
