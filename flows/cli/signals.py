"""Stopping a command: SIGINT and SIGTERM both unwind it as Ctrl-C does."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def interruptible(wanted: bool, stopped_by: list[int]) -> Iterator[None]:
    """SIGINT and SIGTERM both unwind the command like Ctrl-C, so that it stops its cluster and temporary server
    and releases its target on the way out; `stopped_by` records which one came."""
    if not wanted or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(number: int, frame: object) -> None:
        stopped_by.append(number)
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
