"""The `ingest` flow (scheduled: append what is new, idempotent) and the `backfill` flow (rewrite a time range in
place, or extend the target), both one commit at most."""

import time
from typing import Any

import xarray as xr
from icechunk import Session
from prefect import flow, get_run_logger

from flows.pipeline import write_and_commit
from flows.target_lock import target_lock
from tasks.arrays import ResolvedWrite
from tasks.commit import CommitResult
from tasks.dataset import RegionParameter, initialize_dataset
from tasks.ingest import Overlap, TimeUpdate, plan_time_update, target_times
from tasks.request import WriteOptions
from tasks.sources import NamedSource, open_source
from tasks.target import open_target


def _initialize_update(
    session: Session, update: TimeUpdate, new_target: bool, group: str | None, dim: str, encoding: Any
) -> list[ResolvedWrite]:
    if new_target:
        assert update.append is not None
        return initialize_dataset(session.store, update.append, group=group, mode="w-", encoding=encoding)
    if update.rewrite is None:
        assert update.append is not None
        return initialize_dataset(session.store, update.append, group=group, append_dim=dim)
    if update.append is not None:
        # grows the arrays and writes the new coordinates; the region write below covers its lazy variables
        initialize_dataset(session.store, update.append, group=group, append_dim=dim, safe_chunks=False)
    rewrite = update.rewrite.drop_vars([v for v in update.rewrite.variables if dim not in update.rewrite[v].dims])
    region: RegionParameter = {dim: (update.rewrite_start, update.rewrite_start + rewrite.sizes[dim])}
    # one region per array, from the first rewritten step to the new end: no chunk is shared by two writes, and
    # our blocks keep a partial edge chunk in one block, so xarray's chunk check is not needed here
    return initialize_dataset(session.store, rewrite, group=group, mode="r+", region=region, safe_chunks=False)


def update_along_time(
    repo: str,
    dataset: xr.Dataset,
    *,
    group: str | None,
    dim: str,
    overlap: Overlap,
    encoding: dict[str, dict[str, Any]] | None,
    branch: str,
    message: str,
    options: WriteOptions,
) -> CommitResult | None:
    """Write what `plan_time_update` selects, in one commit; None (and no commit) when there is nothing to write."""
    started = time.perf_counter()
    logger = get_run_logger()
    with target_lock(repo, branch):  # decide and write from the same tip: a concurrent run cannot append it too
        session, parent_id = open_target(repo, branch)
        assert parent_id is not None
        existing = target_times(session.store, group, dim)
        update = plan_time_update(dataset, existing, dim, overlap)
        if update.empty:
            end = existing[-1] if existing is not None and len(existing) else "nothing"
            logger.info("nothing new: the target ends at %s; %d source steps skipped", end, update.skipped_steps)
            return None
        logger.info(
            "%d new steps, %d rewritten, %d skipped", update.new_steps, update.rewritten_steps, update.skipped_steps
        )
        resolved = _initialize_update(session, update, existing is None, group, dim, encoding)
        return write_and_commit(session, resolved, options, message, parent_id, started)


@flow(name="ingest")
def ingest(
    repo: str,
    source: NamedSource,
    group: str | None = None,
    time_dim: str = "time",
    overlap: Overlap = "refuse",
    encoding: dict[str, dict[str, Any]] | None = None,
    branch: str = "main",
    options: WriteOptions = WriteOptions(),  # noqa: B008 - frozen model, safe as a default
) -> CommitResult | None:
    """Append the source's time steps that are newer than the target's last one. Idempotent: with nothing new
    it commits nothing and says so.

    Args:
        repo: Target repository: a local path or s3://bucket/prefix (S3 endpoint and keys from the environment).
        source: Where new data comes from: NetCDF files, a Zarr store, an Icechunk repository or a Python function
            (its "kind" says which).
        group: Group inside the repository; default: the root.
        time_dim: Dimension to ingest along.
        overlap: Source steps the target already holds: refuse (the run fails, nothing is written), skip (append
            only the newer ones) or rewrite (rewrite them in place, in the same commit).
        encoding: Zarr encoding per variable, used when the run creates the group.
        branch: Branch to commit to.
        options: Block size, retries, commit rebases and the Dask cluster.
    """
    return update_along_time(
        repo,
        open_source(source),
        group=group,
        dim=time_dim,
        overlap=overlap,
        encoding=encoding,
        branch=branch,
        message=f"icefloe ingest: new {time_dim} steps into {group or '/'}",
        options=options,
    )


@flow(name="backfill")
def backfill(
    repo: str,
    source: NamedSource,
    start: str | None = None,
    end: str | None = None,
    group: str | None = None,
    time_dim: str = "time",
    branch: str = "main",
    options: WriteOptions = WriteOptions(),  # noqa: B008 - frozen model, safe as a default
) -> CommitResult | None:
    """Rewrite the source's steps between start and end in place (a region write) and append those after the
    target's last step, in one commit.

    Args:
        repo: Target repository: a local path or s3://bucket/prefix (S3 endpoint and keys from the environment).
        source: Where the corrected or missing data comes from (its "kind" says which).
        start: First step to write, e.g. 2026-11-01 or 2026-11-01T06:00; default: the source's first.
        end: Last step to write (included); default: the source's last.
        group: Group inside the repository; default: the root.
        time_dim: Dimension of the time steps.
        branch: Branch to commit to.
        options: Block size, retries, commit rebases and the Dask cluster.
    """
    window = open_source(source).sel({time_dim: slice(start, end)})
    return update_along_time(
        repo,
        window,
        group=group,
        dim=time_dim,
        overlap="rewrite",
        encoding=None,
        branch=branch,
        message=f"icefloe backfill: {time_dim} {start or 'start'} to {end or 'end'} in {group or '/'}",
        options=options,
    )
