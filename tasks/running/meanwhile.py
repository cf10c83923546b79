"""Work done in a thread while the caller goes on: a run connects to its cluster (or starts one) while it takes its
target and initializes its arrays, and looks for the repository while it waits for the target's lock; on an object
store each of these is round trips of its own."""

import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager


def started_meanwhile[T](work: Callable[[], T]) -> Future[T]:
    """`work()` running in a thread of its own (in a copy of the caller's context) from now; its result or error."""
    done: Future[T] = Future()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            done.set_result(context.run(work))
        except BaseException as e:
            done.set_exception(e)

    threading.Thread(target=run, name="icefloe-meanwhile", daemon=True).start()
    return done


@contextmanager
def entered_meanwhile[T](manager: AbstractContextManager[T]) -> Iterator[Callable[[], T]]:
    """Enter `manager` in a thread; what this yields waits for it and returns what it entered as. It is left here,
    when the caller is done (having waited for it to be entered, if the caller failed first).

    `manager` must not set context variables as it is entered: it is entered in a copy of the caller's context.
    A manager that fails to be entered fails whoever waits for it; a caller that never did has not needed it."""
    entering = started_meanwhile(manager.__enter__)
    try:
        yield entering.result
    except BaseException as e:
        if entering.exception() is None:
            manager.__exit__(type(e), e, e.__traceback__)
        raise
    if entering.exception() is None:
        manager.__exit__(None, None, None)
