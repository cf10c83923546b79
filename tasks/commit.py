"""The one commit of a run: rebased over other commits that touched other data, refused on a true conflict."""

from typing import Any

from icechunk import ConflictDetector, ConflictError, RebaseFailedError, Session
from pydantic import BaseModel, ConfigDict, Field

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


class ArrayReport(BaseModel):
    """An array the run wrote: created by it or updated, and how much of it."""

    model_config = ConfigDict(frozen=True)

    path: str
    created: bool
    chunks: int
    bytes: int


class CommitResult(BaseModel):
    """What a run did: the snapshot it made on the branch, how much it wrote, and when each stage ended.

    Times are `time.time()` seconds: the run started, its arrays were initialized, its first block was submitted,
    its last block came back, its commit landed. A command adds its own process start to tell the user's whole wait
    apart.
    """

    model_config = ConfigDict(frozen=True)

    target: str
    snapshot_id: str
    parent_id: str
    branch: str
    arrays: list[ArrayReport]
    chunks: int
    blocks: int
    reused_blocks: int = Field(0, description="Blocks kept by an earlier attempt of the same request, not rewritten")
    retried_blocks: int = Field(0, description="Blocks written after one or more failed attempts")
    resubmitted_blocks: int = Field(0, description="Blocks submitted again after their worker was lost")
    bytes: int
    started_at: float
    initialized_at: float
    writing_at: float
    written_at: float
    committed_at: float

    @property
    def seconds(self) -> float:
        """The run, from its start to its commit."""
        return self.committed_at - self.started_at

    @property
    def write_seconds(self) -> float:
        """The blocks, from the first submitted to the last written."""
        return self.written_at - self.writing_at

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def write_mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.write_seconds if self.write_seconds > 0 else 0.0
