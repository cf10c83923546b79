"""The `write_dataset` flow: an xarray Dataset into an Icechunk group with `Dataset.to_zarr` semantics, one commit."""

import time
from dataclasses import dataclass
from typing import Any, Literal

import icechunk
import zarr
from icechunk import Session
from prefect import flow

from flows.pipeline import write_and_commit
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


@dataclass
class PreparedWrite:
    """A Dataset initialized in a writable session (never committed here) and its lazy variables, checked."""

    session: Session
    parent_id: str | None
    resolved: list[ResolvedWrite]


def prepare_write(
    repo: str,
    source: DatasetSource,
    *,
    group: str | None = None,
    mode: WriteMode | None = None,
    append_dim: str | None = None,
    region: RegionParameter = None,
    encoding: dict[str, dict[str, Any]] | None = None,
    safe_chunks: bool = True,
    align_chunks: bool = False,
    branch: str = "main",
    validation_hook: str | None = None,
    create: bool = True,
) -> PreparedWrite:
    """Open the source, initialize it in a writable session of the target and check its lazy variables.

    Every refusal happens here, before any chunk is written. With `create=False` a missing target is not created:
    the write is prepared against an empty in-memory repository (a dry run leaves no trace).
    """
    dataset = open_source(source)  # a bad source fails before the target is even opened
    if create or icechunk.Repository.exists(repository_storage(repo)):
        repository = open_repository(repo) if create else icechunk.Repository.open(repository_storage(repo))
        parent_id: str | None = check_branch(repository, branch)
    else:
        repository, parent_id = icechunk.Repository.create(icechunk.in_memory_storage()), None
    session = repository.writable_session(branch)
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
    resolved = resolve_writes(group_node, writes, partial_edge_chunks=True) if writes else []
    return PreparedWrite(session, parent_id, resolved)


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
    """Write `source` into `repo` like `to_icechunk` / `Dataset.to_zarr` (same keywords, same errors): metadata and
    in-memory variables first, then the lazy variables block by block, then ONE commit.

    `validation_hook` names a function (package.module:function) called with the initialized, uncommitted group
    as a Dataset before any block is written; if it raises, nothing is committed.
    """
    started = time.perf_counter()
    prepared = prepare_write(
        repo,
        source,
        group=group,
        mode=mode,
        append_dim=append_dim,
        region=region,
        encoding=encoding,
        safe_chunks=safe_chunks,
        align_chunks=align_chunks,
        branch=branch,
        validation_hook=validation_hook,
    )
    assert prepared.parent_id is not None
    default_message = f"icefloe write_dataset: {group or '/'} (mode {mode or 'default'})"
    return write_and_commit(
        prepared.session, prepared.resolved, options, message or default_message, prepared.parent_id, started
    )
