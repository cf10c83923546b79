"""Prefect as a run's orchestrator: run logs, the target's global concurrency limit, block task runs on the
DaskTaskRunner, and the flow run named in the commit."""

import hashlib
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from prefect import get_run_logger
from prefect.context import FlowRunContext

from flows import prefect_internals
from flows.cluster import dask_task_runner
from flows.fan_out import PrefectBlockRunner
from flows.prefect_api import workers_report_to_flow_api
from flows.target_lock import target_lock
from tasks.orchestration import Logger
from tasks.request import WriteOptions

prefect_internals.install()  # every flow module imports this one


class PrefectOrchestrator:
    """For use inside a flow run."""

    @property
    def logger(self) -> Logger:
        return get_run_logger()

    def hold_target(self, repo: str, branch: str) -> AbstractContextManager[None]:
        return target_lock(repo, branch)

    @contextmanager
    def block_runner(self, options: WriteOptions) -> Iterator[PrefectBlockRunner]:
        with dask_task_runner(options) as runner, workers_report_to_flow_api():
            yield PrefectBlockRunner(runner)

    def run_metadata(self) -> dict[str, Any]:
        """The flow run, its deployment and a digest of its parameters."""
        context = FlowRunContext.get()
        if context is None or context.flow_run is None:
            return {}
        run = context.flow_run
        digest = hashlib.sha256(json.dumps(run.parameters, sort_keys=True, default=str).encode()).hexdigest()
        return {
            "flow_run_id": str(run.id),
            "flow_run_name": run.name,
            "flow_name": context.flow.name if context.flow else None,
            "deployment_id": str(run.deployment_id) if run.deployment_id else None,
            "parameters_sha256": digest,
        }
