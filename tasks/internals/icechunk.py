"""Icechunk's private API, in the one place icefloe reaches into it (tests/tasks/test_icechunk_internals.py guards
it).

Resuming a run needs its writable session back exactly as it was initialized: kept block forks refer to arrays by
the node ids that session gave them, and a freshly initialized session gives new ones (merging then keeps no
chunk, silently). Icechunk pickles only fork sessions; its writable sessions serialize through the same bytes.
A Dataset's write chooses its default mode exactly as `icechunk.xarray.to_icechunk` does, with Icechunk's own
vendored copy of xarray's rule.
"""

from icechunk import Session
from icechunk._icechunk_python import PySession
from icechunk.vendor.xarray import _choose_default_mode as choose_default_mode

__all__ = ["choose_default_mode", "session_bytes", "session_from_bytes"]


def session_bytes(session: Session) -> bytes:
    """A writable session, uncommitted changes and node ids included."""
    return bytes(session._session.as_bytes())


def session_from_bytes(data: bytes) -> Session:
    return Session(PySession.from_bytes(data))
