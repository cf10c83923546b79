"""The `write_dataset` flow: an xarray Dataset into an Icechunk group with `Dataset.to_zarr` semantics, one commit."""

import time
from dataclasses import dataclass
from typing import Any, Literal

import icechunk
import xarray as xr
import zarr
from icechunk import Session
from prefect import flow

from flows.pipeline import write_and_commit
from flows.target_lock import target_lock
from tasks.arrays import ResolvedWrite, resolve_writes
from tasks.commit import CommitResult
from tasks.dataset import WriteMode, initialize_dataset, run_validation
from tasks.request import WriteOptions
from tasks.sources import DatasetSource, open_source
from tasks.target import check_branch, open_repository, repository_storage

type RegionParameter = dict[str, tuple[int | None, int | None] | Literal["auto"]] | Literal["auto"] | None


def _region(region: RegionParameter) -> Any:
    """JSON's [start, stop] pairs as the slices xarray expects."""
    if region is None or region == "auto":
        return region
    return {dim: v if v == "auto" else slice(*v) for dim, v in region.items()}


def open_target(repo: str, branch: str, *, create: bool = True) -> tuple[Session, str | None]:
    """A writable session on `branch` and its tip. With `create=False` a missing repository is not created: the
    session belongs to an empty in-memory one (tip None), so a dry run leaves no trace."""
    if not create and not icechunk.Repository.exists(repository_storage(repo)):
        return icechunk.Repository.create(icechunk.in_memory_storage()).writable_session(branch), None
    repository = open_repository(repo) if create else icechunk.Repository.open(repository_storage(repo))
    parent_id = check_branch(repository, branch)
    return repository.writable_session(branch), parent_id


def initialize(
    session: Session,
    dataset: xr.Dataset,
    *,
    group: str | None = None,
    mode: WriteMode | None = None,
    append_dim: str | None = None,
    region: RegionParameter = None,
    encoding: dict[str, dict[str, Any]] | None = None,
    safe_chunks: bool = True,
    align_chunks: bool = False,
    validation_hook: str | None = None,
) -> list[ResolvedWrite]:
    """Initialize `dataset` in the session as to_zarr would, run the hook, and check the lazy variables' writes.

    Every refusal happens here, before any chunk of a lazy variable is written.
    """
    writes = initialize_dataset(
        session.store,
        dataset,
        group=group,
        mode=mode,
        append_dim=append_dim,
        region=_region(region),
        encoding=encoding,
        safe_chunks=safe_chunks,
        align_chunks=align_chunks,
    )
    if validation_hook is not None:
        run_validation(validation_hook, session.store, group)
    group_node = zarr.open_group(session.store, mode="r")
    # xarray has checked the alignment already, as safe_chunks asks; our blocks keep every chunk in one block
    return resolve_writes(group_node, writes, partial_edge_chunks=True) if writes else []


@dataclass
class PreparedWrite:
    """A Dataset initialized in a writable session (never committed here) and its lazy variables, checked."""

    session: Session
    parent_id: str | None
    resolved: list[ResolvedWrite]


def prepare_write(
    repo: str, source: DatasetSource, *, branch: str = "main", create: bool = True, **keywords: Any
) -> PreparedWrite:
    """Open the source (a bad one fails before the target is even opened), then the target, then `initialize`."""
    dataset = open_source(source)
    session, parent_id = open_target(repo, branch, create=create)
    return PreparedWrite(session, parent_id, initialize(session, dataset, **keywords))


@flow(name="write-dataset")
def write_dataset(
    repo: str,
    source: DatasetSource,
    group: str | None = None,
    mode: WriteMode | None = None,
    append_dim: str | None = None,
    region: RegionParameter = None,
    encoding: dict[str, dict[str, Any]] | None = None,
    safe_chunks: bool = True,
    align_chunks: bool = False,
    branch: str = "main",
    message: str | None = None,
    validation_hook: str | None = None,
    options: WriteOptions = WriteOptions(),  # noqa: B008 - frozen model, safe as a default
) -> CommitResult:
    """Write a dataset into an Icechunk repository like `Dataset.to_zarr` / icechunk's `to_icechunk`: same
    keywords, same errors; metadata and in-memory variables first, then the lazy variables block by block on Dask,
    then ONE commit. Nothing is committed unless everything was written.

    Args:
        repo: Target repository: a local path or s3://bucket/prefix (S3 endpoint and keys from the environment).
        source: What to write: NetCDF files, a Zarr store, an Icechunk repository, a Python function or the
            synthetic dataset (its "kind" says which).
        group: Group inside the repository; default: the root.
        mode: As in to_zarr: w (overwrite), w- (create, fail if it exists), a (append or add variables),
            a- (append only variables that have append_dim), r+ (change values only). Default: w-, or a with
            append_dim, or r+ with region.
        append_dim: Dimension to append along (e.g. time).
        region: Region to write, per dimension [start, stop] or "auto"; or "auto" for every dimension.
        encoding: Per variable Zarr encoding: chunks, shards, compressors, dtype, fill_value.
        safe_chunks: Refuse writes whose Dask chunks would share a Zarr chunk (as to_zarr does).
        align_chunks: Rechunk the source to the Zarr chunks first (as to_zarr does).
        branch: Branch to commit to.
        message: Commit message; default: says what was written.
        validation_hook: package.module:function called with the initialized, uncommitted group as a Dataset
            before any block is written; if it raises, nothing is committed.
        options: Block size, retries, commit rebases and the Dask cluster.
    """
    started = time.perf_counter()
    dataset = open_source(source)  # a bad source fails before the target is even opened
    with target_lock(repo, branch):
        session, parent_id = open_target(repo, branch)
        assert parent_id is not None
        resolved = initialize(
            session,
            dataset,
            group=group,
            mode=mode,
            append_dim=append_dim,
            region=region,
            encoding=encoding,
            safe_chunks=safe_chunks,
            align_chunks=align_chunks,
            validation_hook=validation_hook,
        )
        default_message = f"icefloe write_dataset: {group or '/'} (mode {mode or 'default'})"
        return write_and_commit(session, resolved, options, message or default_message, parent_id, started)
