"""Whether Icechunk's garbage collection ran on a repository since a given moment, from its operations log.

`Repository.garbage_collect(cutoff)` deletes every object older than the cutoff that no snapshot references: the
chunks an uncommitted session or an unmerged fork wrote, and a fork's own snapshot. A run that commits what it wrote
hours ago (a kept set adopted after a failure, or a long run) must know whether that happened in between. Icechunk
records each collection in the operations log before it deletes anything, so a collection that deletes an object
written after a `Mark` shows in the log after that mark. Snapshot expiry deletes nothing itself (the collection
after it does), so only collections count. A cutoff later than the mark (a clock ahead, or a cutoff in the future)
could still delete what was written after it: the one case this cannot see.
"""

from dataclasses import dataclass
from datetime import datetime

import icechunk


@dataclass(frozen=True)
class Mark:
    """A point of a repository's operations log: its newest entry then (the log only grows at its head). Where a
    mark is None, the log counts from its start."""

    updated_at: str
    kind: str


def _mark(update: icechunk.Update) -> Mark:
    return Mark(update.updated_at.isoformat(), type(update.kind).__name__)


def mark(repo: icechunk.Repository) -> Mark | None:
    """The log's newest entry now; None for a repository whose log is empty."""
    for update in repo.ops_log():
        return _mark(update)
    return None


@dataclass(frozen=True)
class Collections:
    """What the log says since a mark: the collections that ran (their times, newest first), and the log's newest
    entry now. `known` is False when the mark is no longer in the log: anything may have run."""

    ran: list[datetime]
    known: bool
    now: Mark | None

    @property
    def clear(self) -> bool:
        """Nothing written after the mark can have been collected."""
        return self.known and not self.ran

    def describe(self, since: str) -> str:
        """What may have happened since `since` (what was written after the mark: "they were written")."""
        if not self.known:
            return f"the repository's operations log no longer reaches back to when {since}"
        times = ", ".join(t.strftime("%Y-%m-%d %H:%M:%S UTC") for t in self.ran)
        return f"garbage collection ran on the repository since {since} ({times})"


def collections_since(repo: icechunk.Repository, since: Mark | None) -> Collections:
    """The collections recorded after `since` (a `mark` taken earlier), reading the log from its head back to it."""
    ran: list[datetime] = []
    now: Mark | None = None
    for update in repo.ops_log():
        here = _mark(update)
        now = now or here
        if here == since:
            return Collections(ran, True, now)
        if isinstance(update.kind, icechunk.UpdateType.GCRan):
            ran.append(update.updated_at)
    return Collections(ran, since is None, now)
