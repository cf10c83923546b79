"""A served stack as the tests drive it: through the Prefect REST API, as another system would, closed as a team
deploys it (docker-compose.yml): the API behind an auth string, with CSRF protection, every client given the string,
and the runner allowed what the tests' runs name."""

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
from distributed import Client

from tests.conftest import S3_ENV
from tests.processes import free_port, processes, started_prefect_home, wait_for

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

AUTH_STRING = "icefloe-test:api-secret-5b0e7c41"
"""The stack API's basic-auth `user:password` (the server's PREFECT_SERVER_API_AUTH_STRING, every client's
PREFECT_API_AUTH_STRING)."""


def closed_api(auth_string: str = AUTH_STRING) -> dict[str, str]:
    """The environment of a Prefect server behind `auth_string` with CSRF protection, and of its clients."""
    return {
        "PREFECT_SERVER_API_AUTH_STRING": auth_string,
        "PREFECT_API_AUTH_STRING": auth_string,
        "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true",
    }


def allowance(root: Path, *buckets: str) -> dict[str, str]:
    """What a test stack's runner allows its deployment runs: the tests' functions, and repositories and sources
    under `root` (the session's temporary directory) and in the `buckets`."""
    prefixes = ",".join([f"{root}/", *(f"s3://{bucket}/" for bucket in buckets)])
    return {
        "ICEFLOE_ALLOWED_FUNCTIONS": "tests.sources:*",
        "ICEFLOE_ALLOWED_TARGETS": prefixes,
        "ICEFLOE_ALLOWED_SOURCES": prefixes,
    }


@dataclass
class Stack:
    api: str
    env: dict[str, str]
    ingest_repo: str
    logs: Path
    auth_string: str = AUTH_STRING
    csrf_client: str = field(default_factory=lambda: str(uuid.uuid4()))

    @cached_property
    def client(self) -> httpx.Client:
        """The API as an authenticated client sees it; a write carries a CSRF token, fetched once."""
        user, _, password = self.auth_string.partition(":")
        return httpx.Client(base_url=self.api, auth=(user, password), timeout=30)

    @cached_property
    def csrf_headers(self) -> dict[str, str]:
        answer = self.client.get("/csrf-token", params={"client": self.csrf_client})
        if answer.status_code == 422:  # "CSRF protection is disabled"
            return {}
        token = answer.raise_for_status().json()["token"]
        return {"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": self.csrf_client}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def deployment_id(self, flow: str, name: str) -> str:
        response = self.get(f"/deployments/name/{flow}/{name}")
        return str(response.raise_for_status().json()["id"])

    def automation(self, name: str) -> str | None:
        """The id of the enabled automation called `name`, once the API has it."""
        automations = self.post("/automations/filter", {}).raise_for_status().json()
        return next((a["id"] for a in automations if a["name"] == name and a["enabled"]), None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """A POST to the API, retried while the server answers 503 (busy: SQLite on a 2-core machine running the
        whole stack)."""

        def answer() -> httpx.Response | None:
            response = self.client.post(path, json=body, headers=self.csrf_headers)
            return None if response.status_code == 503 else response

        return wait_for(answer, f"the API to answer POST {path}", timeout=60)

    def create_run(self, deployment_id: str, parameters: dict[str, Any]) -> httpx.Response:
        """What `curl -X POST $PREFECT_API_URL/deployments/$ID/create_flow_run -d '{"parameters": ...}'` does."""
        return self.post(f"/deployments/{deployment_id}/create_flow_run", {"parameters": parameters})

    def wait_until_done(self, run_id: str, timeout: float = 300) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run: dict[str, Any] = self.get(f"/flow_runs/{run_id}").raise_for_status().json()
            return run if run["state_type"] in TERMINAL else None

        return wait_for(finished, f"flow run {run_id} to finish (logs in {self.logs})", timeout)

    def runs_of(self, deployment_id: str) -> list[dict[str, Any]]:
        body = {"deployments": {"id": {"any_": [deployment_id]}}, "sort": "START_TIME_ASC", "limit": 200, "offset": 0}
        runs: list[dict[str, Any]] = self.post("/flow_runs/filter", body).raise_for_status().json()
        return runs

    @contextmanager
    def schedule_paused(self, deployment_id: str) -> Iterator[None]:
        """The stack's ingest runs every 10 s, one at a time, a new one cancelled while another works: paused (its
        scheduled runs deleted) and the last scheduled one finished, a run started meanwhile cannot be cancelled."""
        self.post(f"/deployments/{deployment_id}/pause_deployment").raise_for_status()
        try:
            working = {"PENDING", "RUNNING", "CANCELLING"}
            wait_for(lambda: not {r["state_type"] for r in self.runs_of(deployment_id)} & working or None,
                     "the scheduled ingest runs to finish", timeout=120)  # fmt: skip
            yield
        finally:
            self.post(f"/deployments/{deployment_id}/resume_deployment").raise_for_status()

    def events(self, name: str, run_id: str) -> list[dict[str, Any]] | None:
        """The events called `name` related to the flow run `run_id` (None until there is one)."""
        body = {"filter": {"event": {"name": [name]}, "related": {"id": [f"prefect.flow-run.{run_id}"]}}}
        events: list[dict[str, Any]] = self.post("/events/filter", body).raise_for_status().json()["events"]
        return events or None

    def log_text(self, run_id: str) -> str:
        body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200, "offset": 0, "sort": "TIMESTAMP_ASC"}
        logs = self.post("/logs/filter", body).raise_for_status().json()
        return "\n".join(entry["message"] for entry in logs)


def start_api_and_cluster(
    start: Callable[..., Any], logs: Path, env: dict[str, str], workers: int, threads: int, ui: bool = False
) -> tuple[str, dict[str, str]]:
    """`prefect server start` (with its UI when `ui`; behind `AUTH_STRING`, with CSRF protection), `dask scheduler`
    and `workers` `dask worker`s on free loopback ports, started with `start` (a `processes()` starter) and waited
    for; the API's URL and the environment every program then gets (`env` last: it may open or allow more)."""
    port, dask_port = free_port(), free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        "PREFECT_HOME": str(started_prefect_home(logs / "prefect-home")),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": str(ui).lower(),
        "ICEFLOE_DASK_ADDRESS": f"tcp://127.0.0.1:{dask_port}",
        **closed_api(),
        **env,
    }
    start("prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), env=env,
          log=logs / "prefect-server.log")  # fmt: skip
    start("dask", "scheduler", "--host", "127.0.0.1", "--port", str(dask_port), "--no-dashboard", env=env,
          log=logs / "dask-scheduler.log")  # fmt: skip
    for i in range(1, workers + 1):
        start("dask", "worker", env["ICEFLOE_DASK_ADDRESS"], "--nthreads", str(threads), "--no-dashboard",
              "--preload", "tasks.writing.worker", env=env, log=logs / f"dask-worker-{i}.log")  # fmt: skip
    wait_for_api(api, env)
    with Client(env["ICEFLOE_DASK_ADDRESS"], timeout=120) as client:
        client.wait_for_workers(workers, timeout=120)
    return api, env


def wait_for_api(api: str, env: dict[str, str]) -> None:
    """Until `prefect server start` answers, as a client of `env` (its auth string, if any) would be answered."""
    auth_string = env.get("PREFECT_API_AUTH_STRING")
    auth = tuple(auth_string.split(":", 1)) if auth_string else None
    wait_for(lambda: httpx.get(f"{api}/health", auth=auth).raise_for_status(), "prefect server start", timeout=180)


@contextmanager
def served_stack(
    s3_endpoint: str, logs: Path, allow: dict[str, str], ingest: dict[str, Any] | None = None, ui: bool = False
) -> Iterator[Stack]:
    """The docker-compose topology as local processes: `prefect server start` (with its UI when `ui`), `dask
    scheduler`, two `dask worker`s and `icefloe serve` (with `ingest` as its scheduled ingest's parameters, every
    10 s; allowed what `allow` gives), against the S3 server."""
    schedule = ["--ingest-interval", "10", "--ingest-parameters", json.dumps(ingest)] if ingest else []
    with processes() as start:
        api, env = start_api_and_cluster(
            start,
            logs,
            {
                "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
                "PREFECT_RUNNER_POLL_FREQUENCY": "2",
                **S3_ENV,
                "AWS_ENDPOINT_URL": s3_endpoint,
                **allow,
            },
            workers=2,
            threads=1,
            ui=ui,
        )
        start("icefloe", "serve", *schedule, env=env, log=logs / "icefloe-serve.log")
        stack = Stack(api, env, ingest["repo"] if ingest else "", logs)
        for name in ("write-dataset", "ingest", "backfill", "validate"):
            wait_for(lambda n=name: stack.deployment_id(n, n), f"deployment {name} served", timeout=180)
        # serve creates validate's trigger after the deployments: a commit before it exists triggers nothing
        wait_for(lambda: stack.automation("validate every commit"), "validate's trigger", timeout=60)
        yield stack
