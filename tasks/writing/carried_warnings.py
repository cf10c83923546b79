"""Warnings of a run reach its caller as `to_zarr`'s reach its caller: once each, from wherever they were made.

A request to a target that does not exist yet is initialized twice (on trial in memory, then in the repository
created for it): its warnings are shown once (`each_once`).

Some of xarray's encoding happens as a lazy variable is computed, block by block (numpy's "invalid value encountered
in cast" for a NaN stored as an integer, for one). Written in the run's own process (threads), a block's warnings
reach the caller's filters and handlers directly. Written in another process (a Dask worker process, a remote
cluster), they would stay in that process's log: there they are collected, travel back with the block's fork, and
the run warns them again where it runs, each once.
"""

import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO

from tasks.records import Warned

_collected: list[Warned] = []
_lock = threading.Lock()


def _collect(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    with _lock:  # not shown here as well: a run's worker processes may print to its own terminal
        _collected.append(Warned(f"{category.__module__}.{category.__qualname__}", str(message), filename, lineno))


def collect_here() -> None:
    """From now on, keep the warnings this process would show for `drain`, for whichever run's block drains them."""
    warnings.showwarning = _collect


def drain() -> tuple[Warned, ...]:
    """The warnings kept since the last drain: those of this block, or of another written beside it in this
    process, which the run warns once whichever block brings them."""
    with _lock:
        kept = tuple(_collected)
        _collected.clear()
    return kept


def warn_again(carried: Iterable[Warned], seen: set[Warned]) -> None:
    """Warn what blocks carried back, each warning once per run (`seen`)."""
    for warned in carried:
        if warned not in seen:
            seen.add(warned)
            warned.warn()


@contextmanager
def each_once() -> Iterator[None]:
    """The warnings made inside, each shown once as it ends (raising or not). The caller's filters apply to each."""
    catching = warnings.catch_warnings(record=True)
    caught = catching.__enter__()
    try:
        yield
    finally:
        catching.__exit__(None, None, None)
        seen: set[tuple[object, ...]] = set()
        for w in caught:
            key = (w.category, str(w.message))  # the trial and the real one warn from different lines
            if key not in seen:
                seen.add(key)
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
