"""store_array end to end: real Icechunk repositories, a real Prefect API, a real Dask cluster."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import zarr
from prefect.client.orchestration import get_client

from flows.store_array import store_array
from tasks.errors import BlockWriteError, ChunkAlignmentError, CommitConflictError, OverlappingWritesError
from tasks.records import CommitResult
from tasks.request import ArraySpec, ArrayWrite, WriteOptions
from tests.conftest import block_task_runs, open_repo, snapshot_count, task_runs
from tests.sources import committing_elsewhere, failing_always, failing_first


def run(repo: str, writes: list[ArrayWrite], dask_address: str, **options: Any) -> CommitResult:
    defaults: dict[str, Any] = {"dask_address": dask_address, "retry_delay_seconds": 0, "block_bytes": 1024}
    return store_array(repo=repo, writes=writes, options=WriteOptions(**{**defaults, **options}))


def read(repo: str, path: str, branch: str = "main") -> np.ndarray:
    return zarr.open_array(open_repo(repo).readonly_session(branch).store, path=path, mode="r")[...]


def tip(repo: str) -> str:
    return open_repo(repo).lookup_branch("main")


def sample(shape: tuple[int, ...], dtype: str, chunks: tuple[int, ...] | str = "auto", seed: int = 0) -> da.Array:
    values = np.random.default_rng(seed).normal(0, 100, size=shape).astype(dtype)
    return da.from_array(values, chunks=chunks)


ROUND_TRIPS = [
    pytest.param((100, 80), "float64", (25, 40), (10, 16), None, id="2d-float64"),
    pytest.param((37, 23, 11), "float32", (10, 23, 11), (8, 5, 4), None, id="3d-ragged-edges"),
    pytest.param((1000,), "int16", (300,), (64,), None, id="1d-int16-misaligned-dask-chunks"),
    pytest.param((64, 60), "uint8", (32, 12), (8, 6), (32, 12), id="sharded"),
    pytest.param((50, 45), "float32", (16, 24), (8, 8), (16, 24), id="sharded-ragged"),
]


@pytest.mark.parametrize(("shape", "dtype", "dask_chunks", "chunks", "shards"), ROUND_TRIPS)
def test_round_trip_reads_back_the_source_in_one_snapshot(
    repo_path: str, dask_address: str, shape: tuple, dtype: str, dask_chunks: tuple, chunks: tuple, shards: Any
) -> None:
    source = sample(shape, dtype, dask_chunks)
    spec = ArraySpec(path="group/var", chunks=chunks, shards=shards)

    result = run(repo_path, [ArrayWrite(source=source, target=spec)], dask_address, block_bytes=source.nbytes // 6)

    np.testing.assert_array_equal(read(repo_path, "group/var"), source.compute())
    assert snapshot_count(repo_path) == 2  # the repository's root and ours
    assert result.blocks > 1
    assert result.snapshot_id == tip(repo_path)
    assert result.bytes == source.nbytes


def test_commit_carries_message_and_run_metadata(repo_path: str, dask_address: str) -> None:
    source = sample((40, 40), "float32", (20, 20))
    writes = [ArrayWrite(source=source, target=ArraySpec(path="t", chunks=(10, 10)))]

    state = store_array(
        repo=repo_path,
        writes=writes,
        message="nightly load",
        options=WriteOptions(dask_address=dask_address),
        return_state=True,
    )

    result = state.result()
    snapshot = next(iter(open_repo(repo_path).ancestry(branch="main")))
    assert snapshot.message == "nightly load"
    meta = snapshot.metadata["icefloe"]
    assert meta["flow_run_id"] == str(state.state_details.flow_run_id)
    assert meta["flow_name"] == "store-array"
    assert meta["blocks"] == result.blocks == 1
    assert meta["bytes"] == source.nbytes
    assert len(meta["parameters_sha256"]) == 64
    assert result.parent_id == snapshot.parent_id
    assert (result.snapshot_id, result.branch) == (snapshot.id, "main")


def test_block_task_runs_report_to_the_flow_run(repo_path: str, dask_address: str) -> None:
    source = sample((40, 40), "float32", (20, 20))
    state = store_array(
        repo=repo_path,
        writes=[ArrayWrite(source=source, target=ArraySpec(path="t", chunks=(10, 10)))],
        options=WriteOptions(dask_address=dask_address, block_bytes=1600),
        return_state=True,
    )

    runs = block_task_runs(state.state_details.flow_run_id)
    assert len(runs) == state.result().blocks == 4
    assert {r.state_type.value for r in runs} == {"COMPLETED"}
    assert "write t[0:20, 20:40]" in {r.name for r in runs}  # blocks follow the source's 20x20 chunks


def test_multiple_arrays_and_regions_land_in_one_commit(repo_path: str, dask_address: str) -> None:
    a, b = sample((30, 20), "float64", seed=1), sample((12,), "int32", seed=2)
    left, right = sample((30, 10), "float32", seed=3), sample((30, 10), "float32", seed=4)
    run(repo_path, [ArrayWrite(source=a, target=ArraySpec(path="a", chunks=(10, 10)))], dask_address)
    base = snapshot_count(repo_path)

    result = run(
        repo_path,
        [
            ArrayWrite(source=b, target=ArraySpec(path="b", chunks=(4,))),
            ArrayWrite(
                source=left,
                target=ArraySpec(path="c", chunks=(10, 5), shape=(30, 20)),
                region=(slice(0, 30), slice(0, 10)),
            ),
            ArrayWrite(source=right, target="c", region=(slice(0, 30), slice(10, 20))),
            ArrayWrite(source=a[10:20] * 2, target="a", region=(slice(10, 20), slice(None))),
        ],
        dask_address,
    )

    assert snapshot_count(repo_path) == base + 1
    np.testing.assert_array_equal(read(repo_path, "b"), b.compute())
    np.testing.assert_array_equal(read(repo_path, "c"), np.concatenate([left, right], axis=1))
    expected_a = a.compute()
    expected_a[10:20] *= 2
    np.testing.assert_array_equal(read(repo_path, "a"), expected_a)
    assert result.bytes == b.nbytes + left.nbytes + right.nbytes + a[10:20].nbytes


def test_a_region_past_the_end_grows_the_array(repo_path: str, dask_address: str) -> None:
    first, second = sample((20, 6), "float32", seed=1), sample((15, 6), "float32", seed=2)
    spec = ArraySpec(path="series", chunks=(5, 6))
    run(repo_path, [ArrayWrite(source=first, target=spec)], dask_address)

    run(repo_path, [ArrayWrite(source=second, target=spec, region=(slice(20, None), slice(None)))], dask_address)

    np.testing.assert_array_equal(read(repo_path, "series"), np.concatenate([first, second]))


def test_misaligned_region_is_refused_and_the_branch_is_unchanged(repo_path: str, dask_address: str) -> None:
    run(
        repo_path,
        [ArrayWrite(source=sample((20, 20), "float32"), target=ArraySpec(path="x", chunks=(10, 10)))],
        dask_address,
    )
    before = tip(repo_path)

    with pytest.raises(
        ChunkAlignmentError, match=r"region \[5:15, 0:20\] of array 'x'.*nearest aligned region is \[0:20, 0:20\]"
    ):
        run(
            repo_path,
            [ArrayWrite(source=sample((10, 20), "float32"), target="x", region=(slice(5, 15), slice(None)))],
            dask_address,
        )

    assert tip(repo_path) == before


def test_overlapping_writes_are_refused_and_the_branch_is_unchanged(repo_path: str, dask_address: str) -> None:
    run(
        repo_path,
        [ArrayWrite(source=sample((20, 20), "float32"), target=ArraySpec(path="x", chunks=(10, 10)))],
        dask_address,
    )
    before = tip(repo_path)
    half = sample((10, 20), "float32")

    with pytest.raises(OverlappingWritesError, match="overlapping regions"):
        run(
            repo_path,
            [
                ArrayWrite(source=half, target="x", region=(slice(0, 10), slice(None))),
                ArrayWrite(source=half, target="x", region=(slice(0, 10), slice(None))),
            ],
            dask_address,
        )

    assert tip(repo_path) == before


def test_block_failing_twice_is_retried_and_lands_once(repo_path: str, dask_address: str, tmp_path: Path) -> None:
    source = sample((40, 40), "float64", (10, 10))
    flaky = failing_first(source, str(tmp_path), attempts=2)

    run(repo_path, [ArrayWrite(source=flaky, target=ArraySpec(path="x", chunks=(10, 10)))], dask_address, retries=3)

    np.testing.assert_array_equal(read(repo_path, "x"), source.compute())
    assert snapshot_count(repo_path) == 2
    assert len(list(tmp_path.glob("fail-*"))) == 2  # the failures really happened


@pytest.mark.parametrize(("invalid", "attempts"), [(True, 1), (False, 3)], ids=["invalid-request", "io-error"])
def test_invalid_requests_fail_at_once_and_io_errors_are_retried_with_backoff(
    repo_path: str, dask_address: str, tmp_path: Path, invalid: bool, attempts: int
) -> None:
    source = failing_always(sample((20, 20), "float64", (10, 10)), str(tmp_path), invalid)
    writes = [ArrayWrite(source=source, target=ArraySpec(path="x", chunks=(10, 10)))]
    options = WriteOptions(dask_address=dask_address, block_bytes=800, retries=2, retry_delay_seconds=0.5)

    state = store_array(repo=repo_path, writes=writes, options=options, return_state=True)

    assert state.is_failed()
    assert len(list(tmp_path.glob("attempt-*"))) == attempts
    assert state.state_details.flow_run_id is not None
    [failed] = [r for r in block_task_runs(state.state_details.flow_run_id) if r.name == "write x[0:10, 0:10]"]
    assert failed.run_count == attempts
    with get_client(sync_client=True) as client:
        history = client.read_task_run_states(failed.id)
    retries = [s.state_details.scheduled_time for s in history if s.name == "AwaitingRetry"]
    assert len(retries) == attempts - 1
    if len(retries) == 2:  # the delay doubles: 0.5 s, then 1 s
        starts = [s.timestamp for s in history if s.type.value == "RUNNING"]
        assert retries[0] - starts[0] >= timedelta(seconds=0.45)
        assert retries[1] - starts[1] >= timedelta(seconds=0.95)
    assert snapshot_count(repo_path) == 1


def test_block_failing_past_its_retries_commits_nothing(repo_path: str, dask_address: str, tmp_path: Path) -> None:
    run(
        repo_path,
        [ArrayWrite(source=sample((40, 40), "float64"), target=ArraySpec(path="x", chunks=(10, 10)))],
        dask_address,
    )
    before = tip(repo_path)
    flaky = failing_first(sample((40, 40), "float64", (10, 10), seed=9), str(tmp_path), attempts=5)

    with pytest.raises(
        BlockWriteError,
        match=r"1 of 16 blocks failed after retries; nothing was committed.*x\[0:10, 0:10\].*injected failure",
    ):
        run(repo_path, [ArrayWrite(source=flaky, target="x")], dask_address, retries=1)

    assert tip(repo_path) == before


def _repo_with_two_arrays(repo_path: str, dask_address: str) -> None:
    zeros = da.zeros((20, 20), chunks=10, dtype="float32")
    run(
        repo_path,
        [
            ArrayWrite(source=zeros, target=ArraySpec(path="ours", chunks=(10, 10))),
            ArrayWrite(source=zeros, target=ArraySpec(path="theirs", chunks=(10, 10))),
        ],
        dask_address,
    )


def test_concurrent_commit_to_other_data_is_rebased_over(repo_path: str, dask_address: str, tmp_path: Path) -> None:
    _repo_with_two_arrays(repo_path, dask_address)
    source = sample((20, 20), "float32", (10, 10))
    racing = committing_elsewhere(source, repo_path, "theirs", str(tmp_path))

    result = run(repo_path, [ArrayWrite(source=racing, target="ours")], dask_address)

    assert snapshot_count(repo_path) == 4  # root, setup, the concurrent writer, ours
    np.testing.assert_array_equal(read(repo_path, "ours"), source.compute())
    np.testing.assert_array_equal(read(repo_path, "theirs"), np.full((20, 20), 7, "float32"))
    snapshot = next(iter(open_repo(repo_path).ancestry(branch="main")))
    assert snapshot.id == result.snapshot_id
    assert snapshot.metadata["__icechunk"]["rebase_attempts"] == 1


def test_concurrent_commit_to_the_same_chunks_fails_the_merge_and_commit_task_naming_the_array(
    repo_path: str, dask_address: str, tmp_path: Path
) -> None:
    _repo_with_two_arrays(repo_path, dask_address)
    racing = committing_elsewhere(sample((20, 20), "float32", (10, 10)), repo_path, "ours", str(tmp_path))
    options = WriteOptions(dask_address=dask_address, retry_delay_seconds=0, block_bytes=1024)

    state = store_array(repo=repo_path, writes=[ArrayWrite(source=racing, target="ours")], options=options,
                        return_state=True)  # fmt: skip

    with pytest.raises(CommitConflictError, match=r"changed the same data.*/ours.*nothing was committed"):
        state.result()
    stages = {r.name: r.state_type.value for r in task_runs(state.state_details.flow_run_id) if "write" not in r.name}
    assert stages == {"initialize": "COMPLETED", "merge-and-commit": "FAILED"}

    snapshot = next(iter(open_repo(repo_path).ancestry(branch="main")))
    assert snapshot.message == "a concurrent writer"
    np.testing.assert_array_equal(read(repo_path, "ours"), np.full((20, 20), 7, "float32"))


@pytest.mark.s3
def test_s3_target_on_a_loopback_server(s3_target: str, dask_address: str) -> None:
    source = sample((64, 48), "float32", (32, 16))

    result = run(s3_target, [ArrayWrite(source=source, target=ArraySpec(path="x", chunks=(8, 16)))], dask_address)

    np.testing.assert_array_equal(read(s3_target, "x"), source.compute())
    assert snapshot_count(s3_target) == 2
    assert result.blocks > 1
