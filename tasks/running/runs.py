"""What each kind of run does, from taking its target to its one commit, whoever orchestrates it.

The Prefect flows (`flows/`) and the `icefloe` command without a Prefect API call these with their orchestrator.
"""

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import icechunk
import xarray as xr
import zarr
from icechunk import IcechunkStore, RepositoryConfig, Session

from tasks.committing.kept_forks import list_kept
from tasks.planning.arrays import ResolvedWrite, initialize_arrays, resolve_writes
from tasks.planning.dataset import initialize_dataset
from tasks.planning.time_steps import Overlap, initialize_update, plan_time_update, target_times
from tasks.records import CommitResult, Logger
from tasks.request import ArrayWrite, DatasetWrite, PublishGate, WriteOptions
from tasks.running.cluster import cluster_class, import_cluster_class
from tasks.running.meanwhile import entered_meanwhile, started_meanwhile
from tasks.running.orchestration import BlockRunner, Orchestrator
from tasks.running.pipeline import Clock, InitializedRun, write_and_commit
from tasks.storage.callables import import_function
from tasks.storage.sources import DatasetSource, open_source_groups, source_fingerprint
from tasks.storage.target import (
    OpenedTarget,
    create_target,
    find_repository,
    in_memory_target,
    local_target_lock,
    open_target,
    repository_config,
    session_on,
)
from tasks.writing.carried_warnings import each_once


@dataclass(frozen=True)
class HeldTarget:
    """What a run finds as it takes its target: the repository there (None: none yet), looked for while the lock
    was being taken (opening one reads only its configuration: the tip is read once the target is held); and, for
    a run that keeps blocks, the branch's kept sets, listed from the moment it was held (`list_kept`)."""

    found: "Future[icechunk.Repository | None]"
    listed: "Future[list[str]] | None"


@contextmanager
def held_target(orchestrator: Orchestrator, repo: str, branch: str, options: WriteOptions) -> Iterator[HeldTarget]:
    """The orchestrator's lock on the target, and the OS lock a local repository needs whoever writes it."""
    found = started_meanwhile(lambda: find_repository(repo, storage_config(options)))
    with orchestrator.hold_target(repo, branch), local_target_lock(repo, orchestrator.logger):
        listed = started_meanwhile(lambda: list_kept(repo, branch)) if options.resume else None
        yield HeldTarget(found, listed)


def early_runner(
    orchestrator: Orchestrator, options: WriteOptions
) -> AbstractContextManager[Callable[[], BlockRunner]]:
    """The orchestrator's block runner, connecting to its cluster (or starting it) while the run initializes. A
    cluster class is imported here first, in the run's own thread: a class that cannot be imported refuses the run
    now, and a cluster package may set signal handlers as it is imported, which only the main thread may (and
    which `import_cluster_class` undoes)."""
    named = cluster_class(options)
    if named is not None:
        import_cluster_class(named.path)
    return entered_meanwhile(orchestrator.block_runner(options))


def storage_config(options: WriteOptions) -> RepositoryConfig:
    return repository_config(
        options.storage_max_tries,
        options.storage_max_backoff_seconds,
        options.manifest_split_chunks,
        options.manifest_fetch_concurrency,
    )


def initialized_target[T](
    repo: str, branch: str, initialize: Callable[[Session, bool], T], held: HeldTarget, config: RepositoryConfig
) -> tuple[OpenedTarget, T]:
    """A writable session on `branch` of `repo` (with its tip, repository and log mark), and what
    `initialize(session, run_hook)` made of it.

    A repository that does not exist yet is created only once the request has passed every check: the request is
    first initialized in an empty in-memory repository (the user's validation hook runs there), so a refused request
    leaves no empty repository behind. Where another run created the repository meanwhile, the request is
    initialized (and the hook run) again on what that run left.
    """
    found = held.found.result()
    if found is not None:
        opened = session_on(found, branch)
        return opened, initialize(opened.session, True)
    with each_once():
        initialize(in_memory_target(branch).session, True)
        opened, created = create_target(repo, branch, config)
        return opened, initialize(opened.session, not created)


def check_gate(gate: PublishGate | None) -> None:
    """A publish check that cannot be imported refuses the run before anything is written."""
    if gate is not None and gate.check is not None:
        import_function(gate.check, "publish check")


def run_store_array(
    orchestrator: Orchestrator,
    repo: str,
    writes: list[ArrayWrite],
    branch: str,
    message: str | None,
    options: WriteOptions,
    gate: PublishGate | None = None,
) -> CommitResult:
    started_at = time.time()
    check_gate(gate)

    def initialize(session: Session, run_hook: bool) -> list[ResolvedWrite]:
        group = zarr.open_group(session.store, mode="a")
        resolved = resolve_writes(group, writes)
        initialize_arrays(group, resolved)
        return resolved

    with held_target(orchestrator, repo, branch, options) as held, early_runner(orchestrator, options) as runner:
        opened, resolved = orchestrator.stage(
            "initialize", lambda _: initialized_target(repo, branch, initialize, held, storage_config(options))
        )
        default_message = f"icefloe store_array: {', '.join(sorted({r.path for r in resolved}))}"
        run = InitializedRun(repo, opened, resolved, listed=held.listed, gate=gate)
        return write_and_commit(orchestrator, runner, run, options, message or default_message, Clock(started_at))


@dataclass
class PreparedWrite:
    """A Dataset initialized in a writable session (never committed here) and its lazy variables, checked."""

    session: Session
    parent_id: str | None
    resolved: list[ResolvedWrite]


def prepare_write(repo: str, source: DatasetSource, write: DatasetWrite, *, create: bool = True) -> PreparedWrite:
    """Open the source (a bad one fails before the target is even opened), then the target, then initialize."""
    groups = open_source_groups(source)
    opened = open_target(repo, write.branch, create=create)
    return PreparedWrite(opened.session, opened.parent_id, initialize_groups(opened.session.store, groups, write))


def initialize_groups(
    store: IcechunkStore, groups: dict[str, xr.Dataset], write: DatasetWrite, *, run_hook: bool = True
) -> list[ResolvedWrite]:
    """`initialize_dataset` for each of the source's Datasets, into its group under the write's (as one
    `to_icechunk` per group into one session would)."""
    resolved: list[ResolvedWrite] = []
    for name, dataset in groups.items():
        each = write.model_copy(update={"group": group_path(write.group, name)}) if name else write
        resolved += initialize_dataset(store, dataset, each, run_hook=run_hook)
    return resolved


def group_path(group: str | None, name: str) -> str | None:
    """The group `name` under `group` (`name` "": `group` itself)."""
    return "/".join(part for part in ((group or "").strip("/"), name) if part) or group


def run_write_dataset(
    orchestrator: Orchestrator,
    repo: str,
    source: DatasetSource,
    write: DatasetWrite = DatasetWrite(),  # noqa: B008 - frozen model, safe as a default
    message: str | None = None,
    options: WriteOptions = WriteOptions(),  # noqa: B008 - frozen model, safe as a default
    gate: PublishGate | None = None,
) -> CommitResult:
    """`write_dataset`'s run, for any orchestrator; through a staging branch and its checks with a `gate`."""
    started_at = time.time()
    check_gate(gate)
    groups = open_source_groups(source)  # a bad source fails before the target is even opened
    source_state = source_fingerprint(source) if options.resume else ""
    if write.validation_hook is not None:
        import_function(write.validation_hook, "validation hook")  # a hook that cannot be imported refuses the run now

    def initialize(session: Session, run_hook: bool) -> list[ResolvedWrite]:
        return initialize_groups(session.store, groups, write, run_hook=run_hook)

    branch = write.branch
    with held_target(orchestrator, repo, branch, options) as held, early_runner(orchestrator, options) as runner:
        opened, resolved = orchestrator.stage(
            "initialize", lambda _: initialized_target(repo, branch, initialize, held, storage_config(options))
        )
        written = ", ".join(sorted(group_path(write.group, name) or "/" for name in groups))
        default_message = f"icefloe write_dataset: {written} (mode {write.mode or 'default'})"
        run = InitializedRun(repo, opened, resolved, source_state, held.listed, gate)
        return write_and_commit(orchestrator, runner, run, options, message or default_message, Clock(started_at))


def run_time_update(
    orchestrator: Orchestrator,
    repo: str,
    dataset: xr.Dataset,
    *,
    group: str | None,
    dim: str,
    overlap: Overlap,
    encoding: dict[str, dict[str, Any]] | None,
    branch: str,
    message: str,
    options: WriteOptions,
    source_state: str = "",
    gate: PublishGate | None = None,
) -> CommitResult | None:
    """Write what `plan_time_update` selects, in one commit; None (and no commit) when there is nothing to write."""
    started_at = time.time()
    check_gate(gate)

    def initialize(logger: Logger) -> tuple[OpenedTarget, list[ResolvedWrite]] | None:
        found = held.found.result()
        opened = create_target(repo, branch, storage_config(options))[0] if found is None else session_on(found, branch)
        existing = target_times(opened.session.store, group, dim)
        update = plan_time_update(dataset, existing, dim, overlap)
        if update.empty:
            end = existing[-1] if existing is not None and len(existing) else "nothing"
            logger.info("nothing new: the target ends at %s; %d source steps skipped", end, update.skipped_steps)
            return None
        logger.info(
            "%d new steps, %d rewritten, %d skipped (already held)",
            update.new_steps,
            update.rewritten_steps,
            update.skipped_steps,
        )
        return opened, initialize_update(opened.session.store, update, existing is None, group, dim, encoding)

    # decide and write from the same tip: no other run appends it too
    with held_target(orchestrator, repo, branch, options) as held:
        initialized = orchestrator.stage("initialize", initialize)
        if initialized is None:
            return None
        opened, resolved = initialized
        run = InitializedRun(repo, opened, resolved, source_state, held.listed, gate)
        with early_runner(orchestrator, options) as runner:  # after the decision: most updates find nothing new
            return write_and_commit(orchestrator, runner, run, options, message, Clock(started_at))
