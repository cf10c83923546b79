"""A served stack as the tests drive it: through the Prefect REST API, as another system would."""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from distributed import Client

from tests.conftest import S3_ENV
from tests.processes import free_port, processes, started_prefect_home, wait_for

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class Stack:
    api: str
    env: dict[str, str]
    ingest_repo: str
    logs: Path

    def deployment_id(self, flow: str, name: str) -> str:
        response = httpx.get(f"{self.api}/deployments/name/{flow}/{name}")
        return str(response.raise_for_status().json()["id"])

    def automation(self, name: str) -> str | None:
        """The id of the enabled automation called `name`, once the API has it."""
        automations = httpx.post(f"{self.api}/automations/filter", json={}, timeout=30).raise_for_status().json()
        return next((a["id"] for a in automations if a["name"] == name and a["enabled"]), None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """A POST to the API, retried while the server answers 503 (busy: SQLite on a 2-core machine running the
        whole stack)."""

        def answer() -> httpx.Response | None:
            response = httpx.post(f"{self.api}{path}", json=body, timeout=30)
            return None if response.status_code == 503 else response

        return wait_for(answer, f"the API to answer POST {path}", timeout=60)

    def create_run(self, deployment_id: str, parameters: dict[str, Any]) -> httpx.Response:
        """What `curl -X POST $PREFECT_API_URL/deployments/$ID/create_flow_run -d '{"parameters": ...}'` does."""
        return self.post(f"/deployments/{deployment_id}/create_flow_run", {"parameters": parameters})

    def wait_until_done(self, run_id: str, timeout: float = 300) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run: dict[str, Any] = httpx.get(f"{self.api}/flow_runs/{run_id}").raise_for_status().json()
            return run if run["state_type"] in TERMINAL else None

        return wait_for(finished, f"flow run {run_id} to finish (logs in {self.logs})", timeout)

    def runs_of(self, deployment_id: str) -> list[dict[str, Any]]:
        body = {"deployments": {"id": {"any_": [deployment_id]}}, "sort": "START_TIME_ASC", "limit": 200, "offset": 0}
        runs: list[dict[str, Any]] = httpx.post(f"{self.api}/flow_runs/filter", json=body).raise_for_status().json()
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
        logs = httpx.post(f"{self.api}/logs/filter", json=body).raise_for_status().json()
        return "\n".join(entry["message"] for entry in logs)


def start_api_and_cluster(
    start: Callable[..., Any], logs: Path, env: dict[str, str], workers: int, threads: int, ui: bool = False
) -> tuple[str, dict[str, str]]:
    """`prefect server start` (with its UI when `ui`), `dask scheduler` and `workers` `dask worker`s on free loopback
    ports, started with `start` (a `processes()` starter) and waited for; the API's URL and the environment every
    program then gets."""
    port, dask_port = free_port(), free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        "PREFECT_HOME": str(started_prefect_home(logs / "prefect-home")),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": str(ui).lower(),
        "ICEFLOE_DASK_ADDRESS": f"tcp://127.0.0.1:{dask_port}",
        **env,
    }
    start("prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), env=env,
          log=logs / "prefect-server.log")  # fmt: skip
    start("dask", "scheduler", "--host", "127.0.0.1", "--port", str(dask_port), "--no-dashboard", env=env,
          log=logs / "dask-scheduler.log")  # fmt: skip
    for i in range(1, workers + 1):
        start("dask", "worker", env["ICEFLOE_DASK_ADDRESS"], "--nthreads", str(threads), "--no-dashboard",
              "--preload", "tasks.writing.worker", env=env, log=logs / f"dask-worker-{i}.log")  # fmt: skip
    wait_for(lambda: httpx.get(f"{api}/health").raise_for_status(), "prefect server start", timeout=180)
    with Client(env["ICEFLOE_DASK_ADDRESS"], timeout=120) as client:
        client.wait_for_workers(workers, timeout=120)
    return api, env


@contextmanager
def served_stack(
    s3_endpoint: str, logs: Path, ingest: dict[str, Any] | None = None, ui: bool = False
) -> Iterator[Stack]:
    """The docker-compose topology as local processes: `prefect server start` (with its UI when `ui`), `dask
    scheduler`, two `dask worker`s and `icefloe serve` (with `ingest` as its scheduled ingest's parameters, every
    10 s), against the S3 server."""
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
