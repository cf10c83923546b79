"""Fanning block jobs out on a Dask cluster and collecting each block's fork, however the jobs were submitted."""

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from distributed import Client, Future, KilledWorker, as_completed

from tasks.orchestration import Logger, Progress, check_all_written
from tasks.write import BlockJob, WrittenBlock


class SubmittedBlock(Protocol):
    """One block's job on Dask, as a plain Dask task or as a Prefect task run."""

    @property
    def future(self) -> Future[WrittenBlock]: ...

    def result(self) -> WrittenBlock: ...

    def lost(self, reason: str) -> None:
        """Its worker died: Dask gave up on it, so whatever tracks it should say so."""
        ...


def collect_forks(
    client: Client,
    jobs: list[BlockJob],
    submit: Callable[[list[BlockJob]], list[SubmittedBlock]],
    progress: Progress,
    resubmits: int,
    logger: Logger,
) -> list[WrittenBlock]:
    """Submit every job and gather each block's fork as it finishes. A block lost with its worker (Dask's
    `KilledWorker`, which no retry inside the task sees) is submitted again, up to `resubmits` times; any other
    failure is final. Raise BlockWriteError when a block failed."""
    submitted: dict[object, tuple[BlockJob, SubmittedBlock, int]] = {}  # by Dask key
    finished = as_completed(loop=client.loop)

    def submit_all(batch: list[BlockJob], attempt: int) -> None:
        for job, block in zip(batch, submit(batch), strict=True):
            submitted[block.future.key] = (job, block, attempt)
            finished.add(block.future)

    written: list[WrittenBlock] = []
    failures: list[str] = []
    submit_all(jobs, 0)
    for done in finished:
        job, block, attempt = submitted.pop(done.key)
        try:
            written.append(replace(block.result(), resubmits=attempt))
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
    check_all_written(failures, len(jobs))
    return written
