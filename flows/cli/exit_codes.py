"""What the `icefloe` command's exit code says, decided in one place by the stage a failure came from.

0: committed (or planned, or checked and passed); 1: the command started and failed (nothing was committed), or a
check failed; 2: refused because of the request itself, before anything was read or written; 128 + the signal's
number (130 Ctrl-C, 143 SIGTERM): interrupted. Standard library only at import: the command answers at once.
"""

import argparse
import sys
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    REFUSED = 2


def refused(error: BaseException, command: str = "write") -> bool:
    """A request refused because of the request itself, before anything was written (exit 2), as opposed to a
    command that started and failed (exit 1): a storage error, a chunk that is gone, a failed write or commit."""
    import icechunk
    from pydantic import ValidationError

    from tasks.errors import IcefloeError, InvalidRequestError, ValidationHookError, started_writing

    if started_writing(error):
        return False
    if isinstance(error, InvalidRequestError | ValidationHookError | ValidationError | argparse.ArgumentTypeError):
        return True
    if command not in ("write", "demo") or isinstance(error, IcefloeError | icechunk.IcechunkError):
        return False
    # xarray's and zarr's own refusals of a write (a bad mode, dimension, region or encoding) are ValueErrors and
    # KeyErrors; mode w- on a group that exists is a FileExistsError
    return isinstance(error, ValueError | KeyError | FileExistsError)


def report(command: str, error: Exception) -> int:
    import icechunk

    from tasks.errors import IcefloeError, PublishRejectedError

    refusal = _api_refusal(error)
    if refusal is not None:
        print(f"icefloe {command}: failed, nothing was written: {refusal}", file=sys.stderr)
        return ExitCode.FAILED

    if refused(error, command):
        # our refusals say what is wrong; others' need their name (ValueError, KeyError, ...) to make sense
        what = str(error) if isinstance(error, IcefloeError) else f"{type(error).__name__}: {error}"
        print(f"icefloe {command}: refused, nothing was written: {what}", file=sys.stderr)
        return ExitCode.REFUSED
    if isinstance(error, IcefloeError | icechunk.IcechunkError | OSError):
        summary, _, details = str(error).strip().partition("\n\n")  # Icechunk's errors add their context below
        if details:
            print(details, file=sys.stderr)
        summary = " ".join(summary.split())
        outcome = "failed, nothing was committed" if command in ("write", "demo") else "failed"
        if isinstance(error, PublishRejectedError):
            outcome = "failed its checks, not published"
        print(f"icefloe {command}: {outcome}: {type(error).__name__}: {summary}", file=sys.stderr)
        return ExitCode.FAILED
    raise error


def _api_refusal(error: Exception) -> str | None:
    """What the Prefect API's refusal of the command's credentials means (the credentials are never shown)."""
    exceptions = sys.modules.get("prefect.exceptions")
    if exceptions is None or not isinstance(error, exceptions.PrefectHTTPStatusError):
        return None
    status, url = error.response.status_code, str(error.request.url).split("/api/", 1)[0] + "/api"
    if status == 401:
        return (
            f"the Prefect API at {url} answered 401 Unauthorized: its server takes an auth string "
            "(PREFECT_SERVER_API_AUTH_STRING); give the same user:password in PREFECT_API_AUTH_STRING"
        )
    if status == 403:
        return f"the Prefect API at {url} answered 403 Forbidden ({error.response.text[:200]})"
    return None
