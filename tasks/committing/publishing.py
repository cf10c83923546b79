"""Publishing through a staging branch: readers of a branch never see a snapshot that failed its checks.

A publishing run commits to a staging branch made from the tip it started from (`icefloe.staged.<branch>.<run
key>`), checks that snapshot (`tasks/committing/publish_checks.py`), and only then moves its branch to it with a
check-and-set on that tip (`Repository.reset_branch(..., from_snapshot_id=tip)`): the branch's history is the same
as a direct commit's, one new snapshot whose parent is the old tip. When a check fails the branch does not move and
the staged branch stays, to be inspected and published (`icefloe publish --staged`) or cleared (`icefloe staged
--clear`). When another writer moved the branch meanwhile, the run's changes are rebased over its tip (Icechunk's
conflict detection) and checked again. The staging branch is named by the run's key: the same request run again
after a crash between the staged commit and the publish finds it and publishes it without writing a block.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import icechunk
from icechunk import ConflictDetector, ConflictError, RebaseFailedError, Session

from tasks.committing.landing import landed, moving_branch
from tasks.committing.publish_checks import publish_checks
from tasks.errors import CommitConflictError, InvalidRequestError
from tasks.internals.icechunk import session_bytes, session_from_bytes
from tasks.records import Check, Logger, failures
from tasks.request import PublishGate

STAGED = "icefloe.staged."
"""Every staging branch's name starts so; then the branch it is for, a dot and the run's key."""


def staged_branch(branch: str, key: str) -> str:
    return f"{STAGED}{branch}.{key[:16]}"


@dataclass(frozen=True)
class Gated:
    """What the gate did: the snapshot checked (on `staged`), its checks, whether the branch moved to it, and the
    tip it was checked against (its parent)."""

    snapshot_id: str
    parent_id: str
    staged: str
    checks: list[Check]
    published: bool


type Checks = Callable[[str, str], list[Check]]
"""The checks of a staged snapshot (its id) against the tip it is to replace (its id)."""


def stage(repo: icechunk.Repository, session: Session, name: str, message: str, metadata: dict[str, Any]) -> str:
    """Commit `session` to the staging branch `name` (made or moved there); the staged snapshot's id."""
    snapshot_id = session.flush(message, metadata=metadata)
    set_branch(repo, name, snapshot_id)
    return snapshot_id


def set_branch(repo: icechunk.Repository, name: str, snapshot_id: str) -> None:
    if name in repo.list_branches():
        repo.reset_branch(name, snapshot_id)
    else:
        repo.create_branch(name, snapshot_id)


def check_and_publish(
    repo: icechunk.Repository,
    branch: str,
    staged: str,
    snapshot_id: str,
    parent_id: str,
    checks: Checks,
    logger: Logger,
    rebase: "Rebase | None" = None,
    force: bool = False,
) -> Gated:
    """Check the staged snapshot; when every check passes (or `force`), move `branch` from `parent_id` to it. Where
    the branch moved meanwhile, `rebase` (when there is one) makes the staged snapshot again over its new tip, to be
    checked again; without one, or once its tries are spent, the run fails with the staged branch kept."""
    rebases = 0
    while True:
        started = time.perf_counter()
        found = checks(snapshot_id, parent_id)
        failed = sum(c.outcome == "failed" for c in found)
        logger.info(
            "checked snapshot %s in %.2f s: %d checks passed, %d failed",
            snapshot_id,
            time.perf_counter() - started,
            len(found) - failed,
            failed,
        )
        if failed:
            logger.warning("snapshot %s (on %s) failed its checks: %s", snapshot_id, staged, failures(found))
            if not force:
                return Gated(snapshot_id, parent_id, staged, found, published=False)
        try:
            with moving_branch():
                repo.reset_branch(branch, snapshot_id, from_snapshot_id=parent_id)
                landed(snapshot_id)
        except ConflictError:
            tip = repo.lookup_branch(branch)
            if rebase is None or rebases >= rebase.tries:
                raise CommitConflictError(
                    f"branch '{branch}' moved to {tip} since snapshot {snapshot_id} was staged over {parent_id}; it "
                    f"was not published and is kept on the staging branch {staged}. Run the same request again"
                ) from None
            rebases += 1
            logger.info("branch %s moved to %s meanwhile: rebasing the staged changes (%d)", branch, tip, rebases)
            snapshot_id, parent_id = rebase.again(repo, staged)
            continue
        repo.delete_branch(staged)  # the branch holds it now
        return Gated(snapshot_id, parent_id, staged, found, published=True)


@dataclass
class Rebase:
    """A copy of the run's writable session as it was staged, to replay its changes over a branch that moved."""

    spare: Session
    message: str
    metadata: dict[str, Any]
    tries: int

    @classmethod
    def keep(cls, session: Session, message: str, metadata: dict[str, Any], tries: int) -> "Rebase":
        return cls(session_from_bytes(session_bytes(session)), message, metadata, tries)

    def again(self, repo: icechunk.Repository, staged: str) -> tuple[str, str]:
        """The changes rebased over the branch's tip and staged again: the new staged snapshot, and that tip."""
        session = self.spare  # staging consumes it: a copy of it rebased is kept for the next time
        try:
            session.rebase(ConflictDetector())
        except RebaseFailedError as e:
            paths = sorted({c.path for c in e.conflicts})
            raise CommitConflictError(
                f"another commit on branch '{session.branch}' changed the same data ({', '.join(paths)}); nothing "
                f"was published. The run's snapshot is kept on the staging branch {staged}"
            ) from e
        self.spare = session_from_bytes(session_bytes(session))
        parent_id = session.snapshot_id
        return stage(repo, session, staged, self.message, self.metadata), parent_id


@dataclass(frozen=True)
class StagedSnapshot:
    """A staging branch and what it holds."""

    name: str
    branch: str
    snapshot_id: str
    parent_id: str
    message: str
    written_at: datetime
    metadata: dict[str, Any]


def _read_staged(repo: icechunk.Repository, name: str) -> StagedSnapshot:
    snapshot = repo.lookup_snapshot(repo.lookup_branch(name))
    icefloe = snapshot.metadata.get("icefloe", {})
    branch = icefloe.get("staged_for") or name.removeprefix(STAGED).rsplit(".", 1)[0]
    return StagedSnapshot(
        name, branch, snapshot.id, snapshot.parent_id or "", snapshot.message, snapshot.written_at, snapshot.metadata
    )


def staged_snapshots(repo: icechunk.Repository) -> list[StagedSnapshot]:
    """The repository's staging branches, oldest first."""
    found = [_read_staged(repo, name) for name in repo.list_branches() if name.startswith(STAGED)]
    return sorted(found, key=lambda s: s.written_at)


def staged_snapshot(repo: icechunk.Repository, name: str, target: str) -> StagedSnapshot:
    if not name.startswith(STAGED) or name not in repo.list_branches():
        raise InvalidRequestError(f"no staging branch {name!r} in {target}; `icefloe staged {target}` lists them")
    return _read_staged(repo, name)


def stage_and_publish(
    repo: icechunk.Repository,
    session: Session,
    name: str,
    message: str,
    metadata: dict[str, Any],
    checks: Checks,
    rebase_tries: int,
    logger: Logger,
) -> Gated:
    """Commit `session` to the staging branch `name`, check it, and move the session's branch to it."""
    branch, parent_id = str(session.branch), session.snapshot_id
    rebase = Rebase.keep(session, message, metadata, rebase_tries) if rebase_tries else None
    snapshot_id = stage(repo, session, name, message, metadata)
    logger.info("staged snapshot %s on %s; checking it before %s moves", snapshot_id, name, branch)
    return check_and_publish(repo, branch, name, snapshot_id, parent_id, checks, logger, rebase)


def found_staged(repo: icechunk.Repository, name: str, parent_id: str) -> str | None:
    """The snapshot an earlier attempt of the run staged on `name` over the same tip, if there is one."""
    if name not in repo.list_branches():
        return None
    staged = _read_staged(repo, name)
    return staged.snapshot_id if staged.parent_id == parent_id else None


def publish_staged(repo: icechunk.Repository, name: str, target: str, force: bool, logger: Logger) -> Gated:
    """`icefloe publish --staged`: check a kept staged snapshot again, with the checks its run asked for, and move
    its branch to it from the tip it was staged over (`force`: whatever the checks found)."""
    staged = staged_snapshot(repo, name, target)
    gate = PublishGate.model_validate(staged.metadata.get("icefloe", {}).get("gate", {}))
    return check_and_publish(
        repo,
        staged.branch,
        name,
        staged.snapshot_id,
        staged.parent_id,
        lambda snapshot, parent: publish_checks(repo, snapshot, parent, gate),
        logger,
        force=force,
    )
