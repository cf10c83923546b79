"""Whether Icechunk's garbage collection ran on a repository since a given moment.

`Repository.garbage_collect(cutoff)` deletes every object older than the cutoff that no snapshot references: the
chunks an uncommitted session or an unmerged fork wrote, and a fork's own snapshot. A run that commits what it wrote
hours ago (a kept set adopted after a failure, or a long run) must know whether that happened in between.

A repository of format 2 records each collection in its operations log before it deletes anything, so a collection
that deletes an object written after a `LogHead` shows in the log after it. Snapshot expiry deletes nothing itself
(the collection after it does), so only collections count.

A repository of format 1 (Icechunk 1.x wrote them; Icechunk 2 reads and writes them) keeps no operations log. There
the mark is a `Canary`: an anonymous snapshot the run writes before anything else and that nothing refers to. A
collection judges snapshots, then chunks, by the object store's own creation times against one cutoff, and deletes
the snapshots first: one that could delete what was written after the canary deletes the canary. While it is
stored, nothing written after it was collected.

Either way, a cutoff later than the collection's own start (a clock ahead, or a cutoff in the future) could still
delete what was written after the mark: the one case this cannot see. Icechunk assumes cutoffs older than every
session that may still commit.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

import icechunk
import zarr


@dataclass(frozen=True)
class LogHead:
    """Format 2: the operations log's newest entry when the mark was taken (the log only grows at its head)."""

    updated_at: str
    kind: str


@dataclass(frozen=True)
class Canary:
    """Format 1: the anonymous snapshot written when the mark was taken."""

    snapshot_id: str


type Mark = LogHead | Canary
"""Where a repository stood before a run wrote anything. None in its place: from the repository's start."""


def mark_from_dict(recorded: dict[str, Any]) -> Mark:
    """A mark as `dataclasses.asdict` recorded it (in a kept set's `run.json`)."""
    return Canary(**recorded) if "snapshot_id" in recorded else LogHead(**recorded)


def has_log(repo: icechunk.Repository) -> bool:
    """Whether the repository keeps an operations log (format 2 and later)."""
    return int(repo.spec_version) >= 2


def _head(update: icechunk.Update) -> LogHead:
    return LogHead(update.updated_at.isoformat(), type(update.kind).__name__)


def mark(repo: icechunk.Repository, branch: str) -> Mark | None:
    """Where the repository stands now: its log's newest entry (None for an empty log), or on format 1 a canary
    written on `branch`'s tip."""
    if not has_log(repo):
        return write_canary(repo, branch)
    for update in repo.ops_log():
        return _head(update)
    return None


def write_canary(repo: icechunk.Repository, branch: str) -> Canary:
    """An anonymous snapshot nothing refers to: a fork of a session that adds one group (a session with no change
    forks from its tip, which is never collected). Nothing is committed; the group exists only in that snapshot."""
    session = repo.writable_session(branch)
    zarr.create_group(session.store, path=f"icefloe-mark-{uuid4().hex}")
    return Canary(session.fork().snapshot_id)


def snapshot_stored(repo: icechunk.Repository, snapshot_id: str) -> bool:
    """Whether the snapshot is in the repository's storage now. The repository is opened afresh: an open one
    answers from its cache. Any storage error counts as gone, so that what depends on it is proven otherwise."""
    try:
        icechunk.Repository.open(repo.storage, repo.config).lookup_snapshot(snapshot_id)
    except icechunk.IcechunkError:
        return False
    return True


@dataclass(frozen=True)
class Collections:
    """What is known of the collections since a mark: those the log shows (their times, newest first), whether the
    mark still tells (`known` False: anything may have run), where the repository stands now, and why not known."""

    ran: list[datetime]
    known: bool
    now: Mark | None
    unknown_because: str = ""

    @property
    def clear(self) -> bool:
        """Nothing written after the mark can have been collected."""
        return self.known and not self.ran

    def describe(self, since: str) -> str:
        """What may have happened since `since` (what was written after the mark: "they were written")."""
        if not self.known:
            return self.unknown_because.format(since=since)
        times = ", ".join(t.strftime("%Y-%m-%d %H:%M:%S UTC") for t in self.ran)
        return f"garbage collection ran on the repository since {since} ({times})"


def collections_since(repo: icechunk.Repository, since: Mark | None) -> Collections:
    """The collections since `since` (a `mark` taken earlier): read off the log from its head back to it, or, on
    format 1, whether its canary is still stored (one read of a repository opened afresh)."""
    if isinstance(since, Canary):
        canary = since.snapshot_id
        if snapshot_stored(repo, canary):
            return Collections([], True, since)
        gone = "garbage collection ran on the repository since {since} (of Icechunk format 1, it keeps no operations "
        return Collections(
            [], False, None, gone + f"log: the snapshot icefloe wrote as a mark then, {canary}, is gone)"
        )
    if not has_log(repo):
        unmarked = (
            "the repository is of Icechunk format 1, which keeps no operations log, and no mark was written when "
        )
        return Collections([], False, None, unmarked + "{since}")
    ran: list[datetime] = []
    now: Mark | None = None
    for update in repo.ops_log():
        here = _head(update)
        now = now or here
        if here == since:
            return Collections(ran, True, now)
        if isinstance(update.kind, icechunk.UpdateType.GCRan):
            ran.append(update.updated_at)
    return Collections(
        ran, since is None, now, "the repository's operations log no longer reaches back to when {since}"
    )
