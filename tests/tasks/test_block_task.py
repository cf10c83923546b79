from prefect.states import Completed, Failed

from tasks.errors import ChunkAlignmentError, InvalidRequestError
from tasks.writing.block_task import retry_unless_invalid


def test_invalid_requests_are_not_retried_but_io_failures_are() -> None:
    def retried(state: object) -> bool:
        return retry_unless_invalid(None, None, state)  # type: ignore[arg-type]

    assert not retried(Failed(data=InvalidRequestError("bad region")))
    assert not retried(Failed(data=ChunkAlignmentError("not a multiple")))
    assert retried(Failed(data=OSError("connection reset")))
    assert retried(Completed(data=None))
