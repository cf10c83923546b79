"""How a run finds and initializes its target: the repository is looked for while the target's lock is taken, and
a new one is created only after the request passed every check in memory."""

from concurrent.futures import Future
from pathlib import Path

import icechunk
import zarr
from icechunk import Session

from tasks.running.runs import HeldTarget, initialized_target
from tasks.storage.target import find_repository


def found(repository: icechunk.Repository | None) -> HeldTarget:
    done: Future[icechunk.Repository | None] = Future()
    done.set_result(repository)
    return HeldTarget(done, None)


class Initialize:
    """Records what each call saw: whether the hook runs, and the arrays the session already held."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, list[str]]] = []

    def __call__(self, session: Session, run_hook: bool) -> str:
        group = zarr.open_group(session.store, mode="a")
        self.calls.append((run_hook, sorted(group.array_keys())))
        group.create_array("ours", shape=(4,), dtype="int8")
        return "initialized"


def test_a_new_target_is_tried_in_memory_then_created_and_its_log_is_not_read(tmp_path: Path) -> None:
    target = str(tmp_path / "new")
    initialize = Initialize()

    opened, made = initialized_target(target, "main", initialize, found(None), icechunk.RepositoryConfig())

    assert made == "initialized"
    assert initialize.calls == [(True, []), (False, [])]  # the hook ran in memory, before anything was created
    assert opened.repository is not None
    assert opened.parent_id == icechunk.Repository.open(icechunk.local_filesystem_storage(target)).lookup_branch("main")
    assert opened.mark is None  # created by this run: its whole log is after the run began


def test_a_target_another_run_created_meanwhile_is_initialized_again_with_the_hook(tmp_path: Path) -> None:
    """The repository was missing when this run looked, and another run created it and committed while this one
    waited for the lock: the request is initialized (and checked by the hook) again on what that run left."""
    target = str(tmp_path / "raced")
    other = icechunk.Repository.create(icechunk.local_filesystem_storage(target))
    session = other.writable_session("main")
    zarr.open_group(session.store, mode="a").create_array("theirs", shape=(2,), dtype="int8")
    tip = session.commit("the other run")
    initialize = Initialize()

    opened, _ = initialized_target(target, "main", initialize, found(None), icechunk.RepositoryConfig())

    assert initialize.calls == [(True, []), (True, ["theirs"])]
    assert opened.parent_id == tip
    assert opened.mark is not None  # not created here: where the log stood before this run wrote anything


def test_a_found_repository_is_initialized_once_from_its_tip(tmp_path: Path) -> None:
    target = str(tmp_path / "there")
    icechunk.Repository.create(icechunk.local_filesystem_storage(target))
    assert find_repository(str(tmp_path / "missing")) is None
    initialize = Initialize()

    opened, _ = initialized_target(
        target, "main", initialize, found(find_repository(target)), icechunk.RepositoryConfig()
    )

    assert initialize.calls == [(True, [])]
    assert opened.repository is not None
    assert opened.mark is not None
