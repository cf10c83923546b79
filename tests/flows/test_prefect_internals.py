"""Contract tests for flows/prefect_internals.py: they fail loudly when a Prefect upgrade moves what it relies on."""

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import httpx
import prefect.flow_engine
import pytest
from prefect import flow
from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

import flows.orchestrator  # installs the changes, as every icefloe flow module does
import flows.prefect_internals
from flows.prefect_internals import send_heartbeats_without_waiting
from tests.processes import wait_for


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
