"""What a user sees of a run in Prefect, read back through the REST API: a task run per stage, the summary, the
block table, the progress artifact at 100, and the `icefloe.snapshot.committed` event."""

import json
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import xarray as xr
from prefect.settings import PREFECT_API_URL

from flows.bar import Bar
from flows.progress import BlockProgress
from flows.write_dataset import write_dataset
from tasks.request import WriteOptions
from tasks.storage.synthetic import SyntheticDataset
from tests.conftest import open_repo
from tests.processes import wait_for

SOURCE = SyntheticDataset(ntime=48, nlat=19, nlon=36, time_chunk=12)


def _api(method: str, path: str, **body: Any) -> Any:
    response = httpx.request(method, f"{PREFECT_API_URL.value()}{path}", json=body or None, timeout=30)
    return response.raise_for_status().json()


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory, dask_address: str) -> tuple[UUID, str, str, str]:
    """One write_dataset flow run: its id, target, new snapshot and parent."""
    repo = str(tmp_path_factory.mktemp("reporting") / "repo")
    options = WriteOptions(dask_address=dask_address, block_bytes=19 * 36 * 12 * 8)
    state = write_dataset(repo=repo, source=SOURCE, options=options, return_state=True)
    assert state.is_completed()
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    snapshot, parent = [s.id for s in open_repo(repo).ancestry(branch="main")][:2]
    return run_id, repo, snapshot, parent


def test_the_stages_are_task_runs_that_completed(committed: tuple[UUID, str, str, str]) -> None:
    run_id, *_ = committed
    task_runs = _api("POST", "/task_runs/filter", flow_runs={"id": {"any_": [str(run_id)]}}, limit=200)
    states = {r["name"]: r["state_type"] for r in task_runs}

    assert states.pop("initialize") == "COMPLETED"
    assert states.pop("merge-and-commit") == "COMPLETED"
    assert len(states) == 4  # one per block: 48 steps in blocks of 12
    assert set(states.values()) == {"COMPLETED"}


def test_the_run_has_a_summary_a_block_table_and_progress_at_100(committed: tuple[UUID, str, str, str]) -> None:
    run_id, repo, snapshot, parent = committed
    artifacts = _api("POST", "/artifacts/filter", artifacts={"flow_run_id": {"any_": [str(run_id)]}})
    by_type: dict[str, list[dict[str, Any]]] = {}
    for artifact in artifacts:
        by_type.setdefault(artifact["type"], []).append(artifact)

    (summary,) = by_type["markdown"]
    assert f"committed snapshot `{snapshot}`" in summary["data"]
    assert f"`{parent}` → `{snapshot}`" in summary["data"]
    assert f"icefloe history {repo} --branch main" in summary["data"]
    assert "| `t2m` | created | 4 |" in summary["data"]  # 4 chunks of 12 steps
    (table,) = by_type["table"]
    rows = json.loads(table["data"])  # Prefect keeps a table as JSON text
    assert sorted(r["block"] for r in rows) == [f"t2m+u10[{a}:{a + 12}, 0:19, 0:36]" for a in (0, 12, 24, 36)]
    assert all(r["chunks"] == 2 and r["attempt"] == 1 and not r["kept"] for r in rows)
    (progress,) = by_type["progress"]
    assert progress["data"] == 100.0


def test_the_commit_emits_an_event_with_its_snapshot_and_parent(committed: tuple[UUID, str, str, str]) -> None:
    run_id, repo, snapshot, parent = committed

    def emitted() -> list[dict[str, Any]] | None:
        page = _api(
            "POST",
            "/events/filter",
            filter={
                "event": {"name": ["icefloe.snapshot.committed"]},
                "related": {"id": [f"prefect.flow-run.{run_id}"]},
            },
        )
        return page["events"] or None

    (event,) = wait_for(emitted, "the committed event", timeout=30)
    assert event["resource"]["icefloe.target"] == repo
    assert event["resource"]["icefloe.branch"] == "main"
    assert event["payload"]["snapshot"] == snapshot
    assert event["payload"]["parent"] == parent
    assert event["payload"]["arrays"] == ["t2m", "u10"]
    assert {r["prefect.resource.role"] for r in event["related"]} >= {"flow-run", "flow"}


def test_the_data_read_back_equals_the_source(committed: tuple[UUID, str, str, str]) -> None:
    _, repo, _, _ = committed
    written = xr.open_zarr(open_repo(repo).readonly_session("main").store, consolidated=False)
    xr.testing.assert_identical(written, SOURCE.open().compute())


@pytest.mark.parametrize("seconds_per_block", [0.0, 0.01, 0.1])
def test_5000_blocks_make_fewer_than_200_progress_updates_and_end_at_100(seconds_per_block: float) -> None:
    updates: list[float] = []
    now = [0.0]

    def clock() -> float:
        now[0] += seconds_per_block
        return now[0]

    progress = BlockProgress(5000, Bar(), uuid4(), update=lambda _, percent: updates.append(percent), clock=clock)
    for _ in range(5000):
        progress.advance()

    assert len(updates) < 200
    assert updates[-1] == 100.0
    assert updates == sorted(updates)
