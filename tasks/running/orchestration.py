"""What a run needs from whoever orchestrates it.

A run (initialize -> plan -> fork -> write blocks, merging each as it arrives -> commit -> report) is the same
whether Prefect orchestrates it (a flow with a task run per stage and per block or batch of blocks, a target lock
held through the Prefect API, run logs, artifacts and an event) or the `icefloe` command runs it alone, without a
Prefect API. The orchestrator supplies what differs: a logger, the target lock, how a stage runs, a cluster that
writes blocks, who to name in the commit's metadata, and where the run's report goes.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from icechunk import ForkSession

from tasks.planning.blocks import BlockSizing
from tasks.records import BlockJob, BlockReport, CommitResult, Logger, WrittenBlock
from tasks.request import WriteOptions


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
        self, fork: ForkSession, jobs: list[BlockJob], options: WriteOptions, merge: Callable[[WrittenBlock], None]
    ) -> None:
        """Write every job through a copy of `fork`, handing each block's fork to `merge` (in this thread) as it
        arrives; raise BlockWriteError naming the failures."""
        ...


class Orchestrator(Protocol):
    @property
    def logger(self) -> Logger: ...

    def hold_target(self, repo: str, branch: str) -> AbstractContextManager[None]:
        """Hold `repo`'s `branch` from reading its tip to the commit; wait while another run holds it."""
        ...

    def stage[R](self, name: str, work: Callable[[Logger], R]) -> R:
        """Run one stage of the run (`initialize`, `merge-and-commit`) in this process, where the writable session
        lives: `work` gets the logger the stage's messages go to; its exception fails the stage."""
        ...

    def block_runner(self, options: WriteOptions) -> AbstractContextManager[BlockRunner]: ...

    def run_metadata(self) -> dict[str, Any]:
        """Who makes the commit (recorded in its metadata under "icefloe")."""
        ...

    def report(self, result: CommitResult, blocks: list[BlockReport]) -> None:
        """Report a committed run where its users look; a failure here must not fail the committed run."""
        ...
