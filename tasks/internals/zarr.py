"""Zarr's private API: its single-chunk write path, which `tasks/writing/whole_chunks.py` drives for chunks a block
holds whole (the fill value at an edge, the empty-chunk rule, the codecs, exactly as Zarr writes one chunk).
tests/tasks/test_whole_chunks.py holds the result to Zarr's own bytes; an upgrade that moves a name fails here, on
import, with the version that lacks it."""

import zarr

try:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.chunk_utils import ChunkTransform, evolve_codecs, merge_and_encode_chunk
    from zarr.core.metadata.v3 import ArrayV3Metadata, RegularChunkGridMetadata
except ImportError as e:
    raise ImportError(
        f"icefloe's whole-chunk writer needs Zarr's chunk API, which zarr {zarr.__version__} lacks: {e}"
    ) from e

__all__ = [
    "ArraySpec",
    "ArrayV3Metadata",
    "ChunkTransform",
    "RegularChunkGridMetadata",
    "evolve_codecs",
    "merge_and_encode_chunk",
]
