"""Whether the chunks a session refers to can be read back: one byte of each, many at once.

A chunk reference in a manifest says nothing about the object it points to: garbage collection or a bucket's own
lifecycle may have deleted it. Reading its first byte through the session's store asks the object store for that
object (Icechunk answers inline chunks from the manifest itself), at the cost of one small request per chunk.
"""

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import zarr
from zarr.abc.store import RangeByteRequest, Store
from zarr.buffer import default_buffer_prototype

from tasks.errors import one_line

IN_FLIGHT = 64
"""Reads in flight at once: each waits on the object store's latency, not on this machine."""


@dataclass(frozen=True)
class UnreadableChunk:
    array: str
    index: tuple[int, ...]
    error: str

    def describe(self) -> str:
        return f"'{self.array}' chunk {self.index} ({self.error})"


type ChunkKey = tuple[str, tuple[int, ...], str]
"""An array's path, a chunk's index in it, and the chunk's key in the store."""

type Chunks = Mapping[str, Iterable[Iterable[int]]]
"""Chunk indices by array path, as `Session.status().updated_chunks` gives them."""


def chunk_keys(store: Store, chunks: Chunks) -> list[ChunkKey]:
    """The store keys of `chunks` (array path to chunk indices, as `Session.status().updated_chunks` gives them)."""
    keys: list[ChunkKey] = []
    for path, indices in sorted(chunks.items()):
        name = path.strip("/")
        array: zarr.Array[Any] = zarr.open_array(store, path=name, mode="r")
        for index in sorted(tuple(i) for i in indices):
            keys.append((name, index, f"{name}/{array.metadata.encode_chunk_key(index)}"))
    return keys


def unreadable_chunks(store: Store, chunks: Chunks) -> list[UnreadableChunk]:
    """The chunks of `chunks` that `store` cannot read, sorted by array and index."""
    found = asyncio.run(_read_all(store, chunk_keys(store, chunks), RangeByteRequest(0, 1)))
    return [f for f in found if isinstance(f, UnreadableChunk)]  # sorted: the keys are


def stored_bytes(store: Store, chunks: Chunks) -> list[tuple[str, tuple[int, ...], bytes]]:
    """Each chunk of `chunks` as stored (encoded; empty for one the session deleted), sorted by array and index;
    raises OSError when one cannot be read."""
    keys = chunk_keys(store, chunks)
    stored = []
    for (array, index, _), found in zip(keys, asyncio.run(_read_all(store, keys, None)), strict=True):
        if isinstance(found, UnreadableChunk):
            raise OSError(f"cannot read {found.describe()}")
        stored.append((array, index, found or b""))
    return stored


async def _read_all(
    store: Store, keys: list[ChunkKey], byte_range: RangeByteRequest | None
) -> list[UnreadableChunk | bytes | None]:
    """Each key's bytes (None: no chunk, as for one equal to the fill value), or what made reading it fail."""
    limit = asyncio.Semaphore(IN_FLIGHT)
    prototype = default_buffer_prototype()

    async def read(array: str, index: tuple[int, ...], key: str) -> UnreadableChunk | bytes | None:
        async with limit:
            try:
                found = await store.get(key, prototype, byte_range=byte_range)
            except Exception as e:  # Icechunk's StorageError ("object not found"), or the store failing
                return UnreadableChunk(array, index, one_line(e))
        return None if found is None else found.to_bytes()

    return list(await asyncio.gather(*(read(*key) for key in keys)))
