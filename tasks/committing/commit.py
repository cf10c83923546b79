"""The one commit of a run: refused if what it refers to is gone, rebased over other commits that touched other
data, refused on a true conflict."""

from typing import Any

import icechunk
from icechunk import ConflictDetector, ConflictError, RebaseFailedError, Session

from tasks.committing.landing import withdrawn
from tasks.errors import CommitConflictError, UnreadableChunksError
from tasks.records import Logger
from tasks.storage.chunk_reads import unreadable_chunks
from tasks.storage.garbage_collection import Mark, collections_since


def commit_session(session: Session, message: str, metadata: dict[str, Any], rebase_tries: int) -> str:
    """Commit, rebasing with ConflictDetector up to `rebase_tries` times; return the new snapshot id."""
    try:
        solver = ConflictDetector() if rebase_tries else None
        return session.commit(message, metadata, rebase_with=solver, rebase_tries=rebase_tries)
    except RebaseFailedError as e:
        paths = sorted({c.path for c in e.conflicts})
        raise CommitConflictError(
            f"another commit on branch '{session.branch}' changed the same data ({', '.join(paths)}); "
            "nothing was committed. Re-run after it, or write to another branch"
        ) from e
    except ConflictError as e:
        raise CommitConflictError(
            f"branch '{session.branch}' kept moving after {rebase_tries} rebases; nothing was committed. "
            "Raise commit_retries or serialize the writers"
        ) from e


def check_still_stored(
    session: Session, repository: icechunk.Repository, since: Mark | None, logger: Logger
) -> Mark | None:
    """Refuse to commit references to chunks that are gone: when garbage collection ran on the repository since
    `since` (before anything the session refers to was written), every chunk the session wrote is read back. The
    log's head as it was read, for `check_landed_stored`."""
    collections = collections_since(repository, since)
    if collections.clear:
        return collections.now
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
    return collections.now


def check_landed_stored(
    repository: icechunk.Repository, branch: str, snapshot_id: str, since: Mark | None, logger: Logger
) -> None:
    """Withdraw a snapshot that landed referring to chunks a collection deleted as it was committed.

    A collection logs itself only once it has found what no snapshot refers to, which takes a while on an object
    store: one that began before `check_still_stored` could log itself after that check, then delete the run's
    chunks while the commit was landing. So the log is read once more after the commit; when a collection shows
    since the check (`since`), the chunks the snapshot wrote are read back, and a snapshot that lost some is taken
    off its branch (set back to its parent, unless another commit landed on it since) and the run fails.
    """
    collections = collections_since(repository, since)
    if collections.clear:
        return
    parent_id = repository.lookup_snapshot(snapshot_id).parent_id
    assert parent_id is not None  # a run's snapshot always has one
    changed = repository.diff(from_snapshot_id=parent_id, to_snapshot_id=snapshot_id).updated_chunks
    lost = unreadable_chunks(repository.readonly_session(snapshot_id=snapshot_id).store, changed)
    if not lost:
        logger.info("%s: every chunk the snapshot wrote reads back", collections.describe("the check before it"))
        return
    gone = f"{len(lost)} chunks snapshot {snapshot_id} refers to ({', '.join(c.describe() for c in lost[:3])})"
    try:
        repository.reset_branch(branch, parent_id, from_snapshot_id=snapshot_id)
        withdrawn(snapshot_id)
    except ConflictError:
        raise UnreadableChunksError(
            f"{gone} were deleted by garbage collection as it was committed, and other commits landed on branch "
            f"'{branch}' since: `icefloe validate` names what is missing; the same request on the snapshot before "
            "writes it again. Give garbage_collect a cutoff older than the longest write"
        ) from None
    raise UnreadableChunksError(
        f"{gone} were deleted by garbage collection as it was committed: branch '{branch}' is set back to "
        f"{parent_id}, nothing was committed. Run the same request again, and give garbage_collect a cutoff older "
        "than the longest write"
    )
