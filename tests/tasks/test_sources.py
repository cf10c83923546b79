from pathlib import Path

import icechunk
import pytest
import xarray as xr
from fastapi.encoders import jsonable_encoder
from icechunk.xarray import to_icechunk
from pydantic import TypeAdapter, ValidationError

from tasks.errors import InvalidRequestError
from tasks.storage.file_sources import NetCDFSource
from tasks.storage.sources import (
    CallableSource,
    IcechunkSource,
    NamedSource,
    SyntheticDataset,
    ZarrSource,
    describe_dataset,
    open_source,
)
from tests.sources import netcdf_files


def test_synthetic_dataset_is_deterministic_and_weather_like() -> None:
    spec = SyntheticDataset(ntime=48, nlat=10, nlon=20, variables=("t2m", "u10", "msl"), time_chunk=12)

    first, second = spec.open(), SyntheticDataset.model_validate_json(spec.model_dump_json()).open()

    xr.testing.assert_identical(first.compute(), second.compute())
    assert dict(first.sizes) == {"time": 48, "lat": 10, "lon": 20}
    assert list(first.data_vars) == ["t2m", "u10", "msl"]
    assert first.t2m.chunks[0] == (12, 12, 12, 12)
    assert first.attrs["title"] == "icefloe synthetic dataset"
    xr.testing.assert_identical(spec.time_slice(12, 24).compute(), first.isel(time=slice(12, 24)).compute())
    assert not first.t2m.equals(SyntheticDataset(ntime=48, nlat=10, nlon=20, seed=1).open().t2m)


def test_an_in_memory_dataset_is_recorded_by_its_layout() -> None:
    dataset = SyntheticDataset(ntime=4, nlat=3, nlon=5).open()

    described = jsonable_encoder(describe_dataset(dataset))

    assert described["dims"] == {"time": 4, "lat": 3, "lon": 5}
    assert described["variables"]["t2m"] == dataset.t2m.data.name
    assert open_source(dataset) is dataset


SMALL = SyntheticDataset(ntime=48, nlat=10, nlon=20, time_chunk=12)


def test_netcdf_files_by_glob_and_by_list_combine_along_time(tmp_path: Path) -> None:
    paths = netcdf_files(tmp_path, SMALL.open(), steps_per_file=12)

    by_glob = NetCDFSource(paths=str(tmp_path / "part-*.nc"), concat_dim="time").open()
    by_list = NetCDFSource(paths=[str(p) for p in paths], concat_dim="time").open()
    by_coords = NetCDFSource(paths=str(tmp_path / "*.nc"), variables=["u10"]).open()

    xr.testing.assert_identical(by_glob.compute(), SMALL.open().load())
    xr.testing.assert_identical(by_list.compute(), SMALL.open().load())
    xr.testing.assert_identical(by_coords.compute(), SMALL.open()[["u10"]].load())
    assert by_glob.t2m.chunks[0] == (12, 12, 12, 12)  # one dask chunk per file: blocks map onto files


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (NetCDFSource(paths="/nowhere/a.nc"), "source path '/nowhere/a.nc' does not exist"),
        (NetCDFSource(paths="/nowhere/*.nc"), "source glob '/nowhere/\\*.nc' matches no file"),
        (ZarrSource(url="/nowhere/a.zarr"), "source Zarr store '/nowhere/a.zarr' does not exist"),
        (IcechunkSource(repo="/nowhere/repo"), "cannot read the Icechunk source '/nowhere/repo'"),
        (CallableSource(function="no_such_package.mod:fn"), "source function .* cannot be imported .*No module"),
        (CallableSource(function="tests.sources:nothing"), "cannot be imported \\(AttributeError"),
        (CallableSource(function="tests.sources:not_a_dataset"), "returned int, not an xarray Dataset"),
    ],
)
def test_a_source_that_cannot_be_opened_says_why(source: NamedSource, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        source.open()


def test_zarr_icechunk_and_callable_sources(tmp_path: Path) -> None:
    dataset = SMALL.open()
    dataset.to_zarr(tmp_path / "a.zarr", zarr_format=3, consolidated=False)
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    to_icechunk(dataset, session, group="era")
    first = session.commit("first")
    repo.create_tag("v1", first)
    session = repo.writable_session("main")
    to_icechunk(dataset.isel(time=slice(0, 12)) * 2, session, group="era", region="auto")
    session.commit("second")

    xr.testing.assert_identical(ZarrSource(url=str(tmp_path / "a.zarr")).open().load(), dataset.load())
    at_tag = IcechunkSource(repo=str(tmp_path / "repo"), group="era", tag="v1").open()
    at_snapshot = IcechunkSource(repo=str(tmp_path / "repo"), group="era", snapshot_id=first).open()
    at_main = IcechunkSource(repo=str(tmp_path / "repo"), group="era").open()
    xr.testing.assert_identical(at_tag.load(), dataset.load())
    xr.testing.assert_identical(at_snapshot.load(), dataset.load())
    assert float(at_main.t2m[0].mean()) > 2 * float(at_tag.t2m[0].mean()) - 1
    called = CallableSource(function="tests.sources:synthetic", keywords={"ntime": 24, "seed": 3}).open()
    assert called.sizes["time"] == 24
    assert called.attrs["seed"] == 3
    with pytest.raises(InvalidRequestError, match="at most one of branch, tag and snapshot_id"):
        IcechunkSource(repo="r", branch="main", tag="v1")


def test_named_sources_travel_as_json_and_say_their_kind() -> None:
    adapter: TypeAdapter[NamedSource] = TypeAdapter(NamedSource)
    for source in (
        NetCDFSource(paths=["s3://b/a.nc", "s3://b/b.nc"], concat_dim="time"),
        ZarrSource(url="s3://b/x.zarr", group="g"),
        IcechunkSource(repo="s3://b/r", tag="v1"),
        CallableSource(function="pkg.mod:fn", keywords={"day": "2026-11-20"}),
        SMALL,
    ):
        assert adapter.validate_json(adapter.dump_json(source)) == source
    with pytest.raises(ValidationError, match="callable"):
        adapter.validate_python({"kind": "callable", "function": "not a reference"})


def test_a_form_filled_for_one_kind_after_another_is_that_kind_and_a_typo_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter: TypeAdapter[NamedSource] = TypeAdapter(NamedSource)
    # what Prefect's form sends: every field's default, the kind chosen last, NetCDF paths typed before it
    form = {name: prop.get("default") for name, prop in adapter.json_schema()["properties"].items()}
    form |= {"kind": "zarr", "url": "s3://b/x.zarr", "paths": "/data/*.nc"}

    assert adapter.validate_python(form) == ZarrSource(url="s3://b/x.zarr")
    assert "ignored paths='/data/*.nc': a field of netcdf and grib sources, not of zarr" in caplog.text
    form |= {"kind": "synthetic", "ntime": 48}
    assert adapter.validate_python(form) == SyntheticDataset(ntime=48)  # variables None: the synthetic default
    with pytest.raises(ValidationError, match="grup"):
        adapter.validate_python({"kind": "zarr", "url": "s3://b/x.zarr", "grup": None})
    with pytest.raises(ValidationError, match="url"):
        adapter.validate_python({"kind": "zarr", "paths": "/data/*.nc"})
