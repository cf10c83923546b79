"""xarray's private API: the pieces of `Dataset.to_zarr` that `tasks/planning/dataset.py` runs in order, so that a
write's modes, regions and encodings are checked and refused exactly as to_zarr does (tests/tasks/test_dataset.py
compares them). An upgrade that moves a name fails here, on import, with the version that lacks it."""

from collections.abc import Mapping
from typing import Any

import xarray as xr

try:
    from xarray.backends.common import ArrayWriter
    from xarray.backends.writers import _validate_dataset_names, dump_to_store
    from xarray.backends.zarr import ZarrStore
except ImportError as e:  # pragma: no cover - only on an xarray that moved them
    raise ImportError(
        f"icefloe's Dataset writes need xarray's Zarr writer, which xarray {xr.__version__} lacks: {e}"
    ) from e

__all__ = ["ArrayWriter", "ZarrStore", "autodetect_region", "dump_to_store", "validate_names_and_encoding"]


def autodetect_region(store: ZarrStore, dataset: xr.Dataset) -> xr.Dataset:
    """The dataset with its region checked (and "auto" resolved against the store), as to_zarr does first."""
    return store._validate_and_autodetect_region(dataset)


def validate_names_and_encoding(store: ZarrStore, dataset: xr.Dataset, encoding: Mapping[Any, Any]) -> None:
    """to_zarr's refusals of variable names and of an encoding the store cannot take."""
    _validate_dataset_names(dataset)
    store._validate_encoding(encoding)
