"""Flow runs resume at block level: a failed run's finished blocks are kept beside the target (on S3 too), and the
same request run again submits block tasks only for the others."""

import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import boto3
import xarray as xr

from flows.write_dataset import write_dataset
from tasks.request import WriteOptions
from tasks.storage.file_sources import NetCDFSource
from tasks.storage.sources import CallableSource, ZarrSource, source_fingerprint
from tasks.storage.synthetic import SyntheticDataset
from tests.conftest import BUCKET, S3_ENV, block_task_runs, open_repo, snapshot_count
from tests.sources import COUNTED_CHUNK_BYTES, chunks_read, counted, netcdf_files


def run(repo: str, markers: Path, dask_address: str) -> tuple[str, UUID]:
    """A write_dataset flow run; its final state's type and its id."""
    source = CallableSource(function="tests.sources:counted", keywords={"marker_dir": str(markers)})
    options = WriteOptions(dask_address=dask_address, block_bytes=COUNTED_CHUNK_BYTES, retries=0)
    state = write_dataset(repo=repo, source=source, options=options, return_state=True)
    assert state.state_details.flow_run_id is not None
    return state.type.value, state.state_details.flow_run_id


def fail_then_resume(
    repo: str, tmp_path: Path, dask_address: str, after_failure: Callable[[], None] = lambda: None
) -> tuple[UUID, UUID]:
    markers = tmp_path / "markers"
    markers.mkdir()
    (markers / "fail-2-0-0").touch()
    failed, first = run(repo, markers, dask_address)
    assert failed == "FAILED"
    assert snapshot_count(repo) == 1
    after_failure()
    (markers / "fail-2-0-0").unlink()
    for read in markers.glob("read-*"):
        read.unlink()

    completed, second = run(repo, markers, dask_address)

    assert completed == "COMPLETED"
    assert chunks_read(markers) == ["t2m-2-0-0", "u10-2-0-0"]
    assert snapshot_count(repo) == 2
    written = xr.open_zarr(open_repo(repo).readonly_session("main").store, consolidated=False)
    (tmp_path / "unused").mkdir()
    xr.testing.assert_identical(written, counted(str(tmp_path / "unused")).load())
    return first, second


def test_a_failed_flow_run_run_again_runs_block_tasks_only_for_what_failed(
    repo_path: str, tmp_path: Path, dask_address: str
) -> None:
    first, second = fail_then_resume(repo_path, tmp_path, dask_address)

    assert len(block_task_runs(first)) == 4
    assert [r.name for r in block_task_runs(second)] == ["write t2m+u10[48:72, 0:19, 0:36]"]
    assert (
        open_repo(repo_path)
        .lookup_snapshot(open_repo(repo_path).lookup_branch("main"))
        .metadata["icefloe"]["reused_blocks"]
        == 3
    )
    assert not list(Path(repo_path).glob("icefloe/kept/*/*"))


def test_on_s3_the_kept_blocks_sit_under_the_repository_prefix_without_secrets(
    s3_target: str, tmp_path: Path, dask_address: str
) -> None:
    prefix = s3_target.removeprefix(f"s3://{BUCKET}/")
    client = boto3.client("s3")
    kept: dict[str, bytes] = {}

    def read_kept() -> None:
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/icefloe/kept/").get("Contents", [])
        kept.update({o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed})

    fail_then_resume(s3_target, tmp_path, dask_address, after_failure=read_kept)

    assert sorted(key.rsplit("/", 2)[-2] for key in kept).count("blocks") == 3
    assert {key.rsplit("/", 1)[-1] for key in kept} >= {"run.json", "session"}
    assert not any(S3_ENV["AWS_SECRET_ACCESS_KEY"].encode() in data for data in kept.values())
    assert not any(S3_ENV["AWS_ACCESS_KEY_ID"].encode() in data for data in kept.values())
    assert "Contents" not in client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/icefloe/kept/")


def test_a_file_source_is_fingerprinted_by_its_files_sizes_and_times(tmp_path: Path) -> None:
    dataset = SyntheticDataset(ntime=48, nlat=19, nlon=36).open()
    files = netcdf_files(tmp_path / "nc", dataset, steps_per_file=24)
    netcdf = NetCDFSource(paths=str(tmp_path / "nc" / "*.nc"), concat_dim="time")
    dataset.to_zarr(tmp_path / "store.zarr", zarr_format=3, consolidated=False)
    zarr_source = ZarrSource(url=str(tmp_path / "store.zarr"))
    before = source_fingerprint(netcdf), source_fingerprint(zarr_source)
    assert before == (source_fingerprint(netcdf), source_fingerprint(zarr_source))

    (dataset * 2).isel(time=slice(24, 48)).to_netcdf(files[1], engine="h5netcdf")
    chunk = next(p for p in (tmp_path / "store.zarr" / "t2m").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes() + b"\0")

    assert source_fingerprint(netcdf) != before[0]
    assert source_fingerprint(zarr_source) != before[1]


def test_a_flow_run_resumed_after_garbage_collection_on_s3_commits_what_reads_back(
    s3_target: str, tmp_path: Path, dask_address: str
) -> None:
    """The kept session's coordinates (300 and 400 values: chunk objects) and the kept forks are collected between
    the failed run and its retry; the retry writes them again, and the snapshot reads back in full."""
    from datetime import UTC, datetime

    import zarr

    markers = tmp_path / "markers"
    markers.mkdir()
    grid = {"ntime": 8, "time_chunk": 2, "nlat": 300, "nlon": 400}
    source = CallableSource(function="tests.sources:counted", keywords={"marker_dir": str(markers), **grid})
    options = WriteOptions(dask_address=dask_address, block_bytes=2 * 300 * 400 * 4 * 2, retries=0)
    (markers / "fail-2-0-0").touch()
    assert write_dataset(repo=s3_target, source=source, options=options, return_state=True).is_failed()
    time.sleep(1.1)  # S3 dates objects to the second: the cutoff must be past what the failed run wrote
    assert open_repo(s3_target).garbage_collect(datetime.now(UTC)).chunks_deleted > 0
    (markers / "fail-2-0-0").unlink()

    assert write_dataset(repo=s3_target, source=source, options=options, return_state=True).is_completed()

    assert snapshot_count(s3_target) == 2
    session = open_repo(s3_target).readonly_session("main")
    for name in ("lat", "lon", "t2m", "u10"):
        zarr.open_array(session.store, path=name, mode="r")[...]
    written = xr.open_zarr(session.store, consolidated=False)
    (tmp_path / "unused").mkdir()
    xr.testing.assert_identical(written, counted(str(tmp_path / "unused"), **grid).load())  # type: ignore[arg-type]
