"""What a run needs from whoever orchestrates it.

A run (plan -> fork -> write blocks -> verify -> merge -> commit) is the same whether Prefect orchestrates it (a flow
with block task runs, a target lock held through the Prefect API, run logs) or the `icefloe` command runs it alone,
without a Prefect API. The orchestrator supplies the four things that differ: a logger, the target lock, a cluster
that writes blocks, and who to name in the commit's metadata.
"""

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from icechunk import ForkSession

from tasks.errors import BlockWriteError
from tasks.plan import Block, BlockSizing
from tasks.request import WriteOptions
from tasks.write import BlockJob

type Logger = logging.Logger | logging.LoggerAdapter[Any]


class BlockRunner(Protocol):
    """A cluster, ready to write blocks."""

    @property
    def threads(self) -> int:
        """Worker threads, to size blocks by."""
        ...

    @property
    def sizing(self) -> BlockSizing:
        """How big blocks should be, given what a block task costs here."""
        ...

    def write_blocks(
        self, fork: ForkSession, jobs: list[BlockJob], options: WriteOptions
    ) -> list[tuple[Block, ForkSession]]:
        """Write every job through a copy of `fork`; each block's fork, or BlockWriteError naming the failures."""
        ...


class Orchestrator(Protocol):
    @property
    def logger(self) -> Logger: ...

    def hold_target(self, repo: str, branch: str) -> AbstractContextManager[None]:
        """Hold `repo`'s `branch` from reading its tip to the commit; wait while another run holds it."""
        ...

    def block_runner(self, options: WriteOptions) -> AbstractContextManager[BlockRunner]: ...

    def run_metadata(self) -> dict[str, Any]:
        """Who makes the commit (recorded in its metadata under "icefloe")."""
        ...


class Progress(Protocol):
    def advance(self) -> None: ...


@contextmanager
def no_progress(total: int) -> Iterator[Progress]:
    class _Silent:
        def advance(self) -> None:
            pass

    yield _Silent()


def check_all_written(failures: list[str], total: int) -> None:
    """Raise when a block failed: nothing may be committed then."""
    if failures:
        raise BlockWriteError(
            f"{len(failures)} of {total} blocks failed after retries; nothing was committed. "
            f"First failure: {failures[0]}"
        )
