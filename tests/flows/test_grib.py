"""GRIB files, as weather data arrives, written by the command and the flow: what lands reads back as cfgrib reads
the files, a block opens only the files of its region, a GRIB source on S3 is read, and a failed run resumes."""

import json
from pathlib import Path
from typing import Any

import boto3
import icechunk
import pytest
import xarray as xr
import zarr
from icechunk.xarray import to_icechunk
from prefect.states import State

from flows.ingest import ingest
from flows.write_dataset import write_dataset
from tasks.planning.dataset import initialize_dataset
from tasks.planning.jobs import plan_jobs
from tasks.request import DatasetWrite, WriteOptions
from tasks.storage.file_sources import GRIB_FILES, GribSource
from tasks.storage.sources import source_fingerprint
from tests.conftest import BUCKET, block_task_runs, committed, snapshot_count
from tests.processes import command_env, icefloe
from tests.sources import grib_files, write_blocks_each_with_only_its_file

SURFACE = {"typeOfLevel": "surface"}
DAY_BYTES = 4 * 19 * 36 * 4 * 2  # one file: 4 steps of two float32 variables


def as_cfgrib_reads(files: list[Path], keys: dict[str, Any] = SURFACE) -> xr.Dataset:
    """The files as cfgrib reads them, through xarray's own open_mfdataset (no index files written)."""
    backend = {"filter_by_keys": keys, "indexpath": ""}
    return xr.open_mfdataset(sorted(map(str, files)), engine="cfgrib", backend_kwargs=backend).load()


def test_the_command_writes_grib_files_as_cfgrib_reads_them_and_writes_nothing_beside_them(tmp_path: Path) -> None:
    files = grib_files(tmp_path / "grib", days=3)
    source = {"kind": "grib", "paths": str(tmp_path / "grib" / "*.grib2"), "filter_by_keys": SURFACE}
    target = tmp_path / "repo"

    done = icefloe("write", json.dumps(source), str(target), env=command_env(tmp_path / "home"), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    xr.testing.assert_equal(committed(str(target)), as_cfgrib_reads(files))
    assert sorted(p.name for p in (tmp_path / "grib").iterdir()) == [f.name for f in files]  # no index beside them
    assert list(GRIB_FILES.rglob(f"{files[0].name}.*.idx"))  # cfgrib's index went to GRIB_FILES instead


def test_the_command_writes_each_hypercube_of_the_files_as_a_group_as_to_icechunk_writes_each(tmp_path: Path) -> None:
    """Files of surface, height-above-ground and pressure-level messages together, as ECMWF's and NCEP's arrive:
    one run, one commit, each hypercube the group named by its kind of level (and its level, where two share one)."""
    files = grib_files(tmp_path / "grib", days=2, pressure=(500, 850))
    target = tmp_path / "repo"

    done = icefloe("write", str(tmp_path / "grib" / "*.grib2"), str(target), "--group", "era", "--mode", "w",
                   env=command_env(tmp_path / "home"), cwd=tmp_path)  # fmt: skip

    assert done.returncode == 0, done.stderr
    expected = {
        "surface": {"typeOfLevel": "surface"},
        "isobaricInhPa": {"typeOfLevel": "isobaricInhPa"},
        "heightAboveGround-2": {"typeOfLevel": "heightAboveGround", "level": 2},
        "heightAboveGround-10": {"typeOfLevel": "heightAboveGround", "level": 10},
    }
    reference = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "reference")))
    session = reference.writable_session("main")
    for name, keys in expected.items():
        to_icechunk(as_cfgrib_reads(files, keys), session, group=f"era/{name}", mode="w")
    session.commit("reference")
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(target)))
    assert sorted(zarr.open_group(repo.readonly_session("main").store, path="era", mode="r").group_keys()) == sorted(
        expected
    )
    for name in expected:
        read = xr.open_zarr(repo.readonly_session("main").store, group=f"era/{name}", consolidated=False).load()
        expected_read = xr.open_zarr(reference.readonly_session("main").store, group=f"era/{name}", consolidated=False)
        expected_read.attrs["history"] = read.attrs["history"]  # cfgrib's history names the minute it read a file
        xr.testing.assert_identical(read, expected_read.load())
    assert snapshot_count(str(target)) == 2


def test_an_ingest_of_files_of_several_hypercubes_is_refused_naming_what_to_filter_by(repo_path: str,
                                                                                   tmp_path: Path) -> None:  # fmt: skip
    grib_files(tmp_path / "grib", days=1)

    state = ingest(repo=repo_path, source=GribSource(paths=str(tmp_path / "grib" / "*.grib2")), return_state=True)

    assert state.type.value == "FAILED"
    message = str(state.result(raise_on_failure=False))
    assert "cannot read the GRIB source" in message
    assert "filter_by_keys" in message
    assert not Path(repo_path).exists()


def test_the_flow_writes_a_grib_source_on_s3(s3_target: str, dask_address: str, tmp_path: Path) -> None:
    files = grib_files(tmp_path / "grib", days=2)
    prefix = s3_target.removeprefix(f"s3://{BUCKET}/")
    for path in files:
        boto3.client("s3").upload_file(str(path), BUCKET, f"{prefix}-source/{path.name}")
    source = GribSource(paths=f"s3://{BUCKET}/{prefix}-source/day-*.grib2", filter_by_keys=SURFACE)

    write_dataset(repo=s3_target, source=source, options=WriteOptions(dask_address=dask_address))

    xr.testing.assert_equal(committed(s3_target), as_cfgrib_reads(files))
    assert snapshot_count(s3_target) == 2


def test_each_block_opens_only_the_files_of_its_region(tmp_path: Path) -> None:
    """Every other file is moved away while a block is written: a block that touched one would fail."""
    files = grib_files(tmp_path / "grib", days=3)
    dataset = GribSource(paths=str(tmp_path / "grib" / "*.grib2"), filter_by_keys=SURFACE).open()
    session = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo"))).writable_session(
        "main"
    )
    jobs = plan_jobs(initialize_dataset(session.store, dataset, DatasetWrite(mode="w")), DAY_BYTES)
    assert len(jobs) == len(files)
    dataset.close()

    forks = write_blocks_each_with_only_its_file(session, jobs, files, WriteOptions())

    session.merge(*forks)
    read = xr.open_zarr(session.store, consolidated=False).load()
    xr.testing.assert_equal(read, as_cfgrib_reads(files))


def test_a_failed_run_of_a_grib_source_resumes_writing_only_the_block_that_failed(
    repo_path: str, dask_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = grib_files(tmp_path / "grib", days=3)
    source = GribSource(paths=str(tmp_path / "grib" / "*.grib2"), filter_by_keys=SURFACE)
    fingerprint = source_fingerprint(source)
    options = WriteOptions(dask_address=dask_address, block_bytes=DAY_BYTES, retries=0)

    def run() -> State[object]:
        # while ICEFLOE_TEST_HIDE is set, the hook moves the last day's file away once the arrays are initialized
        hook = "tests.sources:hide_a_file"
        return write_dataset(repo=repo_path, source=source, options=options, validation_hook=hook, return_state=True)

    monkeypatch.setenv("ICEFLOE_TEST_HIDE", str(files[-1]))
    assert run().type.value == "FAILED"
    assert snapshot_count(repo_path) == 1
    Path(f"{files[-1]}.hidden").rename(files[-1])
    monkeypatch.delenv("ICEFLOE_TEST_HIDE")
    assert source_fingerprint(source) == fingerprint  # the same files: the same request

    completed = run()

    assert completed.type.value == "COMPLETED"
    assert completed.state_details.flow_run_id is not None
    assert [r.name for r in block_task_runs(completed.state_details.flow_run_id)] == ["write skt+sp[8:12, 0:19, 0:36]"]
    xr.testing.assert_equal(committed(repo_path), as_cfgrib_reads(files))
    # not the minute cfgrib read the files: with it, a retry in another minute was another request (CI, stop 41)
    assert committed(repo_path).attrs["history"].startswith("GRIB to CDM+CF via cfgrib")
    assert snapshot_count(repo_path) == 2
