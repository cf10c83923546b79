"""The served `ingest` deployment publishes by default: a day with a step of NaNs, sent through the REST API with
nothing but the repository and the source, is rejected (the run fails, `main` stays, the staged snapshot is kept,
the event names it). That its good days are published is shown by its schedule's runs
(`tests/deployments/test_topology.py::test_the_schedule_appends_once_and_then_commits_nothing`)."""

import json
import uuid
from typing import Any

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
    to_icechunk(steps(0, 48), session, encoding=ENCODING)
    tip = session.commit("two days")
    keywords = {"start": 48, "stop": 72, "defect": "nan"}
    nan_day = {"kind": "callable", "function": "tests.sources:defective", "keywords": keywords}

    bad = _ingest(stack, target, nan_day)

    assert bad["state_type"] == "FAILED"
    assert "publish" not in bad["parameters"]  # not given: the flow's default
    (rejected,) = wait_for(lambda: stack.events("icefloe.snapshot.rejected", bad["id"]), "rejected", timeout=60)
    (check,) = rejected["payload"]["failed_checks"]
    assert check["check"] == "no all-NaN 'time' step"
    assert "'t2m' at 2020-01-03 01:00:00" in check["detail"]
    assert open_repo(target).lookup_branch("main") == tip
    staged = rejected["payload"]["staged_branch"]
    assert open_repo(target).list_branches() == {"main", staged}
    assert committed(target, branch=staged).sizes["time"] == 72
    xr.testing.assert_identical(committed(target), steps(0, 48).compute())
    wait_for(lambda: "failed its checks" in stack.log_text(bad["id"]) or None, "the rejected run's log", timeout=60)
    artifacts = stack.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [bad["id"]]}}}).json()
    (table,) = [a for a in artifacts if a["type"] == "table" and "before publishing" in (a["description"] or "")]
    rows = json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]
    assert {r["check"]: r["outcome"] for r in rows}["no all-NaN 'time' step"] == "failed"
    (summary,) = [a for a in artifacts if a["type"] == "markdown"]
    assert "→ **not published**: `main` did not move" in summary["data"]
