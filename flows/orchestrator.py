"""Prefect as a run's orchestrator: run logs, the target's global concurrency limit, a task run per stage and per
block (on the DaskTaskRunner), the flow run named in the commit, and the run's report as artifacts and an event."""

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.events import emit_event

from flows.cluster import cluster_threads, dask_task_runner
from flows.fan_out import PrefectBlockRunner
from flows.target_lock import target_lock
from tasks.committing.report import artifact_key, committed_payload, summary_markdown
from tasks.records import BlockReport, CommitResult, Logger
from tasks.request import WriteOptions

COMMITTED = "icefloe.snapshot.committed"
"""The event a commit straight to its branch emits; its resource is the repository (`icefloe.target`) and branch
(`icefloe.branch`)."""
PUBLISHED = "icefloe.snapshot.published"
"""A publishing run's snapshot passed its checks and its branch moved to it (the same resource)."""
REJECTED = "icefloe.snapshot.rejected"
"""A publishing run's snapshot failed a check: its branch did not move (the payload names the staging branch)."""


class PrefectOrchestrator:
    """For use inside a flow run."""

    @property
    def logger(self) -> Logger:
        return get_run_logger()

    def hold_target(self, repo: str, branch: str) -> AbstractContextManager[None]:
        return target_lock(repo, branch)

    def stage[R](self, name: str, work: Callable[[Logger], R]) -> R:
        # A task called in the flow runs here, in the flow's thread: the writable session never leaves the process.
        @task(name=name, task_run_name=name, cache_policy=NO_CACHE, persist_result=False)
        def run_stage() -> R:
            return work(get_run_logger())

        return run_stage()

    @contextmanager
    def block_runner(self, options: WriteOptions) -> Iterator[PrefectBlockRunner]:
        # entered while the run initializes (`entered_meanwhile`): connected (or started) before it is needed
        with dask_task_runner(options) as runner:
            cluster_threads(runner)
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

    def report(self, result: CommitResult, blocks: list[BlockReport]) -> None:
        try:
            create_markdown_artifact(
                summary_markdown(result),
                key=artifact_key(result.target, result.branch),
                description=f"icefloe: snapshot {result.snapshot_id} on {result.branch} of {result.target}",
            )
            create_table_artifact(
                [b.model_dump() for b in blocks],
                key=artifact_key(result.target, result.branch, "blocks"),
                description=f"icefloe: the {len(blocks)} slowest of {result.blocks} blocks, per block",
            )
            if result.published is not None:
                create_table_artifact(
                    [c.model_dump() for c in result.checks],
                    key=artifact_key(result.target, result.branch, "validation"),
                    description=f"icefloe: checks of snapshot {result.snapshot_id} before publishing",
                )
            emit_event(
                {None: COMMITTED, True: PUBLISHED, False: REJECTED}[result.published],
                resource={
                    "prefect.resource.id": f"icefloe.repository.{result.target}",
                    "prefect.resource.name": result.target,
                    "icefloe.target": result.target,
                    "icefloe.branch": result.branch,
                },
                payload=committed_payload(result),
            )
        except Exception as e:  # the commit stands whatever happens to its report
            get_run_logger().warning("committed; reporting the run to Prefect failed: %s", e)
