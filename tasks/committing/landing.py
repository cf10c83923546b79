"""A run's point of no return: the call that moves its branch (its commit, or the publish of its staged snapshot).

Stopping a command there would only hide the outcome: the snapshot lands, the command says the run was
interrupted, and a user (or a scheduler retrying failures) runs the same append again, which appends it twice.
So SIGINT and SIGTERM that come during that call wait until it has returned, and the process remembers what
landed: a command interrupted after that says the write is complete (`flows/cli/main.py`).
"""

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_landed: str | None = None  # the snapshot a run of this process last put on its branch
_deferred: list[int] = []


@contextmanager
def moving_branch() -> Iterator[None]:
    """Around the call that moves a branch, in the main thread (signals interrupt no other): a SIGINT or SIGTERM
    that comes meanwhile is held until it returns; when the call failed, it is then delivered as it came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {
        number: signal.signal(number, lambda n, _: held.append(n)) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    except BaseException:
        _restore(previous)
        for number in held:
            os.kill(os.getpid(), number)  # nothing landed: the stop the user asked for goes ahead
        raise
    _restore(previous)
    _deferred.extend(held)


def _restore(previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None]) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)


def landed(snapshot_id: str) -> None:
    """Note, inside `moving_branch`, that the snapshot is on its branch."""
    global _landed
    _landed = snapshot_id


def withdrawn(snapshot_id: str) -> None:
    """Note that the snapshot was taken off its branch again."""
    global _landed
    if _landed == snapshot_id:
        _landed = None


def landed_snapshot() -> str | None:
    """The snapshot a run of this process last put on its branch, if any."""
    return _landed


def held_signals() -> list[int]:
    """The signals that came while a branch was moving, and waited for it."""
    return list(_deferred)
