"""The `store_array` flow: dask arrays into an Icechunk repository, block by block, in one atomic commit."""

import hashlib
import json
import time
from typing import Any
from uuid import UUID

import zarr
from distributed import KilledWorker
from icechunk import ForkSession
from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Crashed
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture
from pydantic import BaseModel, ConfigDict

from flows.cluster import cluster_threads, dask_task_runner
from flows.prefect_api import workers_report_to_flow_api
from flows.submit import submit_many
from tasks.arrays import initialize_arrays, region_bytes, resolve_writes
from tasks.block_task import write_block_task
from tasks.commit import commit_session
from tasks.errors import BlockWriteError
from tasks.merge import merge_forks, verify_forks
from tasks.plan import Block, auto_block_bytes
from tasks.request import ArrayWrite, WriteOptions
from tasks.target import check_branch, open_repository
from tasks.write import BlockJob, plan_jobs


class CommitResult(BaseModel):
    """What a run did: the snapshot it made on the branch and how much it wrote."""

    model_config = ConfigDict(frozen=True)

    snapshot_id: str
    parent_id: str
    branch: str
    blocks: int
    bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0


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


def write_blocks(
    runner: DaskTaskRunner, fork: ForkSession, jobs: list[BlockJob], options: WriteOptions
) -> list[tuple[Block, ForkSession]]:
    """Fan the blocks out on Dask; each returns its fork. A block lost with its worker is submitted again."""
    task = write_block_task.with_options(
        retries=options.retries,
        retry_delay_seconds=[options.retry_delay_seconds * 2**i for i in range(options.retries)] or 0,
    )
    logger = get_run_logger()

    def submit(batch: list[BlockJob]) -> list[PrefectDaskFuture[ForkSession]]:
        return submit_many(runner, task, [_params(fork, job, options) for job in batch])

    written: list[tuple[Block, ForkSession]] = []
    failures: list[str] = []
    pending = [(job, future, 0) for job, future in zip(jobs, submit(jobs), strict=True)]
    while pending:
        (job, future, resubmits), *pending = pending
        try:
            written.append((job.block, future.result()))
        except KilledWorker as e:
            # Dask gave up on the task after its workers died: Prefect's retries never ran.
            mark_crashed(future.task_run_id, f"worker lost: {e}")
            if resubmits >= options.retries:
                failures.append(f"{job.block.name}: {e}")
                continue
            logger.warning("block %s lost with its worker; submitting it again", job.block.name)
            pending.append((job, submit([job])[0], resubmits + 1))
        except Exception as e:
            failures.append(f"{job.block.name}: {e}")
    if failures:
        raise BlockWriteError(
            f"{len(failures)} of {len(jobs)} blocks failed after retries; nothing was committed. "
            f"First failure: {failures[0]}"
        )
    return written


def mark_crashed(task_run_id: UUID, message: str) -> None:
    """A task whose worker died stays Pending or Running in Prefect; say what happened to it."""
    with get_client(sync_client=True) as client:
        try:
            client.set_task_run_state(task_run_id, Crashed(message=message), force=True)
        except PrefectHTTPStatusError as e:
            if e.response.status_code != 404:  # 404: the worker died before the run reached the API
                raise


def _params(fork: ForkSession, job: BlockJob, options: WriteOptions) -> dict[str, Any]:
    return {
        "fork": fork,
        "block": job.block,
        "unit": job.unit,
        "source": job.source,
        "piece_bytes": options.piece_bytes,
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
