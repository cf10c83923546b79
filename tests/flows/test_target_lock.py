"""The target lock's name and its judgement of a recorded holder (the waits themselves run in test_interrupt)."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse
from uuid import UUID, uuid4

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate, VariableCreate
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.variables import Variable

from flows.target_lock import (
    _ensure_limit,
    _process_start,
    _this_holder,
    holder_is_gone,
    lock_name,
    remove_record,
    target_lock,
)
from tests.fault_proxy import Faults, fault_proxy
from tests.processes import wait_for


def test_one_target_has_one_lock_however_it_is_spelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spellings = ["data/x.icechunk", "./data/x.icechunk", str(tmp_path / "data" / "x.icechunk"), "data//x.icechunk/"]
    assert len({lock_name(s, "main") for s in spellings}) == 1
    assert lock_name("s3://b/p", "main") == lock_name("s3://b/p/", "main")
    assert lock_name("data/x.icechunk", "main") != lock_name("data/x.icechunk", "dev")
    assert lock_name("s3://b/p", "main") != lock_name("s3://b/q", "main")


def test_a_holder_whose_process_has_ended_is_gone_and_a_live_one_is_not() -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = {"flow_run_id": str(uuid4()), "host": socket.gethostname(), "pid": int(ended.stdout), "process_start": "1"}
    assert holder_is_gone(dead) == f"its process {dead['pid']} has ended"

    reused_pid = {**_this_holder(uuid4()), "process_start": "0"}  # this pid, but another process's start time
    assert holder_is_gone(reused_pid) == f"its process {os.getpid()} has ended"
    assert _process_start(os.getpid()) is not None


def test_the_running_flow_that_holds_the_target_is_not_gone_and_once_it_has_ended_it_is() -> None:
    @flow
    def holding() -> tuple[dict[str, object], str | None]:
        context = FlowRunContext.get()
        assert context is not None
        assert context.flow_run is not None
        holder = _this_holder(context.flow_run.id)
        return holder, holder_is_gone(holder)

    holder, while_running = holding()

    assert while_running is None
    elsewhere = {**holder, "host": "another-host"}  # its process cannot be looked at: its flow run's state decides
    assert holder_is_gone(elsewhere) == "its flow run is COMPLETED"


def test_a_record_the_server_is_too_busy_to_remove_is_removed_at_once_not_after_the_clients_backoff() -> None:
    """Prefect's server on SQLite answers 503 to a delete that another write overtook; its client tries again ~2 s
    later (1.6 s at the least), which every such run paid at its end. The record goes within a second."""
    name = f"icefloe-test-{uuid4().hex[:12]}"
    with get_client(sync_client=True) as client:
        client.create_variable(VariableCreate(name=name, value={"flow_run_id": str(uuid4())}))
    api = urlparse(PREFECT_API_URL.value())
    faults = Faults(busy=f"DELETE {api.path}/variables/name/{name}", busy_times=2)
    with (
        fault_proxy(f"{api.scheme}://{api.netloc}", faults) as proxy,
        temporary_settings(updates={PREFECT_API_URL: f"{proxy}{api.path}"}),
    ):
        remove_record(name)
        remove_record(name)  # gone already: nothing to do

    assert Variable.get(name) is None
    assert len(faults.busy_seen) == 4  # two answered 503, the third removed it, the fourth found nothing
    assert faults.busy_seen[2] - faults.busy_seen[0] < 1.0


def test_a_slot_left_taken_with_no_holder_recorded_is_freed_for_the_next_run() -> None:
    """Found by the fault campaign (seeds 36 and 55): a holder killed between taking the target's slot and recording
    itself (or between removing its record and releasing the slot) left the slot taken with no record, and the next
    run waited until the lease lapsed (70 s on a served API; with a temporary server it never does)."""
    repo = f"s3://bucket/{uuid4().hex}"
    name = lock_name(repo, "main")
    _ensure_limit(name)
    with get_client(sync_client=True) as client:  # the slot as such a holder leaves it
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=1))

    @flow
    def next_run() -> None:
        with target_lock(repo, "main"):
            pass

    state = next_run(return_state=True)  # before the fix: until pytest's timeout

    assert state.is_completed()
    said = "s with no holder recorded (one killed as it took or released the slot)"
    wait_for(lambda: said in _log_text(state.state_details.flow_run_id) or None, f"the run's log: {said}", 30)


def _log_text(flow_run_id: UUID | None) -> str:
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(entry.message for entry in logs)
