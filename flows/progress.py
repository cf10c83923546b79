"""How far a run's blocks are: a Prefect progress artifact on the flow run, and a bar when a terminal watches.

The `icefloe` command turns the bar on (`terminal_bar`); a deployment's run shows only the artifact in the UI.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

terminal_bar: ContextVar[bool] = ContextVar("icefloe_terminal_bar", default=False)


class BlockProgress:
    """Counts finished blocks; call `advance` once per block, written or failed."""

    def __init__(self, total: int, bar: Progress | None) -> None:
        self.total, self.done = total, 0
        self._bar = bar
        self._task = bar.add_task("writing blocks", total=total) if bar else None
        artifact = create_progress_artifact(0.0, description=f"blocks written of {total}")
        assert isinstance(artifact, UUID)  # the sync API, as flows here are sync
        self._artifact = artifact

    def advance(self) -> None:
        self.done += 1
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task)
        update_progress_artifact(self._artifact, 100.0 * self.done / max(1, self.total))


@contextmanager
def block_progress(total: int) -> Iterator[BlockProgress]:
    if not terminal_bar.get():
        yield BlockProgress(total, None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:  # stdout is for results
        yield BlockProgress(total, bar)
