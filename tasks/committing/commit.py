"""The one commit of a run: rebased over other commits that touched other data, refused on a true conflict."""

from typing import Any

from icechunk import ConflictDetector, ConflictError, RebaseFailedError, Session

from tasks.errors import CommitConflictError


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
