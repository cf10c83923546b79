"""The data path every flow shares once its arrays are initialized in the writable session.

start or attach Dask -> plan blocks -> fork -> write-block tasks -> verify forks -> merge -> ONE commit.
"""

import hashlib
import json
import time
from typing import Any

from icechunk import ForkSession, Session
from prefect import get_run_logger
from prefect.context import FlowRunContext

from flows.cluster import cluster_threads, dask_task_runner
from flows.fan_out import write_blocks
from flows.prefect_api import workers_report_to_flow_api
from tasks.arrays import ResolvedWrite, region_bytes
from tasks.commit import CommitResult, commit_session
from tasks.merge import merge_forks, verify_forks
from tasks.plan import Block, auto_block_bytes
from tasks.request import WriteOptions
from tasks.write import BlockJob, plan_jobs


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


def write_and_commit(
    session: Session,
    resolved: list[ResolvedWrite],
    options: WriteOptions,
    message: str,
    parent_id: str,
    started: float,
) -> CommitResult:
    """Write every resolved region block by block through forks of `session`, then commit once."""
    logger = get_run_logger()
    nbytes = sum(region_bytes(r.region, r.dtype.itemsize) for r in resolved)
    jobs: list[BlockJob] = []
    written: list[tuple[Block, ForkSession]] = []
    if resolved:  # only metadata and in-memory variables: no cluster needed
        with dask_task_runner(options) as runner, workers_report_to_flow_api():
            block_bytes = options.block_bytes or auto_block_bytes(nbytes, cluster_threads(runner))
            jobs = plan_jobs(resolved, block_bytes)
            logger.info("writing %d arrays in %d blocks (branch %s)", len(resolved), len(jobs), session.branch)
            written = write_blocks(runner, session.fork(), jobs, options)
    verify_forks(written, {r.path: r.unit for r in resolved})
    merge_forks(session, written)

    metadata = {"icefloe": {**run_metadata(), "blocks": len(jobs), "bytes": nbytes}}
    branch = str(session.branch)  # a session forgets its branch once it has committed
    snapshot_id = commit_session(session, message, metadata, options.commit_retries)
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
        result.branch,
        result.blocks,
        nbytes / 1e6,
        result.seconds,
        result.mb_per_s,
    )
    return result
