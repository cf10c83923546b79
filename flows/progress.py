"""How far a flow run's blocks are: a Prefect progress artifact on the run, and the terminal bar when one watches.

A deployment's run shows only the artifact in the UI; the `icefloe` command turns the bar on (`flows/bar.py`).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows.bar import Bar, block_bar


class BlockProgress:
    """Counts finished blocks; call `advance` once per block, written or failed."""

    def __init__(self, total: int, bar: Bar) -> None:
        self.total, self.done = total, 0
        self._bar = bar
        artifact = create_progress_artifact(0.0, description=f"blocks written of {total}")
        assert isinstance(artifact, UUID)  # the sync API, as flows here are sync
        self._artifact = artifact

    def advance(self) -> None:
        self.done += 1
        self._bar.advance()
        update_progress_artifact(self._artifact, 100.0 * self.done / max(1, self.total))


@contextmanager
def block_progress(total: int) -> Iterator[BlockProgress]:
    with block_bar(total) as bar:
        yield BlockProgress(total, bar)
