"""Every use icefloe makes of Prefect's private internals, in one place. Each has a contract test
(tests/flows/test_prefect_internals.py) that fails as soon as a Prefect upgrade moves what it relies on; pyproject.toml
admits the Prefect releases those tests passed on (3.8.8 to 3.9.x: `make test` runs them on both ends).

- `PrefectDaskClient.submit` serializes the whole run context (all Prefect settings) and tokenizes it for every
  task: ~150-200 ms of flow-process CPU per task on a 2-core machine, which competes with the workers. The context
  is the same for every block of a fan-out, so `submit_many` serializes it once (`serialize_context`); each task
  still gets its own task run id and asset context (`AssetContext`), runs through Prefect's own `run_task_sync` on
  the worker (states, retries, logs) and comes back as a `PrefectDaskFuture`. The flow's parameters are left out of
  the context it ships: they may hold a whole dask graph.

- On the worker, Prefect rebuilds the whole `Settings` model from that context (~25 ms of CPU, reading the
  environment) and opens two new API clients (an SSL context each) for every task run: a no-op task run cost a
  worker thread ~90 ms, ~11 ms without them. A worker thread does both once per distinct settings instead
  (`_thread_context`): they are validated and a client is opened in a context of its own, in which the thread runs
  every task with those settings, so a warm cluster pays it once, not per flow run; Prefect's `get_client` finds
  the open client there, and the task's context carries no settings to rebuild. A thread's previous client is
  closed when tasks with other settings (another API, another key) arrive.

- A run that started its own temporary server delivers the logs and events still queued before it stops that
  server (`deliver_queued_logs_and_events`): Prefect's log handler and events worker would deliver them at the
  process's exit, to a server that is gone by then.

- A flow run's heartbeat thread sleeps in whole seconds and the sync engine joins it when the run ends, so every
  flow run waited up to a second after its last line (0.6-0.8 s measured on each run here). The engine is told not
  to wait, as Prefect's async engine already does: the thread is a daemon, sees the stop event within a second and
  ends by itself. Heartbeats are emitted as before.
"""

import contextvars
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import prefect.flow_engine
from prefect import Task
from prefect.context import AssetContext, SettingsContext, SyncClientContext, serialize_context
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogHandler
from prefect.task_engine import run_task_sync
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

_send_heartbeats = prefect.flow_engine._send_heartbeats


@dataclass
class _ThreadSettings:
    key: str  # the settings' digest
    context: contextvars.Context
    entered: ExitStack


_thread = threading.local()


def _thread_context(key: str, settings: dict[str, Any]) -> contextvars.Context:
    """This worker thread's context for tasks with these settings (`key`, their digest): validated, a client open."""
    current: _ThreadSettings | None = getattr(_thread, "current", None)
    if current is not None and current.key == key:
        return current.context
    if current is not None:
        _thread.current = None
        current.context.run(current.entered.close)
    entered = ExitStack()

    def enter() -> None:  # all in the new context: the client is made with these settings, not the thread's
        try:
            if settings:
                entered.enter_context(SettingsContext(**settings))
            entered.enter_context(SyncClientContext())
        except BaseException:
            entered.close()
            raise

    context = contextvars.Context()
    context.run(enter)
    _thread.current = _ThreadSettings(key, context, entered)
    return context


def _run_task(settings_key: str, context: dict[str, Any], **kwargs: Any) -> Any:
    without_settings = {**context, "settings_context": {}}  # they are entered in the thread's context already
    thread_context = _thread_context(settings_key, context["settings_context"])
    return thread_context.run(lambda: run_task_sync(context=without_settings, **kwargs))


def submit_many[R](
    runner: DaskTaskRunner, task: Task[..., R], parameter_sets: list[dict[str, Any]]
) -> list[PrefectDaskFuture[R]]:
    """Submit `task` once per parameter set; the futures resolve to the tasks' final Prefect states."""
    shared = serialize_context()
    # The flow run's context carries the flow's own parameters: for a Python caller, the source's whole dask graph,
    # which every task would carry too (10,000 blocks of a 10,000-chunk array: 2 GB in the flow process). No block
    # task reads them; each gets only its own slice.
    shared["flow_run_context"].pop("parameters", None)
    settings = json.dumps(shared["settings_context"], sort_keys=True, default=str)
    settings_key = hashlib.sha256(settings.encode()).hexdigest()
    futures: list[PrefectDaskFuture[R]] = []
    for parameters in parameter_sets:
        task_run_id = uuid4()
        inputs: dict[str, set[Any]] = {name: set() for name in parameters}
        asset_context = AssetContext.from_task_and_inputs(
            task=task, task_run_id=task_run_id, task_inputs=inputs, copy_to_child_ctx=True
        )
        future = runner.client.submit(
            _run_task,
            key=f"{task.name}-{task_run_id}",
            pure=False,  # the key is unique already: do not tokenize the context
            settings_key=settings_key,
            task=task,
            task_run_id=task_run_id,
            parameters=parameters,
            return_type="state",
            dependencies=inputs,
            context={**shared, "asset_context": asset_context.serialize()},
        )
        futures.append(PrefectDaskFuture[R](wrapped_future=future, task_run_id=task_run_id))
    return futures


def deliver_queued_logs_and_events(timeout: float = 10) -> None:
    APILogHandler().flush()
    EventsWorker.drain_all(timeout=timeout)


@contextmanager
def send_heartbeats_without_waiting(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    with _send_heartbeats(engine, join_on_exit=False):
        yield


def install() -> None:
    prefect.flow_engine._send_heartbeats = send_heartbeats_without_waiting
