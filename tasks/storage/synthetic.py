"""The synthetic source: a deterministic (time, lat, lon) dataset of any size, for demos, tests and benchmarks."""

from typing import Literal

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask.array.core import normalize_chunks  # public, documented there (dask.array does not export it)
from dask.base import tokenize
from pydantic import ConfigDict, Field, PositiveInt

from tasks.internals.pydantic import Request


class SyntheticDataset(Request):
    """A deterministic (time, lat, lon) dataset: smooth fields plus seeded noise, coordinates and attributes."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="Synthetic dataset")

    kind: Literal["synthetic"] = "synthetic"
    ntime: PositiveInt = Field(24, description="Time steps")
    nlat: PositiveInt = Field(181, description="Latitudes, pole to pole")
    nlon: PositiveInt = Field(360, description="Longitudes")
    variables: tuple[str, ...] = Field(("t2m", "u10"), min_length=1, description="Variable names")
    time_chunk: PositiveInt = Field(24, description="Dask chunk along time")
    start: str = Field("2020-01-01", description="First time step")
    freq: str = Field("1h", description="Time step, a pandas frequency")
    seed: int = Field(0, description="Seed of the noise")

    def open(self) -> xr.Dataset:
        time = pd.date_range(self.start, periods=self.ntime, freq=self.freq)
        lat = np.linspace(90, -90, self.nlat, dtype="float32")
        lon = np.linspace(0, 360, self.nlon, endpoint=False, dtype="float32")
        # one blockwise layer per variable, each chunk computed from its index alone: defining 10 TB of it takes
        # as long as 10 MB (a random array would hold a seed per chunk)
        chunks = normalize_chunks((self.time_chunk, self.nlat, self.nlon), (self.ntime, self.nlat, self.nlon))
        token = tokenize(self.model_dump_json())
        data_vars = {}
        for i, name in enumerate(self.variables):
            values = da.map_blocks(
                _synthetic_chunk,
                dtype="float32",
                chunks=chunks,
                name=f"synthetic-{name}-{token}",
                meta=np.empty((0, 0, 0), "float32"),
                block_id=True,
                shape=(self.ntime, self.nlat, self.nlon),
                time_chunk=self.time_chunk,
                seed=self.seed,
                variable=i,
            )
            data_vars[name] = (("time", "lat", "lon"), values, {"long_name": f"synthetic {name}", "units": "1"})
        return xr.Dataset(
            data_vars,
            coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon)},
            attrs={"title": "icefloe synthetic dataset", "seed": self.seed},
        )

    def time_slice(self, start: int, stop: int) -> xr.Dataset:
        return self.open().isel(time=slice(start, stop))


def _synthetic_chunk(
    *, block_id: tuple[int, int, int], shape: tuple[int, int, int], time_chunk: int, seed: int, variable: int
) -> np.ndarray:
    """Chunk `block_id` of a synthetic variable: a smooth field over latitude plus noise seeded by the chunk."""
    ntime, nlat, nlon = shape
    steps = min(time_chunk, ntime - block_id[0] * time_chunk)
    field = np.cos(np.deg2rad(np.linspace(90, -90, nlat, dtype="float32")))[None, :, None]
    noise = np.random.default_rng([seed, variable, block_id[0]]).random((steps, nlat, nlon), dtype="float32")
    return (280 - 10 * variable + 30 * field + noise).astype("float32")
