"""Whole chunks stored without Zarr's per-chunk coroutines.

Zarr writes every chunk through a few coroutines and event-loop round trips; for small chunks those cost more than
encoding and storing them. Here each chunk goes through Zarr's own single-chunk write (`merge_and_encode_chunk`: the
same merge with the fill value at the array's edge, the same empty-chunk rule, the same codecs) in a plain loop, and
is stored as soon as it is encoded, `async.concurrency` chunks in flight, as Zarr stores them.

Zarr's private codec API comes through `tasks/internals/zarr.py`; `tests/tasks/test_whole_chunks.py` holds it to the
bytes Zarr itself stores and fails loudly when an upgrade of Zarr changes it.
"""

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.abc.buffer import Buffer
from zarr.abc.codec import Codec
from zarr.buffer import default_buffer_prototype
from zarr.storage import StorePath

from tasks.internals.zarr import (
    ArraySpec,
    ArrayV3Metadata,
    ChunkTransform,
    RegularChunkGridMetadata,
    evolve_codecs,
    merge_and_encode_chunk,
)
from tasks.planning.blocks import chunk_ranges

type Part = tuple[tuple[slice, ...], np.ndarray]


@dataclass(frozen=True)
class WholeChunkWriter:
    """Stores parts of `array` that are whole chunks (each starts on the grid and ends on it or at the edge)."""

    array: zarr.Array[Any]
    transform: ChunkTransform
    spec: ArraySpec

    @classmethod
    def of(cls, array: zarr.Array[Any]) -> "WholeChunkWriter | None":
        """A writer for `array`, or None where Zarr's own path must write: sharded arrays (a stored object holds
        many chunks), irregular grids, and codecs that have no synchronous form."""
        metadata = array.metadata
        if (
            not isinstance(metadata, ArrayV3Metadata)
            or not isinstance(metadata.chunk_grid, RegularChunkGridMetadata)
            or array.shards is not None
        ):
            return None
        spec = ArraySpec(
            shape=array.chunks,
            dtype=metadata.data_type,
            fill_value=metadata.fill_value,
            config=array.config,
            prototype=default_buffer_prototype(),
        )
        codecs: Sequence[Codec] = metadata.codecs
        try:
            transform = ChunkTransform(codecs=evolve_codecs(codecs, spec))
        except TypeError:  # a codec without a synchronous encoder
            return None
        return cls(array, transform, spec)

    def covers(self, slices: tuple[slice, ...]) -> bool:
        """Whether `slices` (steps of 1) are whole chunks of the array."""
        return all(
            s.start % c == 0 and (s.stop % c == 0 or s.stop == n)
            for s, c, n in zip(slices, self.array.chunks, self.array.shape, strict=True)
        )

    def write(self, parts: list[Part]) -> None:
        """Store every chunk of `parts` (each covered: see `covers`)."""
        asyncio.run(self._store(parts, zarr.config.get("async.concurrency")))

    async def _store(self, parts: list[Part], in_flight: int) -> None:
        """Each chunk stored (or deleted where it came out empty: Zarr's rule) as soon as it is encoded, at most
        `in_flight` at a time: encoding overlaps storing, and encoded chunks never pile up."""
        slots = asyncio.Semaphore(in_flight)

        async def store(path: StorePath, data: Buffer | None) -> None:
            try:
                await (path.delete() if data is None else path.set(data))
            finally:
                slots.release()

        stores = []
        for slices, values in parts:
            for path, data in self._encoded(slices, values):
                await slots.acquire()
                stores.append(asyncio.ensure_future(store(path, data)))
        await asyncio.gather(*stores)

    def _encoded(self, slices: tuple[slice, ...], values: np.ndarray) -> Iterator[tuple[StorePath, Buffer | None]]:
        dtype = self.spec.dtype.to_native_dtype()
        if values.dtype != dtype:
            values = values.astype(dtype, order="A")  # as Zarr casts what it is given
        value = self.spec.prototype.nd_buffer.from_numpy_array(values)
        region = tuple((s.start, s.stop) for s in slices)
        for coords in itertools.product(*chunk_ranges(region, self.array.chunks)):
            # Where the chunk lies in `values`, and how much of the chunk it fills (less only at the array's edge).
            start = [i * c for i, c in zip(coords, self.array.chunks, strict=True)]
            stop = [min(a + c, n) for a, c, n in zip(start, self.array.chunks, self.array.shape, strict=True)]
            out_selection = tuple(slice(a - s.start, b - s.start) for a, b, s in zip(start, stop, slices, strict=True))
            chunk_selection = tuple(slice(0, b - a) for a, b in zip(start, stop, strict=True))
            data = merge_and_encode_chunk(
                None,
                value,
                chunk_spec=self.spec,
                chunk_selection=chunk_selection,
                out_selection=out_selection,
                is_complete=True,
                drop_axes=(),
                decode=self.transform.decode_chunk,
                encode=self.transform.encode_chunk,
            )
            yield self.array.store_path / self.array.metadata.encode_chunk_key(coords), data
