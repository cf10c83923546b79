"""A progress bar on the terminal's stderr (stdout is for results), for the `icefloe` command.

Prefect-free: a run without a Prefect API uses it too. `terminal_bar` says whether a command wants it.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

terminal_bar: ContextVar[bool] = ContextVar("icefloe_terminal_bar", default=False)


class Bar:
    """Counts finished blocks on a rich progress bar, or nowhere when no terminal watches."""

    def __init__(self, advance: Callable[[int], None] | None = None) -> None:
        self._advance = advance

    def advance(self, blocks: int = 1) -> None:
        if self._advance is not None:
            self._advance(blocks)


@contextmanager
def block_bar(total: int) -> Iterator[Bar]:
    if not terminal_bar.get():
        yield Bar()
        return
    from rich.console import Console  # only when a terminal watches
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("writing blocks", total=total)
        yield Bar(lambda blocks: progress.advance(task, blocks))
