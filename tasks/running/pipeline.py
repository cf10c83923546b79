"""The data path every run shares once its arrays are initialized in the writable session.

plan blocks -> fork -> write blocks on the orchestrator's cluster, each block's fork checked and merged as it
arrives -> ONE commit -> report. The commit is a stage of its own (`merge-and-commit`, a task run in Prefect), run
here, where the writable session lives.
"""

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import icechunk
from icechunk import Session

from tasks.committing.commit import commit_session
from tasks.committing.kept_forks import KeptForks, Resumption, resume, run_key
from tasks.committing.merge import ForkMerger
from tasks.committing.report import array_reports, block_reports
from tasks.errors import BlockWriteError, UnreadableChunksError, notes_started_writing
from tasks.planning.arrays import ResolvedWrite, region_bytes
from tasks.records import BlockJob, CommitResult, Logger, WrittenBlock, format_region
from tasks.request import WriteOptions
from tasks.running.orchestration import BlockRunner, Orchestrator
from tasks.storage.chunk_reads import unreadable_chunks
from tasks.storage.garbage_collection import Mark, collections_since
from tasks.storage.target import OpenedTarget, canonical_target
from tasks.writing.block import keep_block, plan_jobs, with_keep

KEEPERS = 4
"""Threads keeping forks: each waits on the object store's latency."""


@notes_started_writing
def write_and_commit(
    orchestrator: Orchestrator,
    runner: Callable[[], BlockRunner],
    target: str,
    opened: OpenedTarget,
    resolved: list[ResolvedWrite],
    options: WriteOptions,
    message: str,
    started_at: float,
    source_state: str = "",
    listed: "Future[list[str]] | None" = None,
) -> CommitResult:
    """Write every resolved region block by block through forks of `opened.session`, then commit once.

    `runner` gives the orchestrator's block runner, entered meanwhile (`entered_meanwhile`): it is waited for only
    once there are blocks to plan. `started_at` (`time.time()`) is when the run began; the result times start-up,
    writing and the commit apart.
    Finished blocks are kept beside `target` until the commit: an earlier attempt of the same request (same tip,
    same initialized arrays, same source, `source_state` being what `source_fingerprint` says of it) left those
    it finished, and only the others are written (`listed`: the branch's kept sets, as `list_kept` lists them). The
    request was accepted: whatever fails from here on is a failed run, not a refused request.
    """
    initialized_at = time.time()
    logger = orchestrator.logger
    # a run writes to a real repository
    assert opened.repository is not None
    assert opened.parent_id is not None
    session, parent_id, repository = opened.session, opened.parent_id, opened.repository
    nbytes = sum(region_bytes(r.region, r.dtype.itemsize) for r in resolved)
    jobs: list[BlockJob] = []
    reused: list[WrittenBlock] = []
    writing_at = written_at = time.time()
    resumption: Resumption | None = None
    proven = opened.mark  # every object the commit will refer to was written after this point of the log
    if resolved and options.resume:
        kept = KeptForks(target, run_key(session, resolved, parent_id, source_state))
        resumption = resume(kept, session, repository, opened.mark, logger, listed)
        session, proven = resumption.session, resumption.proven
    merge = ForkMerger(session, {r.path: r.unit for r in resolved})  # each fork as it arrives: the process holds one

    # the commit stage, once every block is written and merged (below)
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
        check_still_stored(session, repository, proven, logger)
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

    # Keeping happens beside the writing and the commit: the set as blocks start, each fork as it arrives (a block's
    # own thread then goes on to the next block); all of it has landed before the set is cleared or the run fails.
    with ThreadPoolExecutor(KEEPERS, "icefloe-keep") as keeper:
        if resolved:  # only metadata and in-memory variables: no cluster needed
            cluster = runner()
            block_bytes = options.block_bytes or cluster.sizing.block_bytes(nbytes, cluster.threads)
            if resumption is not None and options.block_bytes is None:
                block_bytes = resumption.block_bytes or block_bytes
            jobs = plan_jobs(resolved, block_bytes)
            keeping = None if resumption is None else keeper.submit(resumption.keeping(block_bytes))
            if resumption is not None:
                reused = resumption.load_blocks([j.block for j in jobs], logger)
            done = {w.block.name for w in reused}
            todo = with_keep(
                [j for j in jobs if j.block.name not in done], None if resumption is None else resumption.kept
            )

            def merge_and_keep(written: WrittenBlock) -> None:
                merge(written)
                if resumption is not None and not (written.kept or written.saved):
                    keeper.submit(keep_block, resumption.kept, written)

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
                    cluster.write_blocks(fork, todo, options, merge_and_keep)
            except BlockWriteError as e:
                if resumption is None:
                    raise
                raise BlockWriteError(
                    f"{e}. The blocks that finished are kept beside the target: the same request run again "
                    "writes only the others"
                ) from e
            finally:
                if keeping is not None and keeping.exception() is not None:
                    logger.warning("cannot keep this run's blocks for a next attempt: %s", keeping.exception())
            written_at = time.time()

        result = orchestrator.stage("merge-and-commit", merge_and_commit)
    with ThreadPoolExecutor(1, "icefloe-clear") as cleaner:  # the kept set goes while the report is published
        clearing = None if resumption is None else cleaner.submit(resumption.kept.clear)
        orchestrator.publish(result, block_reports(merge.merged, {r.path: r.dtype.itemsize for r in resolved}))
        if clearing is not None and clearing.exception() is not None:
            # the commit stands; leftovers are listed and cleared by `icefloe kept`
            logger.warning(
                "committed; removing the kept blocks failed (%s): `icefloe kept TARGET --clear` does it",
                clearing.exception(),
            )
    return result


def check_still_stored(session: Session, repository: icechunk.Repository, since: Mark | None, logger: Logger) -> None:
    """Refuse to commit references to chunks that are gone: when garbage collection ran on the repository since
    `since` (before anything the session refers to was written), every chunk the session wrote is read back."""
    collections = collections_since(repository, since)
    if collections.clear:
        return
    changed = session.status().updated_chunks
    logger.info(
        "%s: reading back the %d chunks the commit refers to",
        collections.describe("this run's chunks were written"),
        sum(len(c) for c in changed.values()),
    )
    lost = unreadable_chunks(session.store, changed)
    if lost:
        raise UnreadableChunksError(
            f"{len(lost)} chunks this run wrote are gone ({', '.join(c.describe() for c in lost[:3])}), deleted by "
            "garbage collection while the run was writing; nothing was committed. Run the same request again (it "
            "writes what is missing), and give garbage_collect a cutoff older than the longest write"
        )
