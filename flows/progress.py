"""How far a flow run's blocks are: a Prefect progress artifact on the run, and the terminal bar when one watches.

A deployment's run shows only the artifact in the UI; the `icefloe` command turns the bar on (`flows/bar.py`).
Each artifact update is an API call (and a row of history), so the artifact moves at most once a second and by at
least a percent: at most about a hundred updates however many blocks a run has.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows.bar import Bar, block_bar

UPDATE_SECONDS = 1.0


class BlockProgress:
    """Counts finished blocks; call `advance` with the blocks each finished task run held, written or failed."""

    def __init__(
        self,
        total: int,
        bar: Bar,
        artifact: UUID,
        update: Callable[[UUID, float], object] = update_progress_artifact,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.done = total, 0
        self._bar, self._artifact, self._update, self._clock = bar, artifact, update, clock
        self._updated_at, self._updated_done = clock(), 0

    def advance(self, blocks: int = 1) -> None:
        self.done += blocks
        self._bar.advance(blocks)
        now = self._clock()
        a_percent_more = 100 * (self.done - self._updated_done) >= self.total
        if self.done == self.total or (a_percent_more and now - self._updated_at >= UPDATE_SECONDS):
            self._update(self._artifact, 100.0 * self.done / max(1, self.total))
            self._updated_at, self._updated_done = now, self.done


@contextmanager
def block_progress(total: int) -> Iterator[BlockProgress]:
    artifact = create_progress_artifact(0.0, description=f"blocks written of {total}")
    assert isinstance(artifact, UUID)  # the sync API, as flows here are sync
    with block_bar(total) as bar:
        yield BlockProgress(total, bar, artifact)
