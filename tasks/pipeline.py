"""The data path every run shares once its arrays are initialized in the writable session.

plan blocks -> fork -> write blocks on the orchestrator's cluster -> verify forks -> merge -> ONE commit.
"""

import time

from icechunk import ForkSession, Session

from tasks.arrays import ResolvedWrite, region_bytes
from tasks.commit import CommitResult, commit_session
from tasks.merge import merge_forks, verify_forks
from tasks.orchestration import Orchestrator
from tasks.plan import Block
from tasks.request import WriteOptions
from tasks.write import BlockJob, plan_jobs


def write_and_commit(
    orchestrator: Orchestrator,
    session: Session,
    resolved: list[ResolvedWrite],
    options: WriteOptions,
    message: str,
    parent_id: str,
    started_at: float,
) -> CommitResult:
    """Write every resolved region block by block through forks of `session`, then commit once.

    `started_at` (`time.time()`) is when the run began; the result times start-up, writing and the commit apart.
    """
    logger = orchestrator.logger
    nbytes = sum(region_bytes(r.region, r.dtype.itemsize) for r in resolved)
    jobs: list[BlockJob] = []
    written: list[tuple[Block, ForkSession]] = []
    writing_at = written_at = time.time()
    if resolved:  # only metadata and in-memory variables: no cluster needed
        with orchestrator.block_runner(options) as runner:
            block_bytes = options.block_bytes or runner.sizing.block_bytes(nbytes, runner.threads)
            jobs = plan_jobs(resolved, block_bytes)
            logger.info("writing %d arrays in %d blocks (branch %s)", len(resolved), len(jobs), session.branch)
            writing_at = time.time()
            written = runner.write_blocks(session.fork(), jobs, options)
            written_at = time.time()
    verify_forks(written, {r.path: r.unit for r in resolved})
    merge_forks(session, written)

    metadata = {"icefloe": {**orchestrator.run_metadata(), "blocks": len(jobs), "bytes": nbytes}}
    branch = str(session.branch)  # a session forgets its branch once it has committed
    snapshot_id = commit_session(session, message, metadata, options.commit_retries)
    result = CommitResult(
        snapshot_id=snapshot_id,
        parent_id=parent_id,
        branch=branch,
        blocks=len(jobs),
        bytes=nbytes,
        started_at=started_at,
        writing_at=writing_at,
        written_at=written_at,
        committed_at=time.time(),
    )
    logger.info(
        "committed snapshot %s on %s: %d blocks, %.1f MB written in %.1f s (%.0f MB/s), %.1f s in all",
        result.snapshot_id,
        result.branch,
        result.blocks,
        nbytes / 1e6,
        result.write_seconds,
        result.write_mb_per_s,
        result.seconds,
    )
    return result
