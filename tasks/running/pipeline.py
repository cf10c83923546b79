"""The data path every run shares once its arrays are initialized in the writable session.

adopt what an earlier attempt kept -> plan blocks -> fork -> write blocks on the orchestrator's cluster, each
block's fork checked, merged and kept as it arrives -> ONE commit -> report, while the kept set is cleared. The
commit is a stage of its own (`merge-and-commit`, a task run in Prefect), run here, where the writable session
lives. Each step is a function of a few named values: the initialized run, the run as it writes (`WritingRun`),
what was written and the clock.
"""

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import icechunk
import numpy as np
import zarr
from icechunk import Session

from tasks.committing.commit import check_landed_stored, check_still_stored, commit_session
from tasks.committing.kept_forks import KeptForks
from tasks.committing.landing import landed, moving_branch
from tasks.committing.merge import ForkMerger
from tasks.committing.publish_checks import publish_checks
from tasks.committing.publishing import Checks, Gated, check_and_publish, found_staged, stage_and_publish, staged_branch
from tasks.committing.report import array_reports, block_reports
from tasks.committing.resumption import Resumption, resume
from tasks.committing.run_key import RunKey, run_key
from tasks.errors import BlockWriteError, PublishRejectedError, notes_started_writing
from tasks.planning.arrays import ResolvedWrite, region_bytes
from tasks.planning.jobs import block_size, plan_jobs
from tasks.records import BlockJob, CommitResult, Logger, MergedBlock, Warned, WrittenBlock, failures, format_region
from tasks.request import PublishGate, WriteOptions
from tasks.running.orchestration import BlockRunner, Orchestrator
from tasks.storage.garbage_collection import Mark
from tasks.storage.target import OpenedTarget, canonical_target
from tasks.writing.block import keep_block, with_keep
from tasks.writing.carried_warnings import warn_again

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
    gate: PublishGate | None = None

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
    key: RunKey | None = None


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
    staged = staged_earlier(writing, options)
    if staged is not None:  # an earlier attempt staged it and stopped before publishing: no block to write
        result = orchestrator.stage(
            "merge-and-commit", lambda logger: publish_staged_earlier(writing, staged, clock, logger)
        )
        orchestrator.report(result, [])
        return rejected_or(result)
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
    report_and_clear(orchestrator, result, writing, written)
    return rejected_or(result)


def rejected_or(result: CommitResult) -> CommitResult:
    """The result of a run whose snapshot reached its branch; a failed run when its checks kept it off."""
    if result.published is False:
        raise PublishRejectedError(
            f"snapshot {result.snapshot_id} failed its checks ({failures(result.checks)}); branch '{result.branch}' "
            f"was not moved. The snapshot is kept on the staging branch {result.staged_branch}: `icefloe publish "
            f"{result.target} --staged {result.staged_branch} --force` publishes it, `icefloe staged "
            f"{result.target} --clear` removes it"
        )
    return result


def adopt_kept_set(run: InitializedRun, options: WriteOptions, logger: Logger) -> WritingRun:
    """The run's kept set: an earlier attempt's, when it can be proven whole, else a new one (`resume`)."""
    opened = run.opened
    # a run writes to a real repository
    assert opened.repository is not None
    assert opened.parent_id is not None
    session, proven, resumption, key = opened.session, opened.mark, None, None
    if (run.resolved and options.resume) or run.gate is not None:
        key = run_key(session, run.resolved, opened.parent_id, run.source_state)
    if run.resolved and options.resume:
        assert key is not None
        kept = KeptForks(run.target, key)
        resumption = resume(kept, session, opened.repository, opened.mark, logger, run.listed)
        session, proven = resumption.session, resumption.proven
    merge = ForkMerger(session, {r.path: r.unit for r in run.resolved})  # each fork as it arrives: one at a time
    return WritingRun(run, opened.repository, session, proven, resumption, merge, key)


def staged_earlier(writing: WritingRun, options: WriteOptions) -> str | None:
    """The snapshot an earlier attempt of this publishing run staged over the same tip, if it stopped there."""
    if writing.run.gate is None or writing.key is None or not options.resume:
        return None
    name = staged_branch(writing.key.branch, writing.key.digest)
    return found_staged(writing.repository, name, writing.key.parent_id)


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
    if writing.run.gate is not None:
        axes = time_axes(writing.session, writing.run.resolved, writing.run.gate.time_dim)
        jobs = [dataclasses.replace(j, time_axes=tuple(axes[a] for a in j.block.arrays)) for j in jobs]
    keeping = None if resumption is None else keeper.submit(resumption.keeping(block_bytes))
    reused = [] if resumption is None else resumption.load_blocks([j.block for j in jobs], logger)
    done = {w.block.name for w in reused}
    todo = with_keep([j for j in jobs if j.block.name not in done], None if resumption is None else resumption.kept)

    warned: set[Warned] = set()

    def merge_and_keep(written: WrittenBlock) -> None:
        writing.merge(written)
        warn_again(written.warned, warned)
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


def time_axes(session: Session, resolved: list[ResolvedWrite], time_dim: str) -> dict[str, int | None]:
    """Per written array, the axis of `time_dim` when it is a floating-point array that has one: where a publishing
    run's blocks note the steps that hold values."""
    axes: dict[str, int | None] = {}
    for r in resolved:
        metadata = zarr.open_array(session.store, path=r.path, mode="r").metadata
        names = getattr(metadata, "dimension_names", None) or ()  # Zarr v3's; a v2 array has none
        floating = np.issubdtype(r.dtype, np.floating)
        axes[r.path] = names.index(time_dim) if floating and time_dim in names else None
    return axes


def valued_steps(merged: list[MergedBlock]) -> dict[str, frozenset[int]]:
    """The steps holding values that the blocks noted, per array every one of whose blocks noted them."""
    steps: dict[str, set[int]] = {}
    unnoted: set[str] = set()
    for block in merged:
        for path in block.block.arrays:
            if block.valued_steps is None or path not in block.valued_steps:
                unnoted.add(path)
            else:
                steps.setdefault(path, set()).update(block.valued_steps[path])
    return {path: frozenset(s) for path, s in steps.items() if path not in unnoted}


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
    checked = check_still_stored(session, writing.repository, writing.proven, logger)
    gated = None
    if run.gate is None:
        with moving_branch():
            snapshot_id = commit_session(session, message, metadata, options.commit_retries)
            landed(snapshot_id)
        parent_id = run.opened.parent_id
    else:
        gated = stage_checked(writing, message, metadata, options, logger)
        snapshot_id, parent_id = gated.snapshot_id, gated.parent_id
    assert parent_id is not None
    if gated is None or gated.published:
        check_landed_stored(writing.repository, branch, snapshot_id, checked, logger)
    result = CommitResult(
        target=canonical_target(run.target),
        snapshot_id=snapshot_id,
        parent_id=parent_id,
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
        **gated_fields(gated),
    )
    did = {None: "committed", True: "published", False: "staged (not published)"}[result.published]
    logger.info(
        "%s snapshot %s on %s (parent %s): %d blocks, %.1f MB written in %.1f s (%.0f MB/s), %.1f s in all",
        did,
        result.snapshot_id,
        result.staged_branch if result.published is False else result.branch,
        result.parent_id,
        result.blocks,
        result.bytes / 1e6,
        result.write_seconds,
        result.write_mb_per_s,
        result.seconds,
    )
    return result


@dataclass(frozen=True)
class Staging:
    """Where a publishing run stages its snapshot, and the checks it passes there."""

    gate: PublishGate
    key: RunKey
    name: str
    checks: Checks

    @classmethod
    def of(cls, writing: WritingRun) -> "Staging":
        gate, key, repository = writing.run.gate, writing.key, writing.repository
        assert gate is not None, "only a publishing run stages"
        assert key is not None, "a publishing run has its key"
        noted = valued_steps(writing.merge.merged)
        return cls(
            gate,
            key,
            staged_branch(key.branch, key.digest),
            lambda snapshot, parent: publish_checks(repository, snapshot, parent, gate, noted),
        )


def stage_checked(
    writing: WritingRun, message: str, metadata: dict[str, Any], options: WriteOptions, logger: Logger
) -> Gated:
    """A publishing run's commit: to its staging branch, checked, then its branch moved to it."""
    staging = Staging.of(writing)
    # what `icefloe publish` checks the staged snapshot with again
    metadata["icefloe"] |= {"staged_for": staging.key.branch, "gate": staging.gate.model_dump()}
    return stage_and_publish(
        writing.repository,
        writing.session,
        staging.name,
        message,
        metadata,
        staging.checks,
        options.commit_retries,
        logger,
    )


def gated_fields(gated: Gated | None) -> dict[str, Any]:
    if gated is None:
        return {}
    return {"staged_branch": gated.staged, "checks": gated.checks, "published": gated.published}


def publish_staged_earlier(writing: WritingRun, snapshot_id: str, clock: Clock, logger: Logger) -> CommitResult:
    """Check and publish what an earlier attempt of the run staged (it stopped before publishing), writing nothing."""
    staging, repository = Staging.of(writing), writing.repository
    logger.info("an earlier attempt staged snapshot %s on %s: checking it, no block written", snapshot_id, staging.name)
    gated = check_and_publish(
        repository, staging.key.branch, staging.name, snapshot_id, staging.key.parent_id, staging.checks, logger
    )
    if writing.resumption is not None:
        writing.resumption.clear([])  # what it kept before it staged
    recorded = repository.lookup_snapshot(snapshot_id).metadata.get("icefloe", {})
    now = time.time()
    return CommitResult(
        target=canonical_target(writing.run.target),
        snapshot_id=gated.snapshot_id,
        parent_id=gated.parent_id,
        branch=staging.key.branch,
        arrays=[],
        chunks=0,
        blocks=recorded.get("blocks", 0),
        reused_blocks=recorded.get("blocks", 0),
        bytes=recorded.get("bytes", 0),
        started_at=clock.started_at,
        initialized_at=clock.initialized_at,
        writing_at=now,
        written_at=now,
        committed_at=now,
        **gated_fields(gated),
    )


def report_and_clear(orchestrator: Orchestrator, result: CommitResult, writing: WritingRun, written: Written) -> None:
    """The report goes out while the kept set is removed (the commit has landed: nothing will adopt it)."""
    itemsizes = {r.path: r.dtype.itemsize for r in writing.run.resolved}
    with ThreadPoolExecutor(1, "icefloe-clear") as cleaner:
        blocks = [job.block for job in written.jobs]
        clearing = None if writing.resumption is None else cleaner.submit(writing.resumption.clear, blocks)
        orchestrator.report(result, block_reports(writing.merge.merged, itemsizes))
        if clearing is not None and clearing.exception() is not None:
            # the commit stands; leftovers are listed and cleared by `icefloe kept`
            orchestrator.logger.warning(
                "committed; removing the kept blocks failed (%s): `icefloe kept TARGET --clear` does it",
                clearing.exception(),
            )
