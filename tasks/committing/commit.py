"""The one commit of a run: refused if what it refers to is gone, rebased over other commits that touched other
data, refused on a true conflict."""

from typing import Any

import icechunk
from icechunk import ConflictDetector, ConflictError, RebaseFailedError, Session

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
