"""ingest and backfill: only new steps appended, reruns commit nothing, overlaps skipped (by default), refused or
rewritten in place."""

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import xarray as xr
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from flows.ingest import backfill, ingest
from tasks.errors import InvalidRequestError
from tasks.request import WriteOptions
from tasks.storage.file_sources import NetCDFSource
from tasks.storage.sources import CallableSource
from tests.conftest import open_repo, snapshot_count
from tests.processes import wait_for
from tests.sources import netcdf_files, steps

ENCODING = {"t2m": {"chunks": (24, 19, 36)}, "u10": {"chunks": (24, 19, 36)}}


def source(start: int, stop: int, scale: float = 1.0) -> CallableSource:
    return CallableSource(function="tests.sources:steps", keywords={"start": start, "stop": stop, "scale": scale})


def options(dask_address: str) -> WriteOptions:
    return WriteOptions(dask_address=dask_address, block_bytes=20_000, retry_delay_seconds=0)


def opened(repo: str) -> xr.Dataset:
    return xr.open_zarr(open_repo(repo).readonly_session("main").store, consolidated=False).compute()


def test_ingest_appends_only_new_steps_and_a_rerun_commits_nothing(repo_path: str, dask_address: str) -> None:
    kwargs: dict[str, Any] = {"repo": repo_path, "encoding": ENCODING, "options": options(dask_address)}
    first = ingest(source=source(0, 30), **kwargs)  # creates the group; 30: the last chunk is partial
    second = ingest(source=source(0, 50), overlap="skip", **kwargs)
    again = ingest(source=source(0, 50), overlap="skip", **kwargs)

    assert first is not None
    assert second is not None
    assert again is None
    assert snapshot_count(repo_path) == 3  # the rerun made no commit
    xr.testing.assert_identical(opened(repo_path), steps(0, 50).compute())


def test_a_scheduled_ingest_of_a_growing_glob_appends_exactly_the_new_file_each_run(
    repo_path: str, dask_address: str, tmp_path: Path
) -> None:
    files = netcdf_files(tmp_path / "raw", steps(0, 96).compute(), steps_per_file=24)
    arrived = tmp_path / "arrived"
    arrived.mkdir()
    glob = NetCDFSource(paths=str(arrived / "*.nc"))
    for n, file in enumerate(files, start=1):
        file.rename(arrived / file.name)  # one new file before each scheduled run, which has the same parameters

        state = ingest(repo=repo_path, source=glob, encoding=ENCODING, options=options(dask_address), return_state=True)

        assert state.is_completed()
        assert snapshot_count(repo_path) == n + 1  # one commit a run
        xr.testing.assert_identical(opened(repo_path), steps(0, 24 * n).compute())
        run_id = state.state_details.flow_run_id
        said = f"24 new steps, 0 rewritten, {24 * (n - 1)} skipped (already held)"
        wait_for(lambda s=said, r=run_id: s in _log_text(r) or None, f"the run's log: {said}", 30)


def _log_text(flow_run_id: UUID | None) -> str:
    """The run's logs, as the API has them (they arrive shortly after the run ends)."""
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(entry.message for entry in logs)


def test_steps_the_target_holds_are_refused_when_asked(repo_path: str, dask_address: str) -> None:
    ingest(repo=repo_path, source=source(0, 24), encoding=ENCODING, options=options(dask_address))
    before = open_repo(repo_path).lookup_branch("main")

    with pytest.raises(InvalidRequestError, match="already holds 4 steps"):
        ingest(repo=repo_path, source=source(20, 48), overlap="refuse", options=options(dask_address))

    assert open_repo(repo_path).lookup_branch("main") == before


def test_rewrite_replaces_held_steps_in_place_and_appends_the_rest_in_one_commit(
    repo_path: str, dask_address: str
) -> None:
    ingest(repo=repo_path, source=source(0, 40), encoding=ENCODING, options=options(dask_address))

    ingest(repo=repo_path, source=source(30, 60, scale=2), overlap="rewrite", options=options(dask_address))

    expected = xr.concat([steps(0, 30), steps(30, 60, scale=2)], dim="time").compute()
    xr.testing.assert_identical(opened(repo_path), expected)
    assert snapshot_count(repo_path) == 3


def test_backfill_rewrites_a_time_range_in_place(repo_path: str, dask_address: str) -> None:
    ingest(repo=repo_path, source=source(0, 72), encoding=ENCODING, options=options(dask_address))
    times = steps(0, 72).indexes["time"]

    result = backfill(
        repo=repo_path,
        source=source(0, 72, scale=2),
        start=str(times[24]),
        end=str(times[47]),
        options=options(dask_address),
    )

    assert result is not None
    expected = xr.concat([steps(0, 24), steps(24, 48, scale=2), steps(48, 72)], dim="time").compute()
    xr.testing.assert_identical(opened(repo_path), expected)
    assert snapshot_count(repo_path) == 3
