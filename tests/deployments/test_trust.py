"""The trust boundary, as a caller who reaches the Prefect API and nothing else meets it: `prefect server start` behind
an auth string (with CSRF protection) and `icefloe serve`, driven through the REST API only.

Served with no allowance, a run whose parameters name code (a callable source that would leave a marker file, a
validation hook and a publish check that would leave a trace) or a Dask scheduler (a TCP listener of this test) is
refused before anything is imported, connected or written, its message naming the setting that would allow it.
Served again with one function allowed, that function runs and the others are still refused. The command, run by
a user in their own process, runs the same callable source as before."""

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import xarray as xr

from tasks.storage.synthetic import SyntheticDataset
from tests.conftest import committed
from tests.deployments.stack import AUTH_STRING, Stack, closed_api, wait_for_api
from tests.processes import command_env, free_port, icefloe, processes, started_prefect_home, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SMALL = {"kind": "synthetic", "ntime": 24, "nlat": 19, "nlon": 36, "time_chunk": 24}
MARKED = SyntheticDataset(ntime=24, nlat=19, nlon=36, time_chunk=24)  # what tests.sources:leave_marker returns


@dataclass(frozen=True)
class Server:
    api: str
    env: dict[str, str]
    root: Path

    @property
    def trace(self) -> Path:
        return self.root / "trace"  # where tests.sources:leave_trace would write (ICEFLOE_TEST_TRACE)

    @property
    def allowed(self) -> Path:
        return self.root / "allowed"  # the only prefix the runner allows targets under


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("trust")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = command_env(started_prefect_home(root / "prefect-home"), PREFECT_API_URL=api, PREFECT_UI_ENABLED="false")
    env |= closed_api() | {"ICEFLOE_TEST_TRACE": str(root / "trace"), "ICEFLOE_ALLOWED_TARGETS": f"{root}/allowed/"}
    with processes() as start:
        start("prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), env=env,
              log=root / "prefect-server.log")  # fmt: skip
        wait_for_api(api, env)
        yield Server(api, env, root)


@contextmanager
def served(server: Server, **allowance: str) -> Iterator[Stack]:
    """`icefloe serve` with the environment the operator gives it (`allowance`), stopped at the end."""
    env = server.env | allowance
    logs = server.root / f"serve-{uuid.uuid4().hex[:8]}"
    logs.mkdir()
    with processes() as start:
        start("icefloe", "serve", env=env, log=logs / "icefloe-serve.log")
        stack = Stack(server.api, env, "", logs)
        wait_for(lambda: stack.deployment_id("write-dataset", "write-dataset"), "deployments served", timeout=180)
        yield stack


class Listener:
    """A TCP listener on loopback that counts the connections it gets: where a run would find a Dask scheduler."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.socket.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()


def run_of(stack: Stack, parameters: dict[str, Any]) -> str:
    response = stack.create_run(stack.deployment_id("write-dataset", "write-dataset"), parameters)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def refusal(stack: Stack, run_id: str) -> str:
    """The message a refused run ended with; it must have failed."""
    run = stack.wait_until_done(run_id)
    assert run["state_type"] == "FAILED", stack.log_text(run_id)
    return str(run["state"]["message"])


def test_the_command_records_its_run_in_an_api_behind_an_auth_string(server: Server, tmp_path: Path) -> None:
    env = command_env(tmp_path / "home", PREFECT_API_URL=server.api, PREFECT_API_AUTH_STRING=AUTH_STRING)
    target = tmp_path / "repo"

    done = icefloe("write", json.dumps(SMALL), str(target), env=env, cwd=tmp_path)
    refused = icefloe("write", json.dumps(SMALL), str(tmp_path / "other"), cwd=tmp_path,
                      env={**env, "PREFECT_API_AUTH_STRING": "icefloe-test:guessed"})  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert f"see the run: {server.api.removesuffix('/api')}/runs/flow-run/" in done.stdout
    xr.testing.assert_identical(committed(str(target)), SyntheticDataset(**SMALL).open().compute())
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert refused.stderr.strip().splitlines()[-1] == (
        f"icefloe write: failed, nothing was written: the Prefect API at {server.api} answered 401 Unauthorized: its "
        "server takes an auth string (PREFECT_SERVER_API_AUTH_STRING); give the same user:password in "
        "PREFECT_API_AUTH_STRING"
    )
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "other").exists()
    assert "guessed" not in refused.stderr + refused.stdout


def assert_no_way_in_without_the_auth_string(server: Server, stack: Stack) -> None:
    """An unauthenticated create_flow_run is refused and creates nothing."""
    deployment = stack.deployment_id("write-dataset", "write-dataset")
    before = len(stack.runs_of(deployment))
    url = f"{server.api}/deployments/{deployment}/create_flow_run"
    csrf = stack.csrf_headers  # a token an authenticated client was issued: still no way in without the string

    bare = httpx.post(url, json={"parameters": {}})
    anonymous = httpx.post(url, json={"parameters": {}}, headers=csrf)
    wrong = httpx.post(url, json={"parameters": {}}, headers=csrf, auth=("icefloe-test", "guessed"))
    no_token = httpx.get(f"{server.api}/csrf-token", params={"client": "an-attacker"})

    assert bare.status_code == 403, bare.text  # CSRF protection answers first
    assert anonymous.status_code == 401, anonymous.text
    assert wrong.status_code == 401, wrong.text
    assert no_token.status_code == 401, no_token.text
    assert len(stack.runs_of(deployment)) == before


def test_with_no_allowance_code_and_schedulers_are_refused_before_anything_runs(server: Server) -> None:
    """And, served behind its auth string: a call without it gets in nowhere; a run that names nothing the
    runner does not allow completes as before."""
    listener = Listener()
    marker = server.root / "marker"
    targets = {name: server.allowed / f"{name}.icechunk" for name in ("source", "hook", "check", "scheduler")}
    hostile = {
        "source": {"source": {"kind": "callable", "function": "tests.sources:leave_marker",
                              "keywords": {"marker": str(marker)}}},
        "hook": {"source": SMALL, "validation_hook": "tests.sources:leave_trace"},
        "check": {"source": SMALL, "publish": True, "publish_check": "tests.sources:leave_trace"},
        "scheduler": {"source": SMALL, "options": {"dask_address": listener.address}},
    }  # fmt: skip
    says = {
        "source": ["source.function 'tests.sources:leave_marker'", "ICEFLOE_ALLOWED_FUNCTIONS", "icefloe.functions"],
        "hook": ["validation_hook 'tests.sources:leave_trace'", "ICEFLOE_ALLOWED_FUNCTIONS"],
        "check": ["publish_check 'tests.sources:leave_trace'", "ICEFLOE_ALLOWED_FUNCTIONS"],
        "scheduler": [f"options.dask_address '{listener.address}'", "ICEFLOE_ALLOWED_DASK_ADDRESSES"],
    }

    with served(server) as stack:
        assert_no_way_in_without_the_auth_string(server, stack)
        started = {name: run_of(stack, {"repo": str(targets[name]), **p}) for name, p in hostile.items()}
        plain = run_of(stack, {"repo": str(server.allowed / "plain.icechunk"), "source": SMALL})
        for name, run_id in started.items():
            message = refusal(stack, run_id)
            for fragment in says[name]:
                assert fragment in message, message
        done = stack.wait_until_done(plain)  # what names nothing it may not: as before, authenticated
        assert done["state_type"] == "COMPLETED", stack.log_text(plain)
        xr.testing.assert_identical(committed(str(server.allowed / "plain.icechunk")), SyntheticDataset(**SMALL).open())

    assert not marker.exists(), "the callable source ran"
    assert not server.trace.exists(), "a hook or check ran"
    assert listener.connections == 0, "a run connected to the scheduler it named"
    assert not [t for t in targets.values() if t.exists()], "a refused run created its repository"


def test_with_the_allowance_the_allowed_function_runs_and_the_others_are_still_refused(server: Server) -> None:
    marker = server.root / "allowed-marker"
    target = server.allowed / "allowed-source.icechunk"
    source = {"kind": "callable", "function": "tests.sources:leave_marker", "keywords": {"marker": str(marker)}}

    with served(server, ICEFLOE_ALLOWED_FUNCTIONS="tests.sources:leave_marker") as stack:
        allowed = stack.wait_until_done(run_of(stack, {"repo": str(target), "source": source}))
        hooked = run_of(stack, {"repo": str(server.allowed / "hooked.icechunk"), "source": source,
                                "validation_hook": "tests.sources:leave_trace"})  # fmt: skip
        message = refusal(stack, hooked)

    assert allowed["state_type"] == "COMPLETED", stack.log_text(allowed["id"])
    assert marker.exists()
    xr.testing.assert_identical(committed(str(target)), MARKED.open().compute())
    assert "validation_hook 'tests.sources:leave_trace'" in message
    assert not server.trace.exists()
    assert not (server.allowed / "hooked.icechunk").exists()


def test_the_command_of_a_user_in_their_own_process_runs_the_callable_source_as_before(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    source = f'{{"kind": "callable", "function": "tests.sources:leave_marker", "keywords": {{"marker": "{marker}"}}}}'

    done = icefloe("write", source, str(tmp_path / "repo"), env=command_env(tmp_path / "home"), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert marker.exists()
    assert AUTH_STRING not in done.stdout + done.stderr
