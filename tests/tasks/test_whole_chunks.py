"""Whole chunks stored past Zarr's per-chunk coroutines are the bytes Zarr itself stores, for the layouts and rules
that decide them: edge chunks, all-fill chunks (dropped, or kept with write_empty_chunks), signed zeros, codecs,
dtype casts, a chunk emptied over an earlier snapshot. Fails loudly when an upgrade of Zarr changes its codec API."""

import asyncio
from pathlib import Path
from typing import Any

import icechunk
import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype

from tasks.writing.block import store_parts
from tasks.writing.whole_chunks import WholeChunkWriter

SHAPE, CHUNKS = (7, 30, 30), (2, 8, 8)  # edge chunks along every axis
WHOLE = (slice(0, 7), slice(0, 30), slice(0, 30))


def stored(store: zarr.abc.store.Store) -> dict[str, bytes]:
    """Every chunk key under the array and its stored bytes."""

    async def read() -> dict[str, bytes]:
        keys = [k async for k in store.list_prefix("x") if "/c/" in k]
        values = [await store.get(k, default_buffer_prototype()) for k in keys]
        return {k: v.to_bytes() for k, v in zip(keys, values, strict=True) if v is not None}

    return asyncio.run(read())


def new_session(tmp_path: Path, **array: Any) -> icechunk.Session:
    session = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path))).writable_session("main")
    zarr.open_group(session.store, mode="a").create_array("x", shape=SHAPE, chunks=CHUNKS, **array)
    return session


def both_ways(
    session: icechunk.Session, parts: list[tuple[tuple[slice, ...], np.ndarray]], **config: Any
) -> dict[str, Any]:
    """The same parts written by Zarr and by the writer, each through a fork of `session`, the array opened with
    `config` (Zarr's runtime settings, not stored with the array)."""
    by_zarr, by_writer = session.fork(), session.fork()
    array = zarr.open_array(by_zarr.store, path="x", mode="r+", config=config)
    for slices, values in parts:
        array[slices] = values
    writer = WholeChunkWriter.of(zarr.open_array(by_writer.store, path="x", mode="r+", config=config))
    assert writer is not None
    assert all(writer.covers(slices) for slices, _ in parts)
    writer.write(parts)
    return {"zarr": stored(by_zarr.store), "writer": stored(by_writer.store), "fork": by_writer}


def random_values(dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(0).random(SHAPE).astype(dtype)


@pytest.mark.parametrize("compressors", ["auto", None])
def test_edge_chunks_and_an_all_fill_chunk_are_stored_as_zarr_stores_them(
    tmp_path: Path, compressors: str | None
) -> None:
    session = new_session(tmp_path, dtype="f4", fill_value=np.nan, compressors=compressors)
    values = random_values()
    values[0:2, 0:8, 0:8] = np.nan  # all fill: not stored
    split = [((slice(0, 4), *WHOLE[1:]), values[0:4]), ((slice(4, 7), *WHOLE[1:]), values[4:7])]
    result = both_ways(session, split)
    assert len(result["writer"]) == 4 * 4 * 4 - 1
    assert result["writer"] == result["zarr"]
    read_back = zarr.open_array(result["fork"].store, path="x")[...]
    np.testing.assert_array_equal(read_back, values)


def test_write_empty_chunks_keeps_an_all_fill_chunk_and_negative_zero_is_not_the_fill(tmp_path: Path) -> None:
    session = new_session(tmp_path, dtype="f8", fill_value=0.0)
    values = random_values("float64")
    values[0:2, 0:8, 0:8] = 0.0
    values[2:4, 0:8, 0:8] = -0.0
    result = both_ways(session, [(WHOLE, values)], write_empty_chunks=True)
    assert len(result["writer"]) == 4 * 4 * 4
    assert result["writer"] == result["zarr"]

    session = new_session(tmp_path / "dropped", dtype="f8", fill_value=0.0)
    result = both_ways(session, [(WHOLE, values)])
    assert len(result["writer"]) == 4 * 4 * 4 - 1  # the zeros dropped, the negative zeros kept
    assert result["writer"] == result["zarr"]


def test_values_of_another_dtype_are_cast_as_zarr_casts_them(tmp_path: Path) -> None:
    session = new_session(tmp_path, dtype="i2", fill_value=-1)
    values = np.random.default_rng(1).integers(0, 2**14, SHAPE).astype("float64")
    result = both_ways(session, [(WHOLE, values)])
    assert result["writer"] == result["zarr"]
    np.testing.assert_array_equal(zarr.open_array(result["fork"].store, path="x")[...], values.astype("i2"))


def test_a_chunk_emptied_over_an_earlier_snapshot_is_deleted(tmp_path: Path) -> None:
    session = new_session(tmp_path, dtype="f4", fill_value=np.nan)
    zarr.open_array(session.store, path="x", mode="r+")[...] = random_values()
    session.commit("filled")
    session = icechunk.Repository.open(icechunk.local_filesystem_storage(str(tmp_path))).writable_session("main")
    values = random_values()
    values[0:2, 0:8, 0:8] = np.nan
    result = both_ways(session, [(WHOLE, values)])
    assert "x/c/0/0/0" not in result["writer"]
    assert result["writer"] == result["zarr"]
    assert np.isnan(zarr.open_array(result["fork"].store, path="x")[0:2, 0:8, 0:8]).all()


def test_only_whole_chunks_are_covered() -> None:
    writer = WholeChunkWriter.of(zarr.create_array({}, shape=SHAPE, chunks=CHUNKS, dtype="f4"))
    assert writer is not None
    assert writer.covers((slice(2, 4), slice(8, 24), slice(0, 30)))  # ends at the array's edge
    assert not writer.covers((slice(1, 4), slice(8, 24), slice(0, 30)))  # starts inside a chunk
    assert not writer.covers((slice(2, 5), slice(8, 24), slice(0, 30)))  # stops inside one


def test_sharded_arrays_are_left_to_zarr_and_partial_chunks_merge_with_what_is_there(tmp_path: Path) -> None:
    sharded = zarr.create_array({}, shape=SHAPE, chunks=(1, 4, 4), shards=CHUNKS, dtype="f4")
    assert WholeChunkWriter.of(sharded) is None

    session = new_session(tmp_path, dtype="f4", fill_value=np.nan)
    array = zarr.open_array(session.store, path="x", mode="r+")
    values = random_values()
    array[...] = values
    values[1:4] = 7.0  # step 1 is half a chunk, steps 2-3 a whole one
    parts = [((slice(1, 2), *WHOLE[1:]), values[1:2]), ((slice(2, 4), *WHOLE[1:]), values[2:4])]
    store_parts(array, WholeChunkWriter.of(array), parts)
    np.testing.assert_array_equal(array[...], values)
