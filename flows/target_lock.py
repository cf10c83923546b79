"""One run at a time per repository and branch: a Prefect global concurrency limit of 1, named after the target.

Two runs on one branch could each decide what to append from the same tip (and append it twice), or both resize
the same arrays (a conflict no rebase can reconcile). Holding the target's slot from reading the tip to the commit
makes concurrent runs on one target land one after the other; runs on other targets still go in parallel.
"""

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound


def lock_name(repo: str, branch: str) -> str:
    """Limit names must be short and plain; the digest keeps paths and URLs out of them."""
    return f"icefloe-target-{hashlib.sha256(f'{repo}\n{branch}'.encode()).hexdigest()[:20]}"


def _ensure_limit(name: str) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it meanwhile
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


@contextmanager
def target_lock(repo: str, branch: str) -> Iterator[None]:
    """Hold the only slot of `repo`'s `branch` for the duration; wait while another run holds it."""
    name = lock_name(repo, branch)
    _ensure_limit(name)
    logger = get_run_logger()
    logger.info("waiting for target %s (branch %s): limit %s", repo, branch, name)
    started = time.perf_counter()
    with concurrency(name, occupy=1, strict=True):
        logger.info("holding target %s (branch %s) after %.1f s", repo, branch, time.perf_counter() - started)
        yield
