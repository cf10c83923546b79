"""The exceptions icefloe raises. Invalid requests are never retried; I/O failures may heal on retry."""

import functools
from collections.abc import Callable


class IcefloeError(Exception):
    """Base class of every icefloe error."""


class InvalidRequestError(IcefloeError, ValueError):
    """The request itself is wrong: retrying cannot help. Raised before anything is written."""


class ChunkAlignmentError(InvalidRequestError):
    """A region or plan does not consist of whole chunks (or shards): writing it would silently lose data."""


class OverlappingWritesError(InvalidRequestError):
    """Two writes or two blocks would write the same chunk; Icechunk would keep only one of them."""


class BlockWriteError(IcefloeError):
    """One or more blocks could not be written, even after retries. Nothing was committed."""


class CommitConflictError(IcefloeError):
    """Another commit changed the same data on the branch; the rebase cannot reconcile them. Nothing was committed."""


class ValidationHookError(IcefloeError):
    """The user's validation hook refused the initialized Dataset."""


class ValidationFailedError(IcefloeError):
    """A committed snapshot failed one of its checks (`icefloe validate`, the `validate` flow)."""


class PublishRejectedError(IcefloeError):
    """A staged snapshot failed a check before publishing: the branch did not move, the staging branch keeps it."""


class UnreadableChunksError(IcefloeError):
    """Chunks a run wrote (or kept from an earlier attempt) can no longer be read back: committing would record
    references to missing objects. Nothing was committed."""


def one_line(error: BaseException) -> str:
    """An error's type and the first line of its message (Icechunk's add pages of context below it)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


STARTED_WRITING = "icefloe: raised once the run had started writing blocks; nothing was committed"


def note_started_writing(error: BaseException) -> None:
    """Mark `error` as raised after the request was accepted: whatever its type, the request was not refused."""
    if not started_writing(error):
        error.add_note(STARTED_WRITING)


def notes_started_writing[**P, R](stage: Callable[P, R]) -> Callable[P, R]:
    """`stage` runs once the request was accepted: whatever it raises is noted so (`note_started_writing`)."""

    @functools.wraps(stage)
    def noted(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return stage(*args, **kwargs)
        except Exception as e:
            note_started_writing(e)
            raise

    return noted


def started_writing(error: BaseException) -> bool:
    return STARTED_WRITING in getattr(error, "__notes__", ())
