"""A served stack as the tests drive it: through the Prefect REST API, as another system would."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.processes import wait_for

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

    def create_run(self, deployment_id: str, parameters: dict[str, Any]) -> httpx.Response:
        """What `curl -X POST $PREFECT_API_URL/deployments/$ID/create_flow_run -d '{"parameters": ...}'` does,
        retried while the server answers 503 (busy: SQLite on a 2-core machine running the whole stack)."""

        def answer() -> httpx.Response | None:
            url = f"{self.api}/deployments/{deployment_id}/create_flow_run"
            response = httpx.post(url, json={"parameters": parameters}, timeout=30)
            return None if response.status_code == 503 else response

        return wait_for(answer, "the API to accept a flow run", timeout=60)

    def wait_until_done(self, run_id: str, timeout: float = 300) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run: dict[str, Any] = httpx.get(f"{self.api}/flow_runs/{run_id}").raise_for_status().json()
            return run if run["state_type"] in TERMINAL else None

        return wait_for(finished, f"flow run {run_id} to finish (logs in {self.logs})", timeout)

    def runs_of(self, deployment_id: str) -> list[dict[str, Any]]:
        body = {"deployments": {"id": {"any_": [deployment_id]}}, "sort": "START_TIME_ASC", "limit": 50, "offset": 0}
        runs: list[dict[str, Any]] = httpx.post(f"{self.api}/flow_runs/filter", json=body).raise_for_status().json()
        return runs

    def log_text(self, run_id: str) -> str:
        body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200, "offset": 0, "sort": "TIMESTAMP_ASC"}
        logs = httpx.post(f"{self.api}/logs/filter", json=body).raise_for_status().json()
        return "\n".join(entry["message"] for entry in logs)
