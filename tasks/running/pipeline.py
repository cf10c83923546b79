"""The data path every run shares once its arrays are initialized in the writable session.

adopt what an earlier attempt kept -> plan blocks -> fork -> write blocks on the orchestrator's cluster, each
block's fork checked, merged and kept as it arrives -> ONE commit -> report, while the kept set is cleared. The
commit is a stage of its own (`merge-and-commit`, a task run in Prefect), run here, where the writable session
lives. Each step is a function of a few named values: the initialized run, the run as it writes (`WritingRun`),
what was written and the clock.
"""

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import icechunk
from icechunk import Session

from tasks.committing.commit import check_still_stored, commit_session
from tasks.committing.kept_forks import KeptForks
from tasks.committing.merge import ForkMerger
from tasks.committing.report import array_reports, block_reports
from tasks.committing.resumption import Resumption, resume
from tasks.committing.run_key import run_key
from tasks.errors import BlockWriteError, notes_started_writing
from tasks.planning.arrays import ResolvedWrite, region_bytes
from tasks.planning.jobs import block_size, plan_jobs
from tasks.records import BlockJob, CommitResult, Logger, WrittenBlock, format_region
from tasks.request import WriteOptions
from tasks.running.orchestration import BlockRunner, Orchestrator
from tasks.storage.garbage_collection import Mark
from tasks.storage.target import OpenedTarget, canonical_target
from tasks.writing.block import keep_block, with_keep

KEEPERS = 4
"""Threads keeping forks: each waits on the object store's latency."""


@dataclass(frozen=True)
class InitializedRun:
    """What the initialize stage hands on: `target`'s writable session with the arrays initialized (never committed
    there; with its tip, repository and log mark), the checked writes of the blocks, what `source_fingerprint`
    said of the source, and the branch's kept sets as `list_kept` lists them (None: the run keeps no blocks)."""

    target: str
    opened: OpenedTarget
    resolved: list[ResolvedWrite]
    source_state: str = ""
    listed: "Future[list[str]] | None" = None

    @property
    def nbytes(self) -> int:
        return sum(region_bytes(r.region, r.dtype.itemsize) for r in self.resolved)


@dataclass
class Clock:
    """When the run began, its arrays were initialized, its first block was submitted and its last came back
    (`time.time()`); the commit's result times start-up, writing and the commit apart with them."""

    started_at: float
    initialized_at: float = 0.0
    writing_at: float = 0.0
    written_at: float = 0.0


@dataclass(frozen=True)
class WritingRun:
    """The run from its kept set on: the session blocks are forked from and merged into (the kept one, when an
    earlier attempt's set was adopted), the point of the log as of which every object it refers to is known to exist,
    and the kept set, when the run keeps blocks."""

    run: InitializedRun
    repository: icechunk.Repository
    session: Session
    proven: Mark | None
    resumption: Resumption | None
    merge: ForkMerger


@dataclass
class Written:
    """What the writing leaves for the commit: every block planned, and those an earlier attempt had kept."""

    jobs: list[BlockJob] = field(default_factory=list)
    reused: list[WrittenBlock] = field(default_factory=list)


@notes_started_writing
def write_and_commit(
    orchestrator: Orchestrator,
    runner: Callable[[], BlockRunner],
    run: InitializedRun,
    options: WriteOptions,
    message: str,
    clock: Clock,
) -> CommitResult:
    """Write every resolved region block by block through forks of the initialized session, then commit once.

    `runner` gives the orchestrator's block runner, entered meanwhile (`entered_meanwhile`): it is waited for only
    once there are blocks to plan. Finished blocks are kept beside the target until the commit: an earlier attempt
    of the same request (same tip, same initialized arrays, same source) left those it finished, and only the others
    are written. The request was accepted: whatever fails from here on is a failed run, not a refused request.
    """
    clock.initialized_at = clock.writing_at = clock.written_at = time.time()
    writing = adopt_kept_set(run, options, orchestrator.logger)
    written = Written()
    # Keeping happens beside the writing and the commit: the set as blocks start, each fork as it arrives (a block's
    # own thread then goes on to the next block); all of it has landed before the set is cleared or the run fails.
    with ThreadPoolExecutor(KEEPERS, "icefloe-keep") as keeper:
        if run.resolved:  # only metadata and in-memory variables: no cluster needed
            written = write_blocks(writing, runner(), options, keeper, clock, orchestrator.logger)
        result = orchestrator.stage(
            "merge-and-commit",
            lambda logger: commit_merged(writing, written, orchestrator, message, options, clock, logger),
        )
    publish_and_clear(orchestrator, result, writing, written)
    return result


def adopt_kept_set(run: InitializedRun, options: WriteOptions, logger: Logger) -> WritingRun:
    """The run's kept set: an earlier attempt's, when it can be proven whole, else a new one (`resume`)."""
    opened = run.opened
    # a run writes to a real repository
    assert opened.repository is not None
    assert opened.parent_id is not None
    session, proven, resumption = opened.session, opened.mark, None
    if run.resolved and options.resume:
        kept = KeptForks(run.target, run_key(session, run.resolved, opened.parent_id, run.source_state))
        resumption = resume(kept, session, opened.repository, opened.mark, logger, run.listed)
        session, proven = resumption.session, resumption.proven
    merge = ForkMerger(session, {r.path: r.unit for r in run.resolved})  # each fork as it arrives: one at a time
    return WritingRun(run, opened.repository, session, proven, resumption, merge)


def write_blocks(
    writing: WritingRun,
    cluster: BlockRunner,
    options: WriteOptions,
    keeper: ThreadPoolExecutor,
    clock: Clock,
    logger: Logger,
) -> Written:
    """Plan the blocks, reuse those kept, write the others from one fork of the session, each merged (and kept, in
    `keeper`) as it arrives."""
    resumption = writing.resumption
    block_bytes = block_size(writing.run.resolved, options.block_bytes, cluster.sizing, cluster.threads)
    if resumption is not None and options.block_bytes is None:
        block_bytes = resumption.block_bytes or block_bytes  # the kept blocks' own plan
    jobs = plan_jobs(writing.run.resolved, block_bytes)
    keeping = None if resumption is None else keeper.submit(resumption.keeping(block_bytes))
    reused = [] if resumption is None else resumption.load_blocks([j.block for j in jobs], logger)
    done = {w.block.name for w in reused}
    todo = with_keep([j for j in jobs if j.block.name not in done], None if resumption is None else resumption.kept)

    def merge_and_keep(written: WrittenBlock) -> None:
        writing.merge(written)
        if resumption is not None and not (written.kept or written.saved):
            keeper.submit(keep_block, resumption.kept, written)

    logger.info(
        "writing %d arrays in %d blocks (branch %s)%s",
        len(writing.run.resolved),
        len(todo),
        writing.session.branch,
        f"; {len(reused)} blocks kept by an earlier attempt are reused" if reused else "",
    )
    clock.writing_at = time.time()
    try:
        fork = writing.session.fork() if todo else None  # from the initialized session, before any merge
        for block in reused:
            writing.merge(block)
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
    clock.written_at = time.time()
    return Written(jobs, reused)


def commit_merged(
    writing: WritingRun,
    written: Written,
    orchestrator: Orchestrator,
    message: str,
    options: WriteOptions,
    clock: Clock,
    logger: Logger,
) -> CommitResult:
    """The commit stage, once every block is written and merged: what the snapshot records, a check that what it
    refers to is still stored, the one commit, and what it did."""
    run, session, merged = writing.run, writing.session, writing.merge.merged
    created = {path.lstrip("/") for path in session.status().new_arrays}
    metadata = {
        "icefloe": {
            **orchestrator.run_metadata(),
            "blocks": len(written.jobs),
            "reused_blocks": len(written.reused),
            "bytes": run.nbytes,
            # what `icefloe validate` checks the snapshot against
            "written": {r.path: format_region(r.region) for r in run.resolved},
            "arrays": {r.path: {"dtype": str(r.dtype), "shape": list(r.shape)} for r in run.resolved},
        }
    }
    branch = str(session.branch)  # a session forgets its branch once it has committed
    check_still_stored(session, writing.repository, writing.proven, logger)
    snapshot_id = commit_session(session, message, metadata, options.commit_retries)
    assert run.opened.parent_id is not None
    result = CommitResult(
        target=canonical_target(run.target),
        snapshot_id=snapshot_id,
        parent_id=run.opened.parent_id,
        branch=branch,
        arrays=array_reports(run.resolved, created, merged),
        chunks=sum(n for m in merged for n in m.chunks.values()),
        blocks=len(written.jobs),
        reused_blocks=len(written.reused),
        retried_blocks=sum(m.attempt > 1 for m in merged),
        resubmitted_blocks=sum(m.resubmits > 0 for m in merged),
        bytes=run.nbytes,
        started_at=clock.started_at,
        initialized_at=clock.initialized_at,
        writing_at=clock.writing_at,
        written_at=clock.written_at,
        committed_at=time.time(),
    )
    logger.info(
        "committed snapshot %s on %s (parent %s): %d blocks, %.1f MB written in %.1f s (%.0f MB/s), %.1f s in all",
        result.snapshot_id,
        result.branch,
        result.parent_id,
        result.blocks,
        result.bytes / 1e6,
        result.write_seconds,
        result.write_mb_per_s,
        result.seconds,
    )
    return result


def publish_and_clear(orchestrator: Orchestrator, result: CommitResult, writing: WritingRun, written: Written) -> None:
    """The report goes out while the kept set is removed (the commit has landed: nothing will adopt it)."""
    itemsizes = {r.path: r.dtype.itemsize for r in writing.run.resolved}
    with ThreadPoolExecutor(1, "icefloe-clear") as cleaner:
        blocks = [job.block for job in written.jobs]
        clearing = None if writing.resumption is None else cleaner.submit(writing.resumption.clear, blocks)
        orchestrator.publish(result, block_reports(writing.merge.merged, itemsizes))
        if clearing is not None and clearing.exception() is not None:
            # the commit stands; leftovers are listed and cleared by `icefloe kept`
            orchestrator.logger.warning(
                "committed; removing the kept blocks failed (%s): `icefloe kept TARGET --clear` does it",
                clearing.exception(),
            )
