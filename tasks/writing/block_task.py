"""The Prefect tasks around `write_block`: one block per task run (Prefect retries it), or a batch of blocks per
task run when a write has more blocks than task runs it may make (each block retried inside the task run)."""

from dataclasses import replace

from icechunk import ForkSession
from prefect import Task, runtime, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from tasks.errors import InvalidRequestError
from tasks.records import BlockJob, WrittenBlock
from tasks.request import WriteOptions
from tasks.writing.block import keep_block, timed_write, write_block_retrying


def retry_unless_invalid(task: Task[..., object], task_run: TaskRun, state: State[object]) -> bool:
    """Retry I/O and compute failures; an invalid request fails the same way every time."""
    try:
        state.result()
    except InvalidRequestError:
        return False
    except Exception:
        return True
    return True


@task(
    name="write-block",
    task_run_name="write {job.block.name}",
    cache_policy=NO_CACHE,  # inputs are sessions and dask graphs: hashing them is slow and meaningless
    retries=3,
    retry_delay_seconds=1,
    retry_condition_fn=retry_unless_invalid,
)
def write_block_task(fork: ForkSession, job: BlockJob, options: WriteOptions) -> WrittenBlock:
    return timed_write(fork, job, options, attempt=runtime.task_run.run_count)


@task(
    name="write-blocks",
    task_run_name="write {jobs[0].block.name} and the next blocks",
    cache_policy=NO_CACHE,
)
def write_blocks_task(fork: ForkSession, jobs: list[BlockJob], options: WriteOptions) -> list[WrittenBlock]:
    """The blocks in order, each retried on its own from the pristine fork; the first that fails fails the task
    run, so each is kept here as it is written (for a resumed run, when the run keeps blocks): the forks of a failed
    task run never reach the run."""
    written = []
    for job in jobs:
        block = write_block_retrying(fork, job, options)
        written.append(replace(block, saved=keep_block(job.keep, block)))
    return written
