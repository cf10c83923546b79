"""How block tasks set Zarr up: chunks in flight, and the codec pipeline their arrays are opened with."""

import threading
from typing import Any

import zarr
from zarr.abc.store import Store

FUSED_PIPELINE = "zarr.core.codec_pipeline.FusedCodecPipeline"

_opening = threading.Lock()  # concurrent scoped settings would restore each other's values out of order


def raise_chunks_in_flight(in_flight: int) -> None:
    """Zarr stores a piece's chunks `async.concurrency` at a time (10 by default). Zarr reads the setting at each
    write, so it is raised for the whole process, never lowered: a scoped setting would be undone by whichever
    concurrent block finishes first."""
    if zarr.config.get("async.concurrency") < in_flight:
        zarr.config.set({"async.concurrency": in_flight})


def open_for_writing(store: Store, path: str, fused: bool) -> zarr.Array[Any]:
    """The array at `path`; with `fused`, encoding and storing through Zarr's synchronous pipeline (opt-in in Zarr:
    no coroutine per chunk; the same bytes stored), else through whichever pipeline Zarr is configured with.

    Zarr binds an array's codec pipeline when it opens the array, so the setting is scoped to the opening and
    nothing else in the process sees it.
    """
    if not fused:
        return zarr.open_array(store, path=path, mode="r+")
    with _opening, zarr.config.set({"codec_pipeline.path": FUSED_PIPELINE}):
        return zarr.open_array(store, path=path, mode="r+")
