"""The data path every run shares once its arrays are initialized in the writable session.

plan blocks -> fork -> write blocks on the orchestrator's cluster, each block's fork checked and merged as it
arrives -> ONE commit -> report. The commit is a stage of its own (`merge-and-commit`, a task run in Prefect), run
here, where the writable session lives.
"""

import time

from icechunk import Session

from tasks.arrays import ResolvedWrite, region_bytes
from tasks.commit import CommitResult, commit_session
from tasks.errors import BlockWriteError
from tasks.kept_forks import KeptForks, run_key
from tasks.merge import ForkMerger
from tasks.orchestration import Logger, Orchestrator
from tasks.plan import format_region
from tasks.report import array_reports, block_reports
from tasks.request import WriteOptions
from tasks.target import canonical_target
from tasks.write import BlockJob, WrittenBlock, plan_jobs, with_keep


def write_and_commit(
    orchestrator: Orchestrator,
    target: str,
    session: Session,
    resolved: list[ResolvedWrite],
    options: WriteOptions,
    message: str,
    parent_id: str,
    started_at: float,
    source_state: str = "",
) -> CommitResult:
    """Write every resolved region block by block through forks of `session`, then commit once.

    `started_at` (`time.time()`) is when the run began; the result times start-up, writing and the commit apart.
    Finished blocks are kept beside `target` until the commit: an earlier attempt of the same request (same tip,
    same initialized arrays, same source, `source_state` being what `source_fingerprint` says of it) left those
    it finished, and only the others are written.
    """
    initialized_at = time.time()
    logger = orchestrator.logger
    nbytes = sum(region_bytes(r.region, r.dtype.itemsize) for r in resolved)
    jobs: list[BlockJob] = []
    reused: list[WrittenBlock] = []
    writing_at = written_at = time.time()
    kept: KeptForks | None = None
    if resolved and options.resume:
        kept = KeptForks(target, run_key(session, resolved, parent_id, source_state))
        session = kept.resume_session(session, logger)
    merge = ForkMerger(session, {r.path: r.unit for r in resolved})  # each fork as it arrives: the process holds one
    if resolved:  # only metadata and in-memory variables: no cluster needed
        with orchestrator.block_runner(options) as runner:
            block_bytes = options.block_bytes or runner.sizing.block_bytes(nbytes, runner.threads)
            if kept is not None and options.block_bytes is None:
                block_bytes = kept.block_bytes(block_bytes)
            jobs = plan_jobs(resolved, block_bytes)
            if kept is not None:
                reused = kept.load_blocks([j.block for j in jobs], session, logger)
            done = {w.block.name for w in reused}
            todo = with_keep([j for j in jobs if j.block.name not in done], kept)
            logger.info(
                "writing %d arrays in %d blocks (branch %s)%s",
                len(resolved),
                len(todo),
                session.branch,
                f"; {len(reused)} blocks kept by an earlier attempt are reused" if reused else "",
            )
            writing_at = time.time()
            try:
                fork = session.fork() if todo else None  # from the initialized session, before any merge
                for written in reused:
                    merge(written)
                if fork is not None:
                    runner.write_blocks(fork, todo, options, merge)
            except BlockWriteError as e:
                if kept is None:
                    raise
                raise BlockWriteError(
                    f"{e}. The blocks that finished are kept beside the target: the same request run again "
                    "writes only the others"
                ) from e
            written_at = time.time()

    def merge_and_commit(logger: Logger) -> CommitResult:
        # every block's fork was checked and merged as it arrived
        created = {path.lstrip("/") for path in session.status().new_arrays}
        metadata = {
            "icefloe": {
                **orchestrator.run_metadata(),
                "blocks": len(jobs),
                "reused_blocks": len(reused),
                "bytes": nbytes,
                # what `icefloe validate` checks the snapshot against
                "written": {r.path: format_region(r.region) for r in resolved},
                "arrays": {r.path: {"dtype": str(r.dtype), "shape": list(r.shape)} for r in resolved},
            }
        }
        branch = str(session.branch)  # a session forgets its branch once it has committed
        snapshot_id = commit_session(session, message, metadata, options.commit_retries)
        result = CommitResult(
            target=canonical_target(target),
            snapshot_id=snapshot_id,
            parent_id=parent_id,
            branch=branch,
            arrays=array_reports(resolved, created, merge.merged),
            chunks=sum(n for m in merge.merged for n in m.chunks.values()),
            blocks=len(jobs),
            reused_blocks=len(reused),
            retried_blocks=sum(m.attempt > 1 for m in merge.merged),
            resubmitted_blocks=sum(m.resubmits > 0 for m in merge.merged),
            bytes=nbytes,
            started_at=started_at,
            initialized_at=initialized_at,
            writing_at=writing_at,
            written_at=written_at,
            committed_at=time.time(),
        )
        logger.info(
            "committed snapshot %s on %s (parent %s): %d blocks, %.1f MB written in %.1f s (%.0f MB/s), %.1f s in all",
            result.snapshot_id,
            result.branch,
            result.parent_id,
            result.blocks,
            nbytes / 1e6,
            result.write_seconds,
            result.write_mb_per_s,
            result.seconds,
        )
        return result

    result = orchestrator.stage("merge-and-commit", merge_and_commit)
    if kept is not None:
        try:
            kept.clear()
        except Exception as e:  # the commit stands; leftovers are listed and cleared by `icefloe kept`
            logger.warning("committed; removing the kept blocks failed (%s): `icefloe kept TARGET --clear` does it", e)
    orchestrator.publish(result, block_reports(merge.merged, {r.path: r.dtype.itemsize for r in resolved}))
    return result
