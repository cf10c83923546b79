"""Contract tests for flows/prefect_internals.py: they fail loudly when a Prefect upgrade moves what it relies on."""

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import httpx
import prefect.flow_engine
import pytest
from prefect import flow, get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect_dask import DaskTaskRunner

import flows.prefect_internals
import flows.write_dataset  # installs the changes, as every icefloe flow module does
from flows.prefect_internals import send_heartbeats_without_waiting, submit_many
from tests.processes import wait_for


def _parameters(function: object) -> set[str]:
    return set(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_submit_many_still_finds_what_it_calls_with_the_keywords_it_passes() -> None:
    from prefect.context import AssetContext, serialize_context
    from prefect.task_engine import run_task_sync
    from prefect_dask.task_runners import PrefectDaskFuture

    run_task = {"task", "task_run_id", "parameters", "return_type", "dependencies", "context"}
    assert run_task <= _parameters(run_task_sync)
    assert {"task", "task_run_id", "task_inputs", "copy_to_child_ctx"} <= _parameters(AssetContext.from_task_and_inputs)
    assert callable(AssetContext.serialize)
    assert isinstance(serialize_context(), dict)
    assert {"wrapped_future", "task_run_id"} <= _parameters(PrefectDaskFuture)


@task(name="double")
def double(x: int) -> int:
    return 2 * x


def test_tasks_submitted_together_run_as_task_runs_with_their_own_ids(dask_address: str) -> None:
    @flow(task_runner=DaskTaskRunner(address=dask_address))
    def fan_out() -> list[tuple[UUID, int]]:
        runner = FlowRunContext.get().task_runner  # type: ignore[union-attr]
        futures = submit_many(runner, double, [{"x": 1}, {"x": 2}, {"x": 3}])
        return [(f.task_run_id, f.result()) for f in futures]

    results = fan_out()

    assert [value for _, value in results] == [2, 4, 6]

    def recorded() -> list[tuple[bool, str]] | None:  # task runs reach the API as events, a moment after they end
        with get_client(sync_client=True) as client:
            runs = [client.read_task_run(task_run_id) for task_run_id, _ in results]
        seen = [(run.name.startswith("double"), run.state_type.value) for run in runs if run.state_type]
        return seen if len(seen) == len(runs) and all(state == "COMPLETED" for _, state in seen) else None

    assert wait_for(recorded, "the task runs' completed states", timeout=30) == [(True, "COMPLETED")] * 3


@task(name="flow-parameters")
def flow_parameters() -> object:
    return FlowRunContext.get().parameters  # type: ignore[union-attr]


def test_tasks_submitted_together_do_not_carry_the_flows_parameters(dask_address: str) -> None:
    """A Python caller's flow parameters can be a whole dask graph: a block task gets only its own slice."""

    @flow(task_runner=DaskTaskRunner(address=dask_address))
    def fan_out(graph: list[int]) -> tuple[object, object]:
        runner = FlowRunContext.get().task_runner  # type: ignore[union-attr]
        (future,) = submit_many(runner, flow_parameters, [{}])
        return future.result(), FlowRunContext.get().parameters  # type: ignore[union-attr]

    in_task, in_flow = fan_out(list(range(10_000)))

    assert in_task is None
    assert in_flow == {"graph": list(range(10_000))}  # the flow's own context keeps them


@task(name="what-the-worker-has")
def what_the_worker_has() -> tuple[int, int, int, int, object]:
    import os
    import threading

    from prefect.context import SettingsContext
    from prefect.settings import PREFECT_TASKS_DEFAULT_RETRIES

    get_run_logger().info("from a block task")
    client = get_client(sync_client=True)
    settings = id(SettingsContext.get().settings)  # type: ignore[union-attr]
    retries = PREFECT_TASKS_DEFAULT_RETRIES.value()
    return os.getpid(), threading.get_ident(), id(client), settings, (retries, str(client.api_url))


def test_a_worker_thread_validates_settings_and_opens_a_client_once_per_settings(dask_address: str) -> None:
    """Prefect's engine rebuilt Settings and opened two clients for every task run; each worker thread now does it
    once for each distinct settings, and every task still sees the flow's own settings and logs to its task run."""
    from prefect.client.schemas.filters import LogFilter, LogFilterTaskRunId
    from prefect.settings import PREFECT_TASKS_DEFAULT_RETRIES

    Seen = list[tuple[UUID, tuple[int, int, int, int, object]]]

    @flow(task_runner=DaskTaskRunner(address=dask_address))
    def fan_outs() -> list[Seen]:
        runner = FlowRunContext.get().task_runner  # type: ignore[union-attr]

        def fan_out() -> Seen:
            return [(f.task_run_id, f.result()) for f in submit_many(runner, what_the_worker_has, [{}] * 8)]

        first, second = fan_out(), fan_out()
        with temporary_settings(updates={PREFECT_TASKS_DEFAULT_RETRIES: 8}):
            return [first, second, fan_out()]

    # the flow's API spelled otherwise than this process's: the tasks' clients must be made with the flow's settings
    flows_api = PREFECT_API_URL.value().replace("127.0.0.1", "localhost")
    with temporary_settings(updates={PREFECT_TASKS_DEFAULT_RETRIES: 7, PREFECT_API_URL: flows_api}):
        first, second, changed = fan_outs()

    def per_thread(runs: Seen) -> dict[tuple[int, int], set[tuple[int, int, object]]]:
        seen: dict[tuple[int, int], set[tuple[int, int, object]]] = {}
        for _, (pid, thread, client, settings, retries) in runs:
            seen.setdefault((pid, thread), set()).add((client, settings, retries))
        return seen

    one, two, three = per_thread(first), per_thread(second), per_thread(changed)
    assert len(one) == 2  # both worker threads
    assert all(len(seen) == 1 for seen in [*one.values(), *three.values()])  # one client and settings each
    assert two == one  # the same settings: the same validated settings and client on each thread
    seen_settings = {setting for seen in [*one.values(), *three.values()] for (_, _, setting) in seen}
    assert seen_settings == {(7, f"{flows_api}/"), (8, f"{flows_api}/")}
    for thread, seen in three.items():  # other settings: a new client and settings on that thread
        assert not {ids[:2] for ids in seen} & {ids[:2] for ids in one.get(thread, set())}

    def logged() -> list[object] | None:
        with get_client(sync_client=True) as client:
            ids = [run_id for run_id, _ in first + second + changed]
            logs = client.read_logs(LogFilter(task_run_id=LogFilterTaskRunId(any_=ids)))
        found = {log.task_run_id for log in logs if log.message == "from a block task"}
        return sorted(found) if found == set(ids) else None

    assert wait_for(logged, "every task run's log line", timeout=30)


def test_the_engine_still_enters_heartbeats_through_the_function_icefloe_replaces() -> None:
    original = inspect.signature(flows.prefect_internals._send_heartbeats)
    assert list(original.parameters) == ["engine", "join_on_exit"]
    source = inspect.getsource(prefect.flow_engine.FlowRunEngine)
    assert "_send_heartbeats(self)" in source  # looked up in the module at each run: the replacement is used
    assert prefect.flow_engine._send_heartbeats is send_heartbeats_without_waiting


@flow
def beating() -> UUID:
    from prefect.runtime import flow_run

    return UUID(flow_run.id)


def test_the_engine_is_told_not_to_join_the_heartbeat_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    @contextmanager
    def recorder(engine: object, join_on_exit: bool = True) -> Iterator[None]:
        calls.append(join_on_exit)
        yield

    monkeypatch.setattr(flows.prefect_internals, "_send_heartbeats", recorder)
    with send_heartbeats_without_waiting(object()):
        pass
    assert calls == [False]


def test_a_flow_run_still_sends_its_heartbeat() -> None:
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        run_id = beating()

    def heartbeat() -> list[object] | None:
        body = {"filter": {"event": {"name": ["prefect.flow-run.heartbeat"]},
                           "resource": {"id": [f"prefect.flow-run.{run_id}"]}}, "limit": 10}  # fmt: skip
        events = httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json=body).raise_for_status().json()
        return events["events"] or None

    assert wait_for(heartbeat, "the run's heartbeat event", timeout=60)
