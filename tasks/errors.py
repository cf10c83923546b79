"""The exceptions icefloe raises. Invalid requests are never retried; I/O failures may heal on retry."""


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
