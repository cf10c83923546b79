"""How block tasks set Zarr up: chunks in flight, and the codec pipeline their arrays are opened with."""

import threading
from typing import Any

import zarr
from zarr.abc.store import Store

from tasks.request import CodecPipeline

PIPELINES: dict[CodecPipeline, str] = {
    "fused": "zarr.core.codec_pipeline.FusedCodecPipeline",
    "batched": "zarr.core.codec_pipeline.BatchedCodecPipeline",
}

_opening = threading.Lock()  # concurrent scoped settings would restore each other's values out of order


def raise_chunks_in_flight(in_flight: int) -> None:
    """Zarr stores a piece's chunks `async.concurrency` at a time (10 by default). Zarr reads the setting at each
    write, so it is raised for the whole process, never lowered: a scoped setting would be undone by whichever
    concurrent block finishes first."""
    if zarr.config.get("async.concurrency") < in_flight:
        zarr.config.set({"async.concurrency": in_flight})


def open_for_writing(store: Store, path: str, pipeline: CodecPipeline) -> zarr.Array[Any]:
    """The array at `path`, encoding and storing through `pipeline`.

    Zarr binds an array's codec pipeline when it opens the array, so the setting is scoped to the opening and
    nothing else in the process sees it. "fused" is Zarr's synchronous pipeline (opt-in in Zarr: no coroutine per
    chunk); it stores the same bytes.
    """
    with _opening, zarr.config.set({"codec_pipeline.path": PIPELINES[pipeline]}):
        return zarr.open_array(store, path=path, mode="r+")
