"""One run at a time per repository and branch: a Prefect global concurrency limit of 1, named after the target.

Two runs on one branch could each decide what to append from the same tip (and append it twice), or both resize
the same arrays (a conflict no rebase can reconcile). Holding the target's slot from reading the tip to the commit
makes concurrent runs on one target land one after the other; runs on other targets still go in parallel.

The slot must never outlive its holder. Prefect frees a slot whose lease lapses only on a server running its
services, and keeps leases in the server's memory: after a `kill -9`, or with a temporary server, the slot stays
taken for good. So the holder records itself (flow run, host, process) in a Prefect variable named like the limit,
and a run that finds the slot taken checks that record every few seconds: a holder whose process is gone (same
host) or whose flow run has ended is dead, and its slot is freed. A holder killed between taking the slot and
recording itself (or between removing its record and releasing the slot) leaves no record: a slot taken with none
for `UNRECORDED_SECONDS` is freed too. Two runs freeing the same dead holder's slot at once could both take it in a
window of milliseconds; the local repository's file lock and Icechunk's commit conflicts still keep the data whole
then.
"""

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    VariableCreate,
    VariableUpdate,
)
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.variables import Variable

from tasks.storage.target import canonical_target

CHECK_SECONDS = 2.0  # how often a waiting run looks at the holder
UNRECORDED_SECONDS = 10.0  # a slot taken this long with no holder recorded was left by a holder killed in between
QUICK_TRIES = (0.02, 0.05, 0.1, 0.2)  # pauses between the record's removal's own tries, in seconds
LEASE_SECONDS = 60  # the shortest lease Prefect grants: a server with services frees a dead holder's slot after it


def lock_name(repo: str, branch: str) -> str:
    """Limit names must be short and plain; the digest keeps paths and URLs out of them. One target has one name
    however it is spelled (`data/x`, `./data/x`, its absolute path)."""
    return f"icefloe-target-{hashlib.sha256(f'{canonical_target(repo)}\n{branch}'.encode()).hexdigest()[:20]}"


def _ensure_limit(name: str) -> None:
    # Read first: creating one that exists is a 409 that Prefect's server logs with a whole traceback.
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it meanwhile
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


def _record_holder(name: str, holder: dict[str, Any]) -> None:
    """The holder's record, in one API call (`Variable.set` reads the variable first); a dead holder's record, left
    behind, is overwritten."""
    with get_client(sync_client=True) as client:
        try:
            client.create_variable(VariableCreate(name=name, value=holder))
        except ObjectAlreadyExists:
            client.update_variable(VariableUpdate(name=name, value=holder))


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (tells a reused pid apart), None when no such process runs."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _this_holder(flow_run_id: UUID) -> dict[str, Any]:
    return {
        "flow_run_id": str(flow_run_id),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_start": _process_start(os.getpid()),
    }


def holder_is_gone(holder: dict[str, Any]) -> str | None:
    """Why the recorded holder can no longer hold the target, or None while it may."""
    if holder.get("host") == socket.gethostname() and _process_start(int(holder["pid"])) != holder["process_start"]:
        return f"its process {holder['pid']} has ended"
    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(UUID(holder["flow_run_id"])).state
        except ObjectNotFound:
            return "its flow run no longer exists"
    if state is not None and state.is_final():
        return f"its flow run is {state.type.value}"
    return None


@dataclass
class _Waiting:
    """What a waiting run has seen of the target's holders."""

    told: set[str] = field(default_factory=set)  # the holders it has named in its log
    unrecorded_since: float | None = None  # since when the slot has been taken with no holder recorded


def _free_if_holder_gone(name: str, logger: Any, waiting: _Waiting) -> None:
    holder = Variable.get(name)
    if not isinstance(holder, dict):
        _free_if_unrecorded_too_long(name, logger, waiting)
        return
    waiting.unrecorded_since = None
    why = holder_is_gone(holder)
    if why is None:
        if holder["flow_run_id"] not in waiting.told:
            waiting.told.add(holder["flow_run_id"])
            logger.info("held by flow run %s (process %s on %s)", holder["flow_run_id"], holder["pid"], holder["host"])
        return
    if Variable.get(name) != holder:  # another waiter freed it, and a new holder took it meanwhile
        return
    logger.warning("freeing the target from flow run %s: %s", holder["flow_run_id"], why)
    _free_slot(name)
    remove_record(name)


def _free_if_unrecorded_too_long(name: str, logger: Any, waiting: _Waiting) -> None:
    """A slot taken with no holder recorded is free by now, or its holder is between taking the slot and recording
    itself, or between removing its record and releasing the slot: a few API calls, seconds at the most. A holder
    killed there recorded nothing, and its slot would stay taken until its lease lapsed (on a server whose services
    run; with a temporary server, for good)."""
    now = time.monotonic()
    if waiting.unrecorded_since is None:
        waiting.unrecorded_since = now
    elif now - waiting.unrecorded_since >= UNRECORDED_SECONDS:
        logger.warning(
            "freeing the target: its slot was taken for %.0f s with no holder recorded (one killed as it took or "
            "released the slot)",
            now - waiting.unrecorded_since,
        )
        _free_slot(name)
        waiting.unrecorded_since = None


def _free_slot(name: str) -> None:
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))


def remove_record(name: str) -> None:
    """Delete the holder's record, as the run lets go of the target.

    Prefect's server reads a variable and then deletes it, in one transaction: on SQLite (a temporary server's, and
    `prefect server start`'s by default) one that another write overtook is answered 503, and Prefect's client tries
    again only ~2 s later. Five in twenty runs into one target paid those 2 s at their very end here (runs of 0.5 s
    that took 2.5 s); a few quick tries come first, then the client's own.
    """
    quick = {"event_hooks": {"response": [_raise_if_busy]}}  # before the client's retries can wait
    for pause in QUICK_TRIES:
        try:
            with get_client(sync_client=True, httpx_settings=quick) as client:
                client.delete_variable_by_name(name)
            return
        except ObjectNotFound:
            return
        except _Busy:
            time.sleep(pause)
    Variable.unset(name)


class _Busy(Exception):
    """The API answered 503: try again."""


def _raise_if_busy(response: httpx.Response) -> None:
    if response.status_code == 503:
        raise _Busy


@contextmanager
def target_lock(repo: str, branch: str) -> Iterator[None]:
    """Hold the only slot of `repo`'s `branch` for the duration; wait while another live run holds it."""
    name = lock_name(repo, branch)
    _ensure_limit(name)
    logger = get_run_logger()
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("target_lock holds a target for a flow run: call it inside one")
    run_id = context.flow_run.id
    logger.info("waiting for target %s (branch %s): limit %s", repo, branch, name)
    started = time.perf_counter()
    waiting = _Waiting()
    with ExitStack() as held:
        while True:
            try:
                held.enter_context(
                    concurrency(
                        name,
                        occupy=1,
                        strict=True,
                        timeout_seconds=CHECK_SECONDS,
                        lease_duration=LEASE_SECONDS,
                        holder=ConcurrencyLeaseHolder(type="flow_run", id=run_id),
                    )
                )
                break
            except TimeoutError:
                _free_if_holder_gone(name, logger, waiting)
        _record_holder(name, _this_holder(run_id))
        held.callback(remove_record, name)  # before the slot is released: a record always names a live holder
        logger.info("holding target %s (branch %s) after %.1f s", repo, branch, time.perf_counter() - started)
        yield
