"""Resuming after Icechunk's garbage collection: a kept set whose objects were collected is never adopted as it is.
A failed run keeps its initialized session and finished blocks; the nightly `garbage_collect(now)` deletes what
they refer to (the coordinates' chunks, the forks' chunks and snapshots); the same request run again writes what
is gone and commits a snapshot that reads back in full. Coordinates of 300 and 400 values are stored as chunk
objects (small ones would sit inline in the session, out of the collection's reach). Each runs on a repository of
either Icechunk format."""

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import icechunk
import pytest
import xarray as xr
import zarr

from tasks.errors import BlockWriteError, UnreadableChunksError
from tasks.request import DatasetWrite, WriteOptions
from tasks.running.local import LocalOrchestrator
from tasks.running.runs import run_write_dataset
from tasks.storage.sources import CallableSource
from tests.conftest import open_repo, snapshot_count
from tests.sources import chunks_read, counted

GRID = {"ntime": 16, "time_chunk": 2, "nlat": 300, "nlon": 400}  # 8 blocks along time, one chunk of each variable
BLOCK_BYTES = 2 * 300 * 400 * 4 * 2


def request(markers: Path) -> CallableSource:
    return CallableSource(function="tests.sources:counted", keywords={"marker_dir": str(markers), **GRID})


OPTIONS = WriteOptions(block_bytes=BLOCK_BYTES, retries=0, n_workers=1)


def write(target: str, markers: Path) -> None:
    run_write_dataset(LocalOrchestrator(), target, request(markers), options=OPTIONS)


def fail(target: str, markers: Path, chunk: str = "3-0-0") -> None:
    (markers / f"fail-{chunk}").touch()
    with pytest.raises(BlockWriteError, match="kept beside the target"):
        write(target, markers)
    (markers / f"fail-{chunk}").unlink()


def collect_garbage(target: str) -> None:
    time.sleep(1.1)  # an object store dates objects to the second: a cutoff of now must be past what was written
    summary = open_repo(target).garbage_collect(datetime.now(UTC))
    assert summary.chunks_deleted > 0  # the kept session's coordinates and the kept forks' chunks


def assert_reads_back_in_full(target: str, markers: Path) -> None:
    """Every array of the tip reads, every chunk of it; the whole equals the source."""
    session = open_repo(target).readonly_session("main")
    group = zarr.open_group(session.store, mode="r")
    for name in group.array_keys():
        group[name][...]  # raises StorageError for a chunk whose object is gone
    written = xr.open_zarr(session.store, consolidated=False).load()
    xr.testing.assert_identical(written, counted(str(markers.parent / "unused"), **GRID).load())  # type: ignore[arg-type]


@pytest.fixture(params=[1, 2], ids=["format-1", "format-2"])
def repo_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A repository of each format: format 2 records collections in its operations log, format 1 keeps none (the
    run's mark is a canary snapshot there)."""
    target = str(tmp_path / "repo")
    icechunk.Repository.create(icechunk.local_filesystem_storage(target), spec_version=request.param)
    return target


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    (tmp_path / "markers").mkdir()
    (tmp_path / "unused").mkdir()
    return tmp_path / "markers"


def test_a_resume_after_garbage_collection_rewrites_what_it_deleted(
    repo_path: str, markers: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fail(repo_path, markers)
    collect_garbage(repo_path)

    with caplog.at_level(logging.INFO, logger="icefloe"):
        write(repo_path, markers)

    assert snapshot_count(repo_path) == 2  # the root and this one
    assert_reads_back_in_full(repo_path, markers)
    assert "garbage collection ran on the repository since they were written" in caplog.text
    assert "not reusing 7 blocks kept by an earlier attempt" in caplog.text
    assert "'lat' chunk (0,) (StorageError: object not found)" in caplog.text


def test_garbage_collection_between_two_failures_of_the_same_request(repo_path: str, markers: Path) -> None:
    fail(repo_path, markers, "3-0-0")
    collect_garbage(repo_path)
    fail(repo_path, markers, "5-0-0")
    collect_garbage(repo_path)

    write(repo_path, markers)

    assert snapshot_count(repo_path) == 2
    assert_reads_back_in_full(repo_path, markers)


def test_without_garbage_collection_a_kept_set_is_adopted_without_reading_a_chunk_back(
    repo_path: str, markers: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fail(repo_path, markers)
    for read in markers.glob("read-*"):
        read.unlink()

    with caplog.at_level(logging.INFO, logger="icefloe"):
        write(repo_path, markers)

    assert chunks_read(markers) == ["t2m-3-0-0", "u10-3-0-0"]  # only the block that failed
    assert "reading back" not in caplog.text
    assert_reads_back_in_full(repo_path, markers)


def test_a_kept_set_whose_initialized_values_differ_is_not_adopted(
    repo_path: str, markers: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Coordinates are not part of the run key (digested as the set is kept): the same graph with other latitudes
    finds the set and must not commit the kept session's latitudes, nor any block kept from it."""
    fail(repo_path, markers)
    for where in (markers, markers.parent / "unused"):  # the source, and the source it is compared with
        (where / "lat-shift").write_text("0.5")
    for read in markers.glob("read-*"):
        read.unlink()

    with caplog.at_level(logging.INFO, logger="icefloe"):
        write(repo_path, markers)

    assert "the chunks its initialization wrote (coordinates) differ from this run's" in caplog.text
    assert len(chunks_read(markers)) == 16  # every block written again
    assert_reads_back_in_full(repo_path, markers)


def test_a_collection_during_the_run_fails_the_commit_and_the_same_request_then_succeeds(
    repo_path: str, markers: Path
) -> None:
    # the last block's chunk is computed after every other block was written (one worker thread, in order)
    (markers / "collect-7-0-0").write_text(repo_path)

    with pytest.raises(UnreadableChunksError, match=r"chunks this run wrote are gone \('lat' chunk \(0,\)"):
        write(repo_path, markers)
    assert snapshot_count(repo_path) == 1  # nothing committed

    write(repo_path, markers)

    assert snapshot_count(repo_path) == 2
    assert_reads_back_in_full(repo_path, markers)


def test_a_collection_that_logs_itself_after_the_check_before_the_commit_gets_the_snapshot_withdrawn(
    repo_path: str, markers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the fault campaign (seed 1, on S3): a collection logs itself only once it has found what no snapshot
    refers to; one that began before the run's check before its commit logged and deleted after it, and the snapshot
    landed referring to deleted chunks. Here the whole collection runs right after that check."""
    import tasks.running.pipeline as pipeline

    check = pipeline.check_still_stored

    def check_then_collect(*args: Any, **kwargs: Any) -> Any:
        checked = check(*args, **kwargs)
        collect_garbage(repo_path)
        return checked

    write(repo_path, markers)
    tip = open_repo(repo_path).lookup_branch("main")
    monkeypatch.setattr(pipeline, "check_still_stored", check_then_collect)
    rewrite = {"write": DatasetWrite(mode="w"), "options": OPTIONS}
    with pytest.raises(UnreadableChunksError, match=r"garbage collection as it was committed: branch 'main' is set"):
        run_write_dataset(LocalOrchestrator(), repo_path, request(markers), **rewrite)  # type: ignore[arg-type]
    assert open_repo(repo_path).lookup_branch("main") == tip  # withdrawn: readers see the snapshot before

    monkeypatch.setattr(pipeline, "check_still_stored", check)
    run_write_dataset(LocalOrchestrator(), repo_path, request(markers), **rewrite)  # type: ignore[arg-type]
    assert snapshot_count(repo_path) == 3  # the first write's, and the rewrite's: the withdrawn one is in no history
    assert_reads_back_in_full(repo_path, markers)


@pytest.mark.s3
def test_on_s3_a_resume_after_garbage_collection_rewrites_what_it_deleted(s3_target: str, markers: Path) -> None:
    fail(s3_target, markers)
    collect_garbage(s3_target)

    write(s3_target, markers)

    assert snapshot_count(s3_target) == 2
    assert_reads_back_in_full(s3_target, markers)
