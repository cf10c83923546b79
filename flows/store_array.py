"""The `store_array` flow: dask arrays into an Icechunk repository, block by block, in one atomic commit."""

import hashlib
import json
import time
from typing import Any

import zarr
from prefect import flow, get_run_logger
from prefect.context import FlowRunContext

from flows.cluster import cluster_threads, dask_task_runner
from flows.fan_out import write_blocks
from flows.prefect_api import workers_report_to_flow_api
from tasks.arrays import initialize_arrays, region_bytes, resolve_writes
from tasks.commit import CommitResult, commit_session
from tasks.merge import merge_forks, verify_forks
from tasks.plan import auto_block_bytes
from tasks.request import ArrayWrite, WriteOptions
from tasks.target import check_branch, open_repository
from tasks.write import plan_jobs


def run_metadata() -> dict[str, Any]:
    """Who made the commit: the flow run, its deployment and a digest of its parameters."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return {}
    run = context.flow_run
    digest = hashlib.sha256(json.dumps(run.parameters, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "flow_run_id": str(run.id),
        "flow_run_name": run.name,
        "flow_name": context.flow.name if context.flow else None,
        "deployment_id": str(run.deployment_id) if run.deployment_id else None,
        "parameters_sha256": digest,
    }


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
    logger = get_run_logger()
    repository = open_repository(repo)
    parent_id = check_branch(repository, branch)
    session = repository.writable_session(branch)
    group = zarr.open_group(session.store, mode="a")
    resolved = resolve_writes(group, writes)
    nbytes = sum(region_bytes(r.region, r.dtype.itemsize) for r in resolved)

    with dask_task_runner(options) as runner, workers_report_to_flow_api():
        block_bytes = options.block_bytes or auto_block_bytes(nbytes, cluster_threads(runner))
        jobs = plan_jobs(resolved, block_bytes)
        logger.info("writing %d arrays in %d blocks to %s (branch %s)", len(resolved), len(jobs), repo, branch)
        initialize_arrays(group, resolved)
        written = write_blocks(runner, session.fork(), jobs, options)
    verify_forks(written, {r.path: r.unit for r in resolved})
    merge_forks(session, written)

    metadata = {"icefloe": {**run_metadata(), "blocks": len(jobs), "bytes": nbytes}}
    default_message = f"icefloe store_array: {', '.join(sorted({r.path for r in resolved}))}"
    snapshot_id = commit_session(session, message or default_message, metadata, options.commit_retries)
    result = CommitResult(
        snapshot_id=snapshot_id,
        parent_id=parent_id,
        branch=branch,
        blocks=len(jobs),
        bytes=nbytes,
        seconds=round(time.perf_counter() - started, 3),
    )
    logger.info(
        "committed snapshot %s on %s: %d blocks, %.1f MB in %.1f s (%.0f MB/s)",
        result.snapshot_id,
        branch,
        result.blocks,
        nbytes / 1e6,
        result.seconds,
        result.mb_per_s,
    )
    return result
