"""The deployments icefloe serves from one process: `write-dataset`, `ingest` (scheduled), `backfill`, and
`validate`, which every commit's `icefloe.snapshot.committed` event triggers.

Runs start as subprocesses of the serving process and inherit its environment: PREFECT_API_URL, the Dask scheduler
(ICEFLOE_DASK_ADDRESS: a cluster this process keeps warm for all its runs, unless it names one) and the S3 settings
(AWS_*). `prefect.yaml` declares the same deployments for a work pool.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.events import DeploymentEventTrigger

from flows.cluster import cluster_for_flow_runs
from flows.deployment_runs import check_allowed
from flows.ingest import backfill, ingest
from flows.orchestrator import COMMITTED
from flows.parameters import validated_parameters
from flows.validate import validate
from flows.write_dataset import write_dataset
from tasks.errors import InvalidRequestError
from tasks.request import WriteOptions

TAGS = ["icefloe"]
VALIDATE_AFTER_COMMIT = DeploymentEventTrigger(
    name="validate every commit",
    expect={COMMITTED},
    parameters={
        "repo": "{{ event.resource['icefloe.target'] }}",
        "branch": "{{ event.resource['icefloe.branch'] }}",
        "snapshot": "{{ event.payload.snapshot }}",
    },
)


@dataclass(frozen=True)
class IngestSchedule:
    """When the `ingest` deployment runs by itself, and with which parameters (repo, source, ...)."""

    parameters: dict[str, Any]
    cron: str | None = None
    interval_seconds: float | None = None


def build_deployments(schedule: IngestSchedule | None = None) -> list[RunnerDeployment]:
    """The four deployments; `ingest` is scheduled only when `schedule` gives its parameters."""
    ingest_kwargs: dict[str, Any] = {}
    if schedule is not None:
        try:  # a bad schedule fails now, not at 6 am; its runs are deployment runs, held to the operator's allowance
            parameters = validated_parameters(ingest, schedule.parameters)
            check_allowed(
                target=parameters["repo"],
                source=parameters["source"],
                functions={"publish_check": parameters.get("publish_check")},
                options=parameters.get("options"),
            )
        except Exception as e:
            raise InvalidRequestError(f"the ingest schedule's parameters are invalid: {e}") from e
        ingest_kwargs["parameters"] = schedule.parameters
        if schedule.cron:
            ingest_kwargs["cron"] = schedule.cron
        elif schedule.interval_seconds:
            ingest_kwargs["interval"] = timedelta(seconds=schedule.interval_seconds)
    # By module path, not file path: a run then imports `flows.ingest`, which Dask workers can import too when
    # they unpickle what the run sends them (a flow loaded from a file path has a module name only it knows).
    common: dict[str, Any] = {"tags": TAGS, "entrypoint_type": EntrypointType.MODULE_PATH}
    return [
        write_dataset.to_deployment(
            "write-dataset", description="Write any dataset with to_zarr semantics, one commit.", **common
        ),
        ingest.to_deployment(
            "ingest",
            description="Append the source's new time steps; idempotent.",
            # a run that fires while the last one still works would find nothing new: skip it, do not queue it
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
            **ingest_kwargs,
            **common,
        ),
        backfill.to_deployment("backfill", description="Rewrite a time range in place or extend the target.", **common),
        validate.to_deployment(
            "validate",
            description="Check a committed snapshot; triggered by every commit's icefloe.snapshot.committed event.",
            triggers=[VALIDATE_AFTER_COMMIT],
            **common,
        ),
    ]


def serve_deployments(
    schedule: IngestSchedule | None = None, cluster: WriteOptions | None = None, poll_seconds: float = 1.0
) -> None:
    """Serve until interrupted, polling for new runs every `poll_seconds`; schedules pause when the process stops."""
    deployments = build_deployments(schedule)  # bad parameters fail before the cluster starts
    # over TCP: the runs are other processes
    with cluster_for_flow_runs(cluster or WriteOptions(), protocol="tcp", host="127.0.0.1"):
        serve(*deployments, query_seconds=poll_seconds)
