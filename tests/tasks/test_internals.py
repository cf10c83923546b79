"""The contract icefloe relies on in the private APIs fenced in `tasks/internals/` (Icechunk's session bytes have
their own, tests/tasks/test_icechunk_internals.py; Zarr's chunk path is held to Zarr's bytes by
tests/tasks/test_whole_chunks.py). Each fails as soon as an upgrade moves a name or changes what icefloe passes."""

import inspect

import numpy as np
import pytest
import xarray as xr
import zarr

from tasks.internals import dask as dask_internals
from tasks.internals import xarray as xarray_internals
from tasks.internals.icechunk import choose_default_mode


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_xarray_writer_pieces_take_what_icefloe_passes() -> None:
    assert parameters(xarray_internals.dump_to_store)[:3] == ["dataset", "store", "writer"]
    assert "encoding" in parameters(xarray_internals.dump_to_store)
    assert parameters(xarray_internals.ArrayWriter.add) == ["self", "source", "target", "region"]
    assert parameters(xarray_internals.ZarrStore._validate_and_autodetect_region) == ["self", "ds"]
    assert parameters(xarray_internals.ZarrStore._validate_encoding) == ["self", "encoding"]


def test_xarray_refusals_come_through_the_fence_as_to_zarr_raises_them() -> None:
    store = zarr.storage.MemoryStore()
    xr.Dataset({"x": ("t", np.arange(4.0))}).to_zarr(store, zarr_format=3, consolidated=False)
    opened = xarray_internals.ZarrStore.open_group(store, mode="r+", zarr_format=3, write_region="auto")
    region = xarray_internals.autodetect_region(opened, xr.Dataset({"x": ("t", np.arange(2.0))}))
    assert region.sizes == {"t": 2}
    with pytest.raises(ValueError, match="already exists, but encoding was provided"):
        xarray_internals.validate_names_and_encoding(opened, region, {"x": {"nonsense": 1}})
    with pytest.raises(TypeError):
        xarray_internals.validate_names_and_encoding(opened, xr.Dataset({1: ("t", [1.0])}), {})


def test_icechunk_chooses_to_zarrs_default_mode() -> None:
    assert choose_default_mode(mode=None, append_dim=None, region=None) == "w-"
    assert choose_default_mode(mode=None, append_dim="time", region=None) == "a"
    assert choose_default_mode(mode=None, append_dim=None, region="auto") == "r+"


def test_dask_aliases_a_key_as_array_blocks_does() -> None:
    alias = dask_internals.Alias("new", "old")
    assert isinstance(alias, dask_internals.GraphNode)
    assert alias.key == "new"
    assert alias.dependencies == frozenset({"old"})


def test_a_request_model_built_by_name_refuses_in_icefloes_words_and_nested_validation_keeps_pydantics() -> None:
    from pydantic import ValidationError, validate_call

    from tasks.errors import InvalidRequestError
    from tasks.request import WriteOptions

    def flow(options: WriteOptions) -> WriteOptions:
        return options

    with pytest.raises(InvalidRequestError, match=r"^WriteOptions: block_bytes: .* \(given: 0\)$"):
        WriteOptions(block_bytes=0)
    assert WriteOptions.__pydantic_custom_init__ is False  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as nested:  # the model's own __init__ is not called: located, not wrapped
        validate_call(flow)(options={"n_workers": 0})
    assert [e["loc"] for e in nested.value.errors()] == [("options", "n_workers")]
    with pytest.raises(ValidationError) as validated:
        WriteOptions.model_validate({"block_bytes": 0})
    assert [e["loc"] for e in validated.value.errors()] == [("block_bytes",)]
