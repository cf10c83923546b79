"""The `store_array` flow: dask arrays into an Icechunk repository, block by block, in one atomic commit."""

import time

import zarr
from prefect import flow

from flows.pipeline import write_and_commit
from flows.target_lock import target_lock
from tasks.arrays import initialize_arrays, resolve_writes
from tasks.commit import CommitResult
from tasks.request import ArrayWrite, WriteOptions
from tasks.target import open_target


@flow(name="store-array")
def store_array(
    repo: str,
    writes: list[ArrayWrite],
    branch: str = "main",
    message: str | None = None,
    options: WriteOptions = WriteOptions(),  # noqa: B008 - frozen model, safe as a default
) -> CommitResult:
    """Write dask arrays into the Icechunk repository `repo` (a path or s3://bucket/prefix) as ONE new snapshot.

    Like `icechunk.dask.store_dask`, plus per-block retries, a check that no chunk is written twice and a single
    commit that carries the run's metadata. Nothing is committed unless every block was written.
    """
    started = time.perf_counter()
    with target_lock(repo, branch):
        session, parent_id = open_target(repo, branch)
        assert parent_id is not None  # open_target creates a missing repository
        group = zarr.open_group(session.store, mode="a")
        resolved = resolve_writes(group, writes)
        initialize_arrays(group, resolved)
        default_message = f"icefloe store_array: {', '.join(sorted({r.path for r in resolved}))}"
        return write_and_commit(session, resolved, options, message or default_message, parent_id, started)
