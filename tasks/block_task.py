"""The Prefect task around `write_block`: a name per block, retries, no input hashing."""

from icechunk import ForkSession
from prefect import Task, runtime, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from tasks.errors import InvalidRequestError
from tasks.write import BlockJob, WrittenBlock, timed_write


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
def write_block_task(fork: ForkSession, job: BlockJob, piece_bytes: int) -> WrittenBlock:
    return timed_write(fork, job, piece_bytes, attempt=runtime.task_run.run_count)
