"""Block tasks open arrays with Zarr's fused codec pipeline: the same bytes stored as Zarr's default pipeline stores,
and nothing else in the process sees the setting. Fails loudly if an upgrade of Zarr moves or changes it."""

import asyncio
from pathlib import Path

import icechunk
import numpy as np
import pydantic
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.codec_pipeline import BatchedCodecPipeline, FusedCodecPipeline

from tasks.request import WriteOptions
from tasks.zarr_settings import open_for_writing


def stored(store: zarr.abc.store.Store) -> dict[str, bytes]:
    """Every chunk key under the array and its stored bytes."""

    async def read() -> dict[str, bytes]:
        keys = [k async for k in store.list_prefix("x") if "/c/" in k]
        values = [await store.get(k, default_buffer_prototype()) for k in keys]
        return {k: v.to_bytes() for k, v in zip(keys, values, strict=True) if v is not None}

    return asyncio.run(read())


@pytest.mark.parametrize("compressors", ["auto", None])
def test_the_fused_pipeline_stores_the_same_bytes_as_zarrs_default(tmp_path: Path, compressors: str | None) -> None:
    session = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path))).writable_session("main")
    group = zarr.open_group(session.store, mode="a")
    group.create_array("x", shape=(7, 30, 30), chunks=(2, 8, 8), dtype="f4", fill_value=np.nan, compressors=compressors)
    values = np.random.default_rng(0).random((7, 30, 30), dtype="float32")
    values[0:2, 0:8, 0:8] = np.nan  # a chunk of fill values: not stored by either
    default = zarr.config.get("codec_pipeline.path")

    forks = {}
    for pipeline, kind in (("fused", FusedCodecPipeline), ("batched", BatchedCodecPipeline)):
        fork = session.fork()
        array = open_for_writing(fork.store, "x", fused=pipeline == "fused")
        assert type(array._async_array.codec_pipeline) is kind
        assert zarr.config.get("codec_pipeline.path") == default  # the setting was scoped to the opening
        array[...] = values
        forks[pipeline] = fork

    fused, batched = stored(forks["fused"].store), stored(forks["batched"].store)
    assert len(fused) == 4 * 4 * 4 - 1  # edge chunks included, the all-fill one not
    assert fused == batched
    np.testing.assert_array_equal(zarr.open_array(forks["fused"].store, path="x")[...], values)


def test_a_codec_pipeline_option_that_is_not_a_yes_or_no_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="fused_codec_pipeline"):
        WriteOptions(fused_codec_pipeline="threaded")  # type: ignore[arg-type]
