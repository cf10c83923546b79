"""A publishing run whose branch moved between its staged commit and its publish: rebased over the other writer's
commit and published when the two do not conflict, failed cleanly (the branch at the other writer's snapshot, the
staged one kept) when they do. The other writer commits from the run's own publish check, at that very moment.
And `store_array`'s arrays, which need not be a Dataset, through the gate."""

import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from tasks.committing.report import committed_payload, summary_markdown
from tasks.errors import CommitConflictError, PublishRejectedError
from tasks.request import ArraySpec, ArrayWrite, DatasetWrite, PublishGate, WriteOptions
from tasks.running.local import LocalOrchestrator
from tasks.running.runs import run_store_array, run_write_dataset
from tests.conftest import committed, open_repo
from tests.sources import OTHER_WRITER, steps

GATE = PublishGate(check="tests.sources:another_writer_once", appends_only=True)


def _with_another_writer(target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conflict: bool) -> str:
    """The target holding steps 0-48, and the other writer armed; the tip."""
    run_write_dataset(LocalOrchestrator(), target, steps(0, 48))
    marker = tmp_path / "not-yet"
    marker.touch()
    monkeypatch.setenv(OTHER_WRITER, json.dumps({"target": target, "marker": str(marker), "conflict": conflict}))
    return open_repo(target).lookup_branch("main")


def test_a_branch_moved_by_another_writer_is_rebased_over_and_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = str(tmp_path / "repo")
    tip = _with_another_writer(target, tmp_path, monkeypatch, conflict=False)

    result = run_write_dataset(
        LocalOrchestrator(), target, steps(48, 96), DatasetWrite(append_dim="time"), None, WriteOptions(), GATE
    )

    repo = open_repo(target)
    ours, theirs, before = list(repo.ancestry(branch="main"))[:3]
    assert (ours.id, before.id) == (result.snapshot_id, tip)
    assert theirs.message == "another writer"
    assert result.published
    assert result.parent_id == theirs.id
    assert repo.list_branches() == {"main"}
    session = repo.readonly_session("main")
    assert zarr.open_array(session.store, path="other", mode="r")[:].tolist() == [7, 7, 7]  # both writers' data
    xr.testing.assert_identical(committed(target)[["t2m", "u10"]], steps(0, 96).compute())


def test_a_conflicting_writer_fails_the_publish_cleanly_with_the_staged_snapshot_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = str(tmp_path / "repo")
    _with_another_writer(target, tmp_path, monkeypatch, conflict=True)

    with pytest.raises(CommitConflictError, match=r"changed the same data \(/t2m\); nothing was published"):
        run_write_dataset(
            LocalOrchestrator(), target, steps(48, 96), DatasetWrite(append_dim="time"), None, WriteOptions(), GATE
        )

    repo = open_repo(target)
    assert repo.lookup_snapshot(repo.lookup_branch("main")).message == "another writer"
    t2m = zarr.open_array(repo.readonly_session("main").store, path="t2m", mode="r")
    assert t2m.shape == (49, 19, 36)
    assert (t2m[48] == -1.0).all()
    (staged,) = repo.list_branches() - {"main"}
    xr.testing.assert_identical(committed(target, branch=staged), steps(0, 96).compute())


def test_arrays_that_are_no_dataset_publish_with_the_checks_that_apply_and_a_nan_step_along_a_named_axis_is_caught(
    tmp_path: Path,
) -> None:
    target = str(tmp_path / "repo")
    values = np.arange(8 * 6, dtype="f4").reshape(8, 6)
    plain = ArrayWrite(source=da.from_array(values, chunks=(2, 6)), target=ArraySpec(path="x", chunks=(2, 6)))
    gate = PublishGate()

    result = run_store_array(LocalOrchestrator(), target, [plain], "main", None, WriteOptions(), gate)

    assert result.published
    outcomes = {c.check: c.outcome for c in result.checks}
    assert outcomes["group '/' opens as a Dataset"] == "skipped"  # no dimension names: no checks by step
    assert "failed" not in outcomes.values()
    assert (zarr.open_array(open_repo(target).readonly_session("main").store, path="x")[:] == values).all()
    summary = summary_markdown(result)  # what the run's summary artifact says
    assert f"## icefloe published snapshot `{result.snapshot_id}`" in summary
    assert f"staged on `{result.staged_branch}` → checked (" in summary
    assert "passed) → published" in summary
    assert "| group '/' opens as a Dataset | skipped | not a Dataset, no checks by step" in summary
    assert committed_payload(result)["staged_branch"] == result.staged_branch

    values[3] = np.nan  # in its own repository: xarray opens no group that holds `x`, which has no dimension names
    named = ArraySpec(path="y", chunks=(2, 6), dimension_names=("time", "x"))
    with pytest.raises(PublishRejectedError, match="NaN everywhere: 'y' at 3"):
        run_store_array(
            LocalOrchestrator(),
            str(tmp_path / "named"),
            [ArrayWrite(source=da.from_array(values, chunks=(2, 6)), target=named)],
            "main",
            None,
            WriteOptions(),
            gate,
        )
    assert len(list(open_repo(str(tmp_path / "named")).ancestry(branch="main"))) == 1


def test_a_rewrite_that_grows_the_dataset_publishes(tmp_path: Path) -> None:
    """Found by the sequence test (test_run_sequences.py): a coordinate xarray writes as one chunk changes its chunk
    with its length; the gate took that for a changed layout and refused every mode "w" that grew a dataset."""
    target = str(tmp_path / "repo")
    run_write_dataset(LocalOrchestrator(), target, steps(0, 24))

    result = run_write_dataset(
        LocalOrchestrator(), target, steps(0, 48), DatasetWrite(mode="w"), None, WriteOptions(), PublishGate()
    )

    assert result.published
    xr.testing.assert_identical(committed(target), steps(0, 48).compute())
