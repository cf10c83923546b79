"""A context manager entered in a thread while the caller goes on: a run connects to its cluster (or starts one)
while it takes its target and initializes its arrays, which on an object store are round trips of their own."""

import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager


@contextmanager
def entered_meanwhile[T](manager: AbstractContextManager[T]) -> Iterator[Callable[[], T]]:
    """Enter `manager` in a thread; what this yields waits for it and returns what it entered as. It is left here,
    when the caller is done (having waited for it to be entered, if the caller failed first).

    `manager` must not set context variables as it is entered: it is entered in a copy of the caller's context.
    A manager that fails to be entered fails whoever waits for it; a caller that never did has not needed it."""
    entering: Future[T] = Future()
    context = contextvars.copy_context()

    def enter() -> None:
        try:
            entering.set_result(context.run(manager.__enter__))
        except BaseException as e:
            entering.set_exception(e)

    threading.Thread(target=enter, name="icefloe-meanwhile", daemon=True).start()
    try:
        yield entering.result
    except BaseException as e:
        if entering.exception() is None:
            manager.__exit__(type(e), e, e.__traceback__)
        raise
    if entering.exception() is None:
        manager.__exit__(None, None, None)
