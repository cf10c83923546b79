"""Datasets a run can read, named by JSON-able parameters (a scheduled or API-triggered run gets no Python objects).

For now: a synthetic weather-like dataset (the demo's, the benchmarks' and the tests'), and an in-memory Dataset
for Python callers.
"""

from typing import Annotated, Any, Literal

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, PositiveInt, WithJsonSchema


class SyntheticDataset(BaseModel):
    """A deterministic (time, lat, lon) dataset: smooth fields plus seeded noise, coordinates and attributes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["synthetic"] = "synthetic"
    ntime: PositiveInt = Field(24, description="Time steps")
    nlat: PositiveInt = Field(181, description="Latitudes, pole to pole")
    nlon: PositiveInt = Field(360, description="Longitudes")
    variables: tuple[str, ...] = Field(("t2m", "u10"), min_length=1, description="Variable names")
    time_chunk: PositiveInt = Field(24, description="Dask chunk along time")
    start: str = Field("2020-01-01", description="First time step")
    freq: str = Field("1h", description="Time step, a pandas frequency")
    seed: int = 0

    def open(self) -> xr.Dataset:
        time = pd.date_range(self.start, periods=self.ntime, freq=self.freq)
        lat = np.linspace(90, -90, self.nlat, dtype="float32")
        lon = np.linspace(0, 360, self.nlon, endpoint=False, dtype="float32")
        chunks = (self.time_chunk, self.nlat, self.nlon)
        shape = (self.ntime, self.nlat, self.nlon)
        field = da.from_array(np.cos(np.deg2rad(lat))[None, :, None].astype("float32"), chunks=(1, self.nlat, 1))
        data_vars = {}
        for i, name in enumerate(self.variables):
            noise = da.random.default_rng(self.seed + i).random(shape, dtype="float32", chunks=chunks)
            values = (280 - 10 * i + 30 * field + noise).astype("float32")
            data_vars[name] = (("time", "lat", "lon"), values, {"long_name": f"synthetic {name}", "units": "1"})
        return xr.Dataset(
            data_vars,
            coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon)},
            attrs={"title": "icefloe synthetic dataset", "seed": self.seed},
        )

    def time_slice(self, start: int, stop: int) -> xr.Dataset:
        return self.open().isel(time=slice(start, stop))


def _check_dataset(value: object) -> xr.Dataset:
    if not isinstance(value, xr.Dataset):
        raise ValueError(f"expected an xarray Dataset, got {type(value).__name__}")
    return value


def describe_dataset(dataset: xr.Dataset) -> dict[str, Any]:
    """What Prefect records of an in-memory Dataset: its layout and the names of its dask graphs."""
    return {
        "dims": {str(k): int(v) for k, v in dataset.sizes.items()},
        "variables": {str(name): getattr(var.data, "name", "in-memory") for name, var in dataset.variables.items()},
    }


InMemoryDataset = Annotated[
    xr.Dataset,
    PlainValidator(_check_dataset),
    PlainSerializer(describe_dataset, when_used="json"),
    WithJsonSchema({"type": "object", "description": "an xarray Dataset (Python callers only)"}),
]

type DatasetSource = SyntheticDataset | InMemoryDataset


def open_source(source: DatasetSource) -> xr.Dataset:
    return source if isinstance(source, xr.Dataset) else source.open()
