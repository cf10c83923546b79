"""What icefloe changes in Prefect's own behaviour, in one place. Each change has a contract test
(tests/flows/test_prefect_internals.py) that fails as soon as a Prefect upgrade moves what it relies on.

- A flow run's heartbeat thread sleeps in whole seconds and the sync engine joins it when the run ends, so every
  flow run waited up to a second after its last line (0.6-0.8 s measured on each run here). The engine is told not
  to wait, as Prefect's async engine already does: the thread is a daemon, sees the stop event within a second and
  ends by itself. Heartbeats are emitted as before.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import prefect.flow_engine

_send_heartbeats = prefect.flow_engine._send_heartbeats


@contextmanager
def send_heartbeats_without_waiting(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    with _send_heartbeats(engine, join_on_exit=False):
        yield


def install() -> None:
    prefect.flow_engine._send_heartbeats = send_heartbeats_without_waiting
