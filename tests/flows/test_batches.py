"""More blocks than task runs a write may make: batches of blocks, a task run each, every block retried on its
own. Real Icechunk repository, real Prefect API, real Dask cluster."""

from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from flows.store_array import store_array
from tasks.request import ArraySpec, ArrayWrite, WriteOptions
from tests.conftest import block_task_runs, open_repo, snapshot_count
from tests.flows.test_store_array import sample
from tests.sources import failing_first


def test_twelve_blocks_in_three_task_runs_land_in_one_snapshot_with_a_flaky_block_retried_alone(
    repo_path: str, dask_address: str, tmp_path: Path
) -> None:
    source = sample((120, 10), "float64", (10, 10))
    flaky = failing_first(source, str(tmp_path), attempts=1)  # the first chunk fails once
    options = WriteOptions(dask_address=dask_address, block_bytes=800, max_task_runs=3, retry_delay_seconds=0)

    state = store_array(
        repo=repo_path,
        writes=[ArrayWrite(source=flaky, target=ArraySpec(path="x", chunks=(10, 10)))],
        options=options,
        return_state=True,
    )

    assert state.is_completed()
    result = state.result()
    assert (result.blocks, result.retried_blocks) == (12, 1)  # only the flaky block was written twice
    assert len(list(tmp_path.glob("fail-*"))) == 1
    assert state.state_details.flow_run_id is not None
    runs = block_task_runs(state.state_details.flow_run_id)
    assert sorted(r.name for r in runs) == [
        f"write x[{start}:{start + 10}, 0:10] and the next blocks" for start in (0, 40, 80)
    ]
    assert {r.state_type.value for r in runs} == {"COMPLETED"}
    assert snapshot_count(repo_path) == 2
    written = zarr.open_array(open_repo(repo_path).readonly_session("main").store, path="x", mode="r")[...]
    np.testing.assert_array_equal(written, source.compute())


def test_blocks_are_batched_as_evenly_as_can_be() -> None:
    from tasks.records import Block, BlockJob
    from tasks.writing.block import batches

    jobs = [BlockJob(Block(("x",), ((i, i + 1),)), (1,), ()) for i in range(10)]

    assert [len(b) for b in batches(jobs, 3)] == [3, 3, 4]
    assert [len(b) for b in batches(jobs, 1000)] == [1] * 10
    assert [job for batch in batches(jobs, 4) for job in batch] == jobs


def test_manifests_split_every_n_chunks_when_asked_and_the_data_is_the_same(tmp_path: Path, dask_address: str) -> None:
    from flows.write_dataset import write_dataset
    from tasks.storage.synthetic import SyntheticDataset

    source = SyntheticDataset(ntime=96, nlat=19, nlon=36, time_chunk=12, variables=("t2m",))
    manifests = {}
    for split in (None, 2):
        repo = str(tmp_path / f"split-{split}")
        options = WriteOptions(dask_address=dask_address, block_bytes=19 * 36 * 12 * 4, manifest_split_chunks=split)
        write_dataset(repo=repo, source=source, options=options)
        repository = open_repo(repo)
        snapshot = repository.lookup_branch("main")
        refs = sorted(m.num_chunk_refs for m in repository.list_manifest_files(snapshot))
        manifests[split] = refs
        xr.testing.assert_identical(xr.open_zarr(repository.readonly_session("main").store), source.open())

    assert 8 in manifests[None]  # t2m's 8 chunks in one manifest
    assert manifests[2].count(2) >= 4  # t2m's in four manifests of 2
    assert 8 not in manifests[2]


def test_block_tasks_raise_zarrs_chunks_in_flight_to_at_least_what_the_run_asks(tmp_path: Path) -> None:
    import icechunk

    from tasks.records import Block
    from tasks.writing.block import write_block

    session = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path))).writable_session("main")
    zarr.open_group(session.store, mode="a").create_array("x", shape=(20,), chunks=(10,), dtype="f8")
    sources = (sample((20,), "float64", (10,)),)

    block = Block(("x",), ((0, 20),))
    written = write_block(session.fork(), block, (10,), sources, WriteOptions(piece_bytes=800, chunk_concurrency=77))

    assert zarr.config.get("async.concurrency") >= 77
    session.merge(written)
    np.testing.assert_array_equal(zarr.open_array(session.store, path="x")[...], sources[0].compute())
