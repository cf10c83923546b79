"""From Python, write_dataset refuses a region as `Dataset.to_zarr` does, with the same exception and the same words,
and writes what to_zarr writes where a dimension has length 0. JSON's [start, stop] pairs stand for slices only where
parameters come as JSON (a deployment's run: the UI's form, the REST API)."""

from pathlib import Path
from typing import Any

import dask.array as da
import icechunk
import numpy as np
import pytest
import xarray as xr
from icechunk.xarray import to_icechunk

from flows.write_dataset import write_dataset
from tasks.regions import to_zarr_region
from tasks.request import DatasetWrite, WriteOptions
from tests.conftest import open_repo, raised_by, snapshot_count

DATASET = xr.Dataset({"v": (("x", "y"), da.arange(40, chunks=10).reshape(8, 5))}, coords={"x": np.arange(8)})
UPDATE = DATASET.isel(x=slice(0, 4)).drop_vars("x")


def ours(repo: str, dask_address: str, dataset: xr.Dataset, **kwargs: Any) -> None:
    write_dataset(repo=repo, source=dataset, options=WriteOptions(dask_address=dask_address), **kwargs)


def theirs(path: Path, dataset: xr.Dataset, **kwargs: Any) -> icechunk.Repository:
    repo = icechunk.Repository.open_or_create(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    to_icechunk(dataset, session, **kwargs)
    session.commit("to_icechunk")
    return repo


@pytest.mark.parametrize(
    "region",
    [
        pytest.param(slice(None), id="a slice for the whole region"),
        pytest.param({"x": [0, 4]}, id="a JSON pair from Python"),
        pytest.param({"x": slice(0, 4, 2)}, id="a step of 2"),
    ],
)
def test_a_region_to_zarr_refuses_is_refused_with_its_exception_and_nothing_is_written(
    repo_path: str, dask_address: str, tmp_path: Path, region: Any
) -> None:
    theirs(tmp_path / "ref", DATASET)
    ours(repo_path, dask_address, DATASET)
    expected = raised_by(lambda: theirs(tmp_path / "ref", UPDATE, mode="r+", region=region))

    with pytest.raises(type(expected)) as got:
        ours(repo_path, dask_address, UPDATE, mode="r+", region=region)

    assert type(got.value) is type(expected)
    assert str(got.value) == str(expected)
    assert snapshot_count(repo_path) == 2  # the repository's first snapshot and the first write


def test_a_variable_with_a_zero_length_dimension_is_written_as_to_zarr_writes_it(
    repo_path: str, dask_address: str, tmp_path: Path
) -> None:
    def empty() -> xr.Dataset:  # a new one for each: to_zarr loads the caller's empty variables in place
        data = {"v": (("x", "y"), np.zeros((0, 5))), "w": (("y",), np.arange(5.0))}
        return xr.Dataset(data, coords={"y": np.arange(5)}).chunk()  # v's dask chunks along x: (0,)

    reference = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "ref")))
    session = reference.writable_session("main")
    # to_icechunk fails here ("Chunk size must be positive"); to_zarr loads the empty variable first
    empty().to_zarr(session.store, zarr_format=3, consolidated=False)
    session.commit("to_zarr")

    ours(repo_path, dask_address, empty())

    read = xr.open_zarr(open_repo(repo_path).readonly_session("main").store, consolidated=False).load()
    expected = xr.open_zarr(reference.readonly_session("main").store, consolidated=False).load()
    xr.testing.assert_identical(read, expected)
    assert read.v.shape == (0, 5)


def test_json_pairs_stand_for_slices_where_parameters_are_json() -> None:
    assert to_zarr_region({"x": [0, 4], "y": "auto"}, pairs=True) == {"x": slice(0, 4), "y": "auto"}
    assert DatasetWrite.model_validate_json('{"region": {"x": [0, null]}}').region == {"x": slice(0, None)}
    assert DatasetWrite(region={"x": slice(0, 4)}).model_dump(mode="json")["region"] == {"x": [0, 4]}
    with pytest.raises(TypeError, match=r"all values in ``region`` must be slice objects"):
        DatasetWrite(region={"x": [0, 4]})
    with pytest.raises(TypeError, match=r"``region`` must be a dict, got <class 'list'>"):
        to_zarr_region([0, 4], pairs=True)
