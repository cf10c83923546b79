import xarray as xr
from fastapi.encoders import jsonable_encoder

from tasks.sources import SyntheticDataset, describe_dataset, open_source


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
