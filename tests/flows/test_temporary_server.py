"""The temporary Prefect server of one command: it answers, it keeps the command's run, and it never outlives the
command, even one killed with SIGKILL."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.temporary_server import TemporaryServer
from tests.processes import command_env, icefloe, started_prefect_home

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SMALL = '{"kind": "synthetic", "ntime": 48, "nlat": 19, "nlon": 36, "time_chunk": 24}'
HOLDER = """
import sys, time
from flows.temporary_server import TemporaryServer
server = TemporaryServer.start()
server.api_url()
print(server.process.pid, flush=True)
time.sleep(600)
"""


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = started_prefect_home(tmp_path / "prefect-home")
    monkeypatch.setenv("PREFECT_HOME", str(home))
    return home


def test_a_write_with_a_temporary_server_is_kept_in_its_prefect_home(tmp_path: Path, home: Path) -> None:
    done = icefloe("write", SMALL, str(tmp_path / "repo"), "--temporary-server", env=command_env(home), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    run_id = re.findall(r"flow run ([0-9a-f-]{36}) is kept in PREFECT_HOME's database", done.stdout)[0]
    server = TemporaryServer.start()  # a later server on the same home shows the run
    try:
        api = server.api_url()
        run = httpx.get(f"{api}/flow_runs/{run_id}").raise_for_status().json()
        body = {"flow_runs": {"id": {"any_": [run_id]}}, "limit": 50, "offset": 0}
        task_runs = httpx.post(f"{api}/task_runs/filter", json=body).raise_for_status().json()
    finally:
        server.stop()
    assert run["state_type"] == "COMPLETED"
    assert any(t["name"].startswith("write ") and t["state_type"] == "COMPLETED" for t in task_runs)


def test_the_server_stops_when_its_command_is_killed(home: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    server_pid = int(holder.stdout.readline())

    holder.send_signal(signal.SIGKILL)  # no `finally`, no atexit: only the closed pipe tells the server
    holder.wait()

    assert gone(server_pid, timeout=30)


def test_a_terminals_ctrl_c_does_not_reach_it(home: Path) -> None:
    """The server runs in a session of its own: the command stops it after its run has released what it held."""
    server = TemporaryServer.start()
    try:
        server.api_url()
        assert os.getsid(server.process.pid) != os.getsid(0)
    finally:
        server.stop()
    assert server.process.poll() is not None
