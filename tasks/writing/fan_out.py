"""Fanning block jobs out on a Dask cluster and collecting each block's fork, however the jobs were submitted."""

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from distributed import Client, Future, KilledWorker, as_completed

from tasks.records import BlockJob, Logger, Progress, WrittenBlock
from tasks.writing.block import check_all_written


class SubmittedBatch(Protocol):
    """A batch of block jobs (often one) on Dask, as a plain Dask task or as a Prefect task run."""

    @property
    def future(self) -> Future[object]: ...

    def result(self) -> list[WrittenBlock]: ...

    def lost(self, reason: str) -> None:
        """Its worker died: Dask gave up on it, so whatever tracks it should say so."""
        ...


def collect_forks(
    client: Client,
    batches: list[list[BlockJob]],
    submit: Callable[[list[list[BlockJob]]], list[SubmittedBatch]],
    merge: Callable[[WrittenBlock], None],
    progress: Progress,
    resubmits: int,
    logger: Logger,
) -> None:
    """Submit every batch and hand each block's fork to `merge` as its batch finishes. A batch lost with its worker
    (Dask's `KilledWorker`, which no retry inside the task sees) is submitted again, up to `resubmits` times; any
    other failure is final. Raise BlockWriteError when a block failed."""
    submitted: dict[object, tuple[list[BlockJob], SubmittedBatch, int]] = {}  # by Dask key
    finished = as_completed(loop=client.loop)

    def submit_all(some: list[list[BlockJob]], attempt: int) -> None:
        for batch, sent in zip(some, submit(some), strict=True):
            submitted[sent.future.key] = (batch, sent, attempt)
            finished.add(sent.future)

    failures: list[str] = []
    submit_all(batches, 0)
    for done in finished:
        batch, sent, attempt = submitted.pop(done.key)
        name = batch[0].block.name if len(batch) == 1 else f"{batch[0].block.name} (and {len(batch) - 1} more)"
        try:
            written = sent.result()
        except KilledWorker as e:
            sent.lost(f"worker lost: {e}")
            if attempt < resubmits:
                logger.warning("block %s lost with its worker; submitting it again", name)
                submit_all([batch], attempt + 1)
                continue
            failures.append(f"{name}: {e}")
        except Exception as e:
            failures.append(f"{name}: {e}")
        else:
            for block in written:
                merge(replace(block, resubmits=attempt))
        progress.advance(len(batch))
    check_all_written(failures, sum(map(len, batches)))
