"""A Dataset's variables share blocks, and a block of a multi-file source opens only the files of its region."""

import pickle
from pathlib import Path

import icechunk
import numpy as np
import pytest
import xarray as xr
import zarr

from tasks.errors import BlockWriteError
from tasks.planning.dataset import initialize_dataset
from tasks.planning.jobs import plan_jobs
from tasks.records import BlockJob
from tasks.request import DatasetWrite, WriteOptions
from tasks.storage.file_sources import NetCDFSource
from tasks.storage.synthetic import SyntheticDataset
from tasks.writing.block import write_block
from tests.sources import netcdf_files, write_blocks_each_with_only_its_file

SOURCE = SyntheticDataset(ntime=48, nlat=10, nlon=20, variables=("t2m", "u10", "v10"), time_chunk=12)


def _planned(tmp_path: Path, block_bytes: int) -> tuple[icechunk.Session, xr.Dataset, list[BlockJob]]:
    netcdf_files(tmp_path / "files", SOURCE.open(), steps_per_file=12)
    dataset = NetCDFSource(paths=str(tmp_path / "files" / "*.nc"), concat_dim="time").open()
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    resolved = initialize_dataset(session.store, dataset, DatasetWrite(mode="w"))
    return session, dataset, plan_jobs(resolved, block_bytes)


def test_variables_with_the_same_dimensions_share_each_block(tmp_path: Path) -> None:
    _, _, jobs = _planned(tmp_path, block_bytes=12 * 10 * 20 * 4 * 3)

    assert [sorted(job.block.arrays) for job in jobs] == [["t2m", "u10", "v10"]] * 4
    assert [job.block.region[0] for job in jobs] == [(0, 12), (12, 24), (24, 36), (36, 48)]


def test_each_block_opens_only_the_files_of_its_region(tmp_path: Path) -> None:
    """Every other file is moved away while a block is written: a block that touched one would fail."""
    session, dataset, jobs = _planned(tmp_path, block_bytes=12 * 10 * 20 * 4 * 3)
    dataset.close()  # no file stays open (or cached) in this process
    files = sorted((tmp_path / "files").glob("*.nc"))

    forks = write_blocks_each_with_only_its_file(session, jobs, files, WriteOptions(piece_bytes=2**20))

    session.merge(*forks)
    written = xr.open_zarr(session.store, consolidated=False).compute()
    xr.testing.assert_identical(written, SOURCE.open().compute())


def test_a_block_whose_own_file_is_missing_fails(tmp_path: Path) -> None:
    """The check above can fail: the same block without its own file cannot be written."""
    session, dataset, jobs = _planned(tmp_path, block_bytes=12 * 10 * 20 * 4 * 3)
    payload = pickle.dumps(jobs[1])
    dataset.close()
    (tmp_path / "files" / "part-00012.nc").unlink()

    job: BlockJob = pickle.loads(payload)
    with pytest.raises(BlockWriteError, match=r"part-00012\.nc"):
        write_block(session.fork(), job.block, job.unit, job.sources, WriteOptions(piece_bytes=2**20))
    assert np.isnan(zarr.open_array(session.store, path="t2m")[12:24]).all()
