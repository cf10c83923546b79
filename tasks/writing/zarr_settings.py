"""How block tasks set Zarr up: the chunks they have in flight."""

import zarr


def raise_chunks_in_flight(in_flight: int) -> None:
    """Zarr stores a piece's chunks `async.concurrency` at a time (10 by default), and so does
    `tasks/writing/whole_chunks.py`. It is read at each write, so it is raised for the whole process, never
    lowered: a scoped setting would be undone by whichever concurrent block finishes first."""
    if zarr.config.get("async.concurrency") < in_flight:
        zarr.config.set({"async.concurrency": in_flight})
