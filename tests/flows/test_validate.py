"""`icefloe validate` and the `validate` flow: a sound snapshot passes every check; a missing chunk, an all-NaN step,
a time coordinate that repeats, or data that differs from the source fails it, naming what is wrong."""

import asyncio
import json
import re
from pathlib import Path

import icechunk
import numpy as np
import pytest
import xarray as xr
from icechunk.xarray import to_icechunk
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.validate import validate
from tasks.errors import ValidationFailedError
from tasks.request import WriteOptions
from tasks.running.local import LocalOrchestrator
from tasks.running.runs import run_write_dataset
from tasks.storage.synthetic import SyntheticDataset
from tasks.storage.target import repository_storage
from tests.conftest import open_repo
from tests.processes import command_env, icefloe

SOURCE = SyntheticDataset(ntime=48, nlat=19, nlon=36, time_chunk=12)
SOURCE_JSON = SOURCE.model_dump_json()


@pytest.fixture
def written(repo_path: str) -> str:
    """A repository icefloe wrote the source into (one commit, blocks of 12 steps)."""
    run_write_dataset(LocalOrchestrator(), repo_path, SOURCE, options=WriteOptions(n_workers=2))
    return repo_path


def _validate(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    done = icefloe("validate", *args, env=command_env(tmp_path / "home"), cwd=tmp_path)
    return done.returncode, done.stdout, done.stderr


def test_a_written_snapshot_passes_every_check(written: str, tmp_path: Path) -> None:
    code, out, err = _validate(tmp_path, written, "--source", SOURCE_JSON)

    assert code == 0, err
    tip = open_repo(written).lookup_branch("main")
    assert f"snapshot {tip} of {written}" in out
    assert "passed   chunks present" in out
    assert "all 8 chunks the commit wrote" in out
    assert "passed   dtypes and shapes as declared" in out
    assert "passed   'time' increasing, no duplicates" in out
    assert "passed   no all-NaN 'time' step" in out
    assert "96 written steps checked" in out
    assert "passed   sample equals the source" in out
    assert "6 chunks compared" in out


def test_a_chunk_missing_from_the_snapshots_manifest_fails_naming_it(written: str, tmp_path: Path) -> None:
    repo = open_repo(written)
    tip = repo.lookup_snapshot(repo.lookup_branch("main"))
    session = repo.writable_session("main")
    asyncio.run(session.store.delete("t2m/c/1/0/0"))
    session.amend(tip.message, metadata=tip.metadata)  # the same commit, one chunk short

    code, out, err = _validate(tmp_path, written)

    assert code == 1
    assert "failed   chunks present" in out
    assert "1 of 8 written chunks are missing: 't2m' chunk (1, 0, 0)" in err


def _delete_one_chunk_object(repo_path: str) -> None:
    """What a garbage collection with too new a cutoff, or a bucket's lifecycle rule, does: the manifest still
    refers to the chunk, its object is gone."""
    objects = sorted((Path(repo_path) / "chunks").iterdir())
    assert len(objects) == 8  # the data variables' chunks; the small coordinates sit inline in the manifest
    objects[3].unlink()


def test_a_chunk_whose_object_is_gone_fails_the_check_naming_it_with_exit_1(written: str, tmp_path: Path) -> None:
    _delete_one_chunk_object(written)

    code, out, err = _validate(tmp_path, written, "--source", SOURCE_JSON)

    assert code == 1, err
    assert "failed   chunks present and readable" in out
    assert re.search(r"1 of 8 written chunks cannot be read: '(t2m|u10)' chunk \(\d, 0, 0\) \(StorageError", err), err
    assert "refused" not in err


def test_a_chunk_whose_object_is_gone_fails_the_validate_flow_with_its_table(written: str) -> None:
    _delete_one_chunk_object(written)

    state = validate(repo=written, return_state=True)

    assert state.is_failed()
    with pytest.raises(ValidationFailedError, match="chunks present and readable: 1 of 8 written chunks cannot be"):
        state.result()
    rows = _table(state.state_details.flow_run_id)
    assert {"check": "chunks present and readable", "outcome": "failed"}.items() <= rows[0].items()
    assert any(r["check"] == "dtypes and shapes as declared" and r["outcome"] == "passed" for r in rows)


def _table(run_id: object) -> list[dict[str, str]]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    (table,) = [a for a in artifacts if a.type == "table"]
    return json.loads(table.data) if isinstance(table.data, str) else table.data  # type: ignore[return-value]


def _plain_write(repo_path: str, dataset: xr.Dataset) -> None:
    session = icechunk.Repository.create(repository_storage(repo_path)).writable_session("main")
    to_icechunk(dataset, session)
    session.commit("written without icefloe")


def test_a_step_that_is_nan_everywhere_fails_unless_allowed(repo_path: str, tmp_path: Path) -> None:
    dataset = SOURCE.open().compute()
    dataset["t2m"][30] = np.nan
    _plain_write(repo_path, dataset)

    code, _out, err = _validate(tmp_path, repo_path)
    allowed, _, _ = _validate(tmp_path, repo_path, "--allow-nan")

    assert code == 1
    assert "no all-NaN 'time' step: NaN everywhere: 't2m' at 2020-01-02 06:00:00" in err
    assert allowed == 0


def test_a_repeated_time_step_fails(repo_path: str, tmp_path: Path) -> None:
    dataset = SOURCE.open().compute()
    times = dataset.time.values.copy()
    times[20] = times[19]
    _plain_write(repo_path, dataset.assign_coords(time=times))

    code, _, err = _validate(tmp_path, repo_path)

    assert code == 1
    assert "'time' increasing, no duplicates: duplicated: 2020-01-01 19:00:00" in err


def test_data_that_differs_from_the_source_fails_the_validate_flow_with_a_table(written: str) -> None:
    other = SyntheticDataset(ntime=48, nlat=19, nlon=36, time_chunk=12, seed=7)

    state = validate(repo=written, source=other, return_state=True)

    assert state.is_failed()
    with pytest.raises(Exception, match=r"sample equals the source: differs at 't2m' \[0:12, 0:19, 0:36\]"):
        state.result()
    with get_client(sync_client=True) as client:
        run_id = state.state_details.flow_run_id
        tables = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    (table,) = [t for t in tables if t.type == "table"]
    assert '"outcome": "failed"' in str(table.data)
    assert "sample equals the source" in str(table.data)
