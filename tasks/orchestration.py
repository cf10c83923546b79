"""What a run needs from whoever orchestrates it, and the block fan-out loop every orchestrator shares.

A run (plan -> fork -> write blocks -> verify -> merge -> commit) is the same whether Prefect orchestrates it (a flow
with block task runs, a target lock held through the Prefect API, run logs) or the `icefloe` command runs it alone,
without a Prefect API. The orchestrator supplies the four things that differ: a logger, the target lock, a cluster
that writes blocks, and who to name in the commit's metadata.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from distributed import Client, Future, KilledWorker, as_completed
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


class SubmittedBlock(Protocol):
    """One block's job on Dask, however it was submitted."""

    @property
    def future(self) -> Future[ForkSession]: ...

    def result(self) -> ForkSession: ...

    def lost(self, reason: str) -> None:
        """Its worker died: Dask gave up on it, so whatever tracks it should say so."""
        ...


class Progress(Protocol):
    def advance(self) -> None: ...


@contextmanager
def no_progress(total: int) -> Iterator[Progress]:
    class _Silent:
        def advance(self) -> None:
            pass

    yield _Silent()


def collect_forks(
    client: Client,
    jobs: list[BlockJob],
    submit: Callable[[list[BlockJob]], list[SubmittedBlock]],
    progress: Progress,
    resubmits: int,
    logger: Logger,
) -> list[tuple[Block, ForkSession]]:
    """Submit every job and gather each block's fork as it finishes. A block lost with its worker (Dask's
    `KilledWorker`, which no retry inside the task sees) is submitted again, up to `resubmits` times; any other
    failure is final. Raise BlockWriteError when a block failed: nothing must be committed then."""
    submitted: dict[object, tuple[BlockJob, SubmittedBlock, int]] = {}  # by Dask key
    finished = as_completed(loop=client.loop)

    def submit_all(batch: list[BlockJob], attempt: int) -> None:
        for job, block in zip(batch, submit(batch), strict=True):
            submitted[block.future.key] = (job, block, attempt)
            finished.add(block.future)

    written: list[tuple[Block, ForkSession]] = []
    failures: list[str] = []
    submit_all(jobs, 0)
    for done in finished:
        job, block, attempt = submitted.pop(done.key)
        try:
            written.append((job.block, block.result()))
        except KilledWorker as e:
            block.lost(f"worker lost: {e}")
            if attempt < resubmits:
                logger.warning("block %s lost with its worker; submitting it again", job.block.name)
                submit_all([job], attempt + 1)
                continue
            failures.append(f"{job.block.name}: {e}")
        except Exception as e:
            failures.append(f"{job.block.name}: {e}")
        progress.advance()
    if failures:
        raise BlockWriteError(
            f"{len(failures)} of {len(jobs)} blocks failed after retries; nothing was committed. "
            f"First failure: {failures[0]}"
        )
    return written
