"""The `write_dataset` flow: an xarray Dataset into an Icechunk group with `Dataset.to_zarr` semantics, one commit."""

import time
from typing import Any, Literal

import zarr
from prefect import flow

from flows.pipeline import write_and_commit
from tasks.arrays import resolve_writes
from tasks.commit import CommitResult
from tasks.dataset import WriteMode, initialize_dataset, run_validation
from tasks.request import WriteOptions
from tasks.sources import DatasetSource, open_source
from tasks.target import check_branch, open_repository

type RegionParameter = dict[str, tuple[int | None, int | None] | Literal["auto"]] | Literal["auto"] | None


def _region(region: RegionParameter) -> Any:
    """JSON's [start, stop] pairs as the slices xarray expects."""
    if region is None or region == "auto":
        return region
    return {dim: v if v == "auto" else slice(*v) for dim, v in region.items()}


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

    `validation_hook` names a function (package.module:function) called with the initialized, uncommitted group as a
    Dataset before any block is written; if it raises, nothing is committed.
    """
    started = time.perf_counter()
    dataset = open_source(source)  # a bad source fails before the target is even opened
    repository = open_repository(repo)
    parent_id = check_branch(repository, branch)
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
    default_message = f"icefloe write_dataset: {group or '/'} (mode {mode or 'default'})"
    return write_and_commit(session, resolved, options, message or default_message, parent_id, started)
