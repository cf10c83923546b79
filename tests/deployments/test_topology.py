"""The docker-compose topology without Docker: `prefect server start`, `dask scheduler`, two `dask worker`s, an S3
server (SeaweedFS, in MinIO's place) and `icefloe serve`, as local processes on loopback. Runs are triggered through the
REST API, as another system would, and checked in the S3 repository."""

import base64
import json
import re
import uuid
from pathlib import Path
from typing import Any

import boto3
import icechunk
import pytest
import xarray as xr

from tests.conftest import BUCKET, S3_ENV, assert_appends_landed_once
from tests.deployments.stack import TERMINAL, Stack
from tests.processes import wait_for
from tests.sources import COUNTED_CHUNK_BYTES, chunks_read, counted, steps

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.timeout(900)]

ENCODING = {"t2m": {"chunks": [24, 19, 36]}, "u10": {"chunks": [24, 19, 36]}}
SMALL = {"kind": "synthetic", "ntime": 48, "nlat": 19, "nlon": 36, "time_chunk": 24}


def _repository(target: str) -> icechunk.Repository:
    from tasks.storage.target import repository_storage

    return icechunk.Repository.open(repository_storage(target))


def _snapshots(target: str) -> list[icechunk.SnapshotInfo]:
    return list(_repository(target).ancestry(branch="main"))


def _opened(target: str, group: str | None = None) -> xr.Dataset:
    store = _repository(target).readonly_session("main").store
    return xr.open_zarr(store, group=group, consolidated=False).compute()


def test_a_rest_call_starts_a_run_that_lands_exactly_one_snapshot(stack: Stack, s3_env: None) -> None:
    target = f"s3://{BUCKET}/rest-{uuid.uuid4().hex}"
    deployment = stack.deployment_id("write-dataset", "write-dataset")

    response = stack.create_run(deployment, {"repo": target, "source": SMALL, "encoding": ENCODING})

    assert response.status_code == 201, response.text
    run = stack.wait_until_done(response.json()["id"])
    assert run["state_type"] == "COMPLETED", stack.log_text(run["id"])
    snapshots = _snapshots(target)
    assert len(snapshots) == 2  # the repository's first snapshot and the run's one
    assert snapshots[0].metadata["icefloe"]["flow_run_id"] == run["id"]
    assert snapshots[0].metadata["icefloe"]["deployment_id"] == deployment
    from tasks.storage.synthetic import SyntheticDataset

    xr.testing.assert_identical(_opened(target), SyntheticDataset(**SMALL).open().compute())


def test_a_commit_triggers_a_validate_run_of_its_snapshot_that_completes(stack: Stack, s3_env: None) -> None:
    target = f"s3://{BUCKET}/validated-{uuid.uuid4().hex}"
    written = stack.create_run(stack.deployment_id("write-dataset", "write-dataset"), {"repo": target, "source": SMALL})
    assert stack.wait_until_done(written.json()["id"])["state_type"] == "COMPLETED"
    snapshot = _snapshots(target)[0].id
    validate = stack.deployment_id("validate", "validate")

    def validation() -> dict[str, Any] | None:
        runs = [r for r in stack.runs_of(validate) if r["parameters"].get("snapshot") == snapshot]
        return runs[0] if runs and runs[0]["state_type"] in TERMINAL else None

    try:
        run = wait_for(validation, "a validate run of the new snapshot", timeout=180)
    except TimeoutError as e:  # say what did happen
        seen = [(r["state_type"], r["parameters"]) for r in stack.runs_of(validate)]
        raise AssertionError(f"{e}; validate runs: {seen}; logs in {stack.logs}") from e
    assert run["state_type"] == "COMPLETED", stack.log_text(run["id"])
    assert run["parameters"] == {"repo": target, "branch": "main", "snapshot": snapshot}
    # the run's process delivers its logs in batches: the last ones can reach the API after its final state
    try:
        wait_for(lambda: "chunks present and readable: passed" in stack.log_text(run["id"]) or None, "the check")
    except TimeoutError as e:
        raise AssertionError(f"{e}; the run's logs: {stack.log_text(run['id'])!r}") from e


def test_invalid_parameters_are_refused_by_the_api_and_nothing_runs(stack: Stack) -> None:
    deployment = stack.deployment_id("write-dataset", "write-dataset")
    before = len(stack.runs_of(deployment))
    served = stack.get(f"/deployments/{deployment}").raise_for_status().json()
    assert served["enforce_parameter_schema"] is True
    assert all(p.get("description") for p in served["parameter_openapi_schema"]["properties"].values())

    bad_source = stack.create_run(deployment, {"repo": "s3://b/r", "source": {"kind": "netcdf"}})
    bad_mode = stack.create_run(deployment, {"repo": "s3://b/r", "source": SMALL, "mode": "overwrite"})
    missing_repo = stack.create_run(deployment, {"source": SMALL})

    for response in (bad_source, bad_mode, missing_repo):
        assert 400 <= response.status_code < 500, response.text
        assert "Validation failed" in response.text or "validation" in response.text.lower()
    assert len(stack.runs_of(deployment)) == before


def test_two_simultaneous_runs_on_one_target_both_land(stack: Stack, s3_env: None) -> None:
    target = f"s3://{BUCKET}/both-{uuid.uuid4().hex}"
    deployment = stack.deployment_id("write-dataset", "write-dataset")
    parameters = [{"repo": target, "source": SMALL, "group": group, "mode": "w"} for group in ("a", "b")]

    responses = [stack.create_run(deployment, p) for p in parameters]  # both queued before either starts
    runs = [stack.wait_until_done(r.json()["id"]) for r in responses]

    assert [run["state_type"] for run in runs] == ["COMPLETED", "COMPLETED"]
    held = re.compile(r"holding target .* after [\d.]+ s")
    for run in runs:  # each waited for the target's slot, then held it (logs arrive shortly after the state)
        wait_for(lambda r=run: held.search(stack.log_text(r["id"])), f"run {run['id']} to log its slot", timeout=60)
    snapshots = _snapshots(target)
    assert len(snapshots) == 3
    assert {s.metadata["icefloe"]["flow_run_id"] for s in snapshots[:2]} == {run["id"] for run in runs}
    from tasks.storage.synthetic import SyntheticDataset

    for group in ("a", "b"):
        xr.testing.assert_identical(_opened(target, group), SyntheticDataset(**SMALL).open().compute())


def test_the_schedule_appends_once_and_then_commits_nothing(stack: Stack, s3_env: None) -> None:
    """And publishes what it appends: the ingest deployment's default."""
    deployment = stack.deployment_id("ingest", "ingest")

    def two_completed() -> list[dict[str, Any]] | None:
        # a run that fires while the previous one works is cancelled (the deployment's limit): not counted; nor are
        # the runs other tests create on the deployment
        done = [
            r for r in stack.runs_of(deployment) if r["auto_scheduled"] and r["state_type"] in TERMINAL - {"CANCELLED"}
        ]
        return done[:2] if len(done) >= 2 else None

    first, second = wait_for(two_completed, f"two scheduled ingest runs (logs in {stack.logs})", timeout=300)

    assert [first["state_type"], second["state_type"]] == ["COMPLETED", "COMPLETED"], stack.log_text(first["id"])
    # a run's last logs reach the API shortly after its final state
    wait_for(lambda: "24 new steps" in stack.log_text(first["id"]) or None, "the first run's log", timeout=60)
    wait_for(lambda: "nothing new" in stack.log_text(second["id"]) or None, "the second run's log", timeout=60)
    snapshots = _snapshots(stack.ingest_repo)
    assert [s.message for s in snapshots][1:] == ["first day", "Repository initialized"]
    assert snapshots[0].metadata["icefloe"]["flow_run_id"] == first["id"]
    xr.testing.assert_identical(_opened(stack.ingest_repo), steps(0, 48).compute())
    (published,) = wait_for(lambda: stack.events("icefloe.snapshot.published", first["id"]), "published", timeout=60)
    assert published["payload"]["snapshot"] == snapshots[0].id
    assert published["payload"]["parent"] == snapshots[1].id
    assert _repository(stack.ingest_repo).list_branches() == {"main"}  # the staging branch went with the publish


def test_the_stack_reported_to_one_api(stack: Stack) -> None:
    """Every program of the stack used the server the test started (no temporary servers)."""
    for log in stack.logs.glob("*.log"):
        assert "Starting temporary server" not in log.read_text(), log.name


def _failed_run(stack: Stack, target: str, markers: Path, failing_chunk: str) -> str:
    """A write-dataset run of `tests.sources:counted` into `target`, a block per chunk, that fails at
    `failing_chunk` (its marker stays in `markers`) after keeping the blocks that finished; its id."""
    markers.mkdir()
    (markers / f"fail-{failing_chunk}").touch()
    source = {"kind": "callable", "function": "tests.sources:counted", "keywords": {"marker_dir": str(markers)}}
    parameters = {"repo": target, "source": source, "options": {"block_bytes": COUNTED_CHUNK_BYTES, "retries": 0}}
    run: str = stack.create_run(stack.deployment_id("write-dataset", "write-dataset"), parameters).json()["id"]
    assert stack.wait_until_done(run)["state_type"] == "FAILED"
    return run


def test_no_secret_appears_anywhere_after_served_runs(stack: Stack, s3_env: None, tmp_path: Path) -> None:
    """After the module's runs on S3, and one more that fails and keeps its finished blocks there: neither the S3
    secret key nor the API's auth string (as given, or as the basic-auth header carries it) is in any Prefect table
    (flow and task runs with their parameters and results, logs, artifacts, events, variables), any program's output,
    any commit's metadata or any object the runs wrote (repositories, kept sets and forks)."""
    _failed_run(stack, f"s3://{BUCKET}/kept-{uuid.uuid4().hex}", tmp_path / "markers", "1-0-0")
    password = stack.auth_string.partition(":")[2]
    secrets = [S3_ENV["AWS_SECRET_ACCESS_KEY"], password, base64.b64encode(stack.auth_string.encode()).decode()]

    def assert_none_in(where: str, text: str | bytes) -> None:
        found = [s for s in secrets if (s.encode() if isinstance(text, bytes) else s) in text]
        assert not found, f"{where} holds a secret"

    objects = boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert any("/icefloe/kept/" in o["Key"] for o in objects)
    for key in (o["Key"] for o in objects if not o["Key"].endswith(".nc")):
        assert_none_in(key, boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())
    for prefix in {o["Key"].split("/icefloe/")[0] for o in objects if "/icefloe/kept/" in o["Key"]}:
        for snapshot in _repository(f"s3://{BUCKET}/{prefix}").ancestry(branch="main"):
            assert_none_in(f"{prefix} {snapshot.id}'s metadata", json.dumps(snapshot.metadata, default=str))
    home = Path(stack.env["PREFECT_HOME"])
    files = [p for p in [*home.rglob("*"), *stack.logs.glob("*.log")] if p.is_file()]
    assert any(p.name.startswith("prefect.db") for p in files)
    assert any(p.name == "icefloe-serve.log" for p in files)  # the runner's output, its runs' included
    for path in files:
        assert_none_in(str(path), path.read_bytes())
    for endpoint in ("logs", "artifacts", "flow_runs", "task_runs", "variables"):
        for offset in range(0, 10_000, 50):  # the API answers 50 at a time
            answer = stack.post(f"/{endpoint}/filter", {"limit": 50, "offset": offset})
            assert answer.status_code == 200, answer.text
            assert_none_in(f"the API's {endpoint}", answer.text)
            if len(answer.json()) < 50:
                break
    page = stack.post("/events/filter", {"limit": 50}).raise_for_status().json()
    while True:
        assert_none_in("the API's events", json.dumps(page["events"]))
        if not page.get("next_page"):
            break
        page = stack.get(page["next_page"].removeprefix(stack.api)).raise_for_status().json()


def _flow_run_processes(run_id: str) -> list[str]:
    """Processes running flow run `run_id` (a runner starts each with PREFECT__FLOW_RUN_ID in its environment)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"PREFECT__FLOW_RUN_ID={run_id}".encode() in (proc / "environ").read_bytes():
                found.append(proc.name)
        except OSError:
            continue
    return found


def test_a_run_cancelled_from_prefect_commits_nothing_and_the_next_one_resumes_at_once(
    stack: Stack, s3_env: None, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    target = f"s3://{BUCKET}/cancelled-{uuid.uuid4().hex}"
    prefix = target.removeprefix(f"s3://{BUCKET}/")
    source = {"kind": "callable", "function": "tests.sources:counted",
              "keywords": {"marker_dir": str(markers), "ntime": 192, "pause": 1.0}}  # fmt: skip
    parameters = {"repo": target, "source": source, "options": {"block_bytes": COUNTED_CHUNK_BYTES, "retries": 0}}
    deployment = stack.deployment_id("write-dataset", "write-dataset")
    s3 = boto3.client("s3")

    def kept() -> int:
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/icefloe/kept/").get("Contents", [])
        return sum("/blocks/" in o["Key"] for o in listed)

    first = stack.create_run(deployment, parameters).json()["id"]
    wait_for(lambda: kept() or None, "a first block kept", timeout=180)
    cancelling = {"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True}
    stack.post(f"/flow_runs/{first}/set_state", cancelling).raise_for_status()
    assert stack.wait_until_done(first, timeout=120)["state_type"] == "CANCELLED"

    assert [s.message for s in _snapshots(target)] == ["Repository initialized"]  # nothing committed
    wait_for(lambda: not _flow_run_processes(first) or None, "the cancelled run's process to end", timeout=60)
    finished = kept()
    assert 1 <= finished < 8

    second = stack.create_run(deployment, parameters).json()["id"]
    assert stack.wait_until_done(second, timeout=300)["state_type"] == "COMPLETED", stack.log_text(second)
    waited = wait_for(lambda: re.search(r"holding target .* after ([\d.]+) s", stack.log_text(second)),
                      "the second run's log", timeout=60)  # fmt: skip
    assert float(waited.group(1)) < 30  # the cancelled run released the target, or its record says it is gone
    snapshots = _snapshots(target)
    assert len(snapshots) == 2
    assert snapshots[0].metadata["icefloe"]["reused_blocks"] >= finished
    (tmp_path / "unused").mkdir()
    xr.testing.assert_identical(_opened(target), counted(str(tmp_path / "unused"), ntime=192).compute())


def test_two_served_runs_appending_to_one_target_take_turns_three_rounds(stack: Stack, s3_env: None) -> None:
    target = f"s3://{BUCKET}/writers-{uuid.uuid4().hex}"
    deployment = stack.deployment_id("write-dataset", "write-dataset")

    def appending(start: int, stop: int, **more: object) -> dict[str, object]:
        source = {"kind": "callable", "function": "tests.sources:steps", "keywords": {"start": start, "stop": stop}}
        return {"repo": target, "source": source, **more}

    first = stack.create_run(deployment, appending(0, 8)).json()["id"]
    assert stack.wait_until_done(first)["state_type"] == "COMPLETED", stack.log_text(first)
    for round_ in range(3):  # each round ~20 s here: the suite must stay under 20 minutes on 2 cores
        starts = (8 * (1 + 2 * round_), 8 * (2 + 2 * round_))
        runs = [stack.create_run(deployment, appending(s, s + 8, append_dim="time")).json()["id"] for s in starts]
        states = [stack.wait_until_done(run)["state_type"] for run in runs]
        assert states == ["COMPLETED", "COMPLETED"], [stack.log_text(run) for run in runs]

    assert_appends_landed_once(target, list(range(56)))
    assert len(_snapshots(target)) == 2 + 6


def test_a_failed_run_retried_from_the_ui_writes_only_what_it_had_not_finished(
    stack: Stack, s3_env: None, tmp_path: Path
) -> None:
    markers, target = tmp_path / "markers", f"s3://{BUCKET}/retried-{uuid.uuid4().hex}"
    run = _failed_run(stack, target, markers, "2-0-0")
    (markers / "fail-2-0-0").unlink()
    for read in markers.glob("read-*"):
        read.unlink()

    # what the UI's Retry button sends: the same flow run, scheduled again
    retry = {"state": {"type": "SCHEDULED", "name": "AwaitingRetry"}, "force": True}
    stack.post(f"/flow_runs/{run}/set_state", retry).raise_for_status()
    wait_for(lambda: stack.get(f"/flow_runs/{run}").json()["run_count"] >= 2 or None, "the retry", 120)
    assert stack.wait_until_done(run)["state_type"] == "COMPLETED", stack.log_text(run)

    assert chunks_read(markers) == ["t2m-2-0-0", "u10-2-0-0"]
    snapshots = _snapshots(target)
    assert len(snapshots) == 2
    assert snapshots[0].metadata["icefloe"]["reused_blocks"] == 3
