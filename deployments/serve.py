"""The deployments icefloe serves from one process: `write-dataset`, `ingest` (scheduled) and `backfill`.

Runs start as subprocesses of the serving process and inherit its environment: PREFECT_API_URL, the Dask scheduler
(ICEFLOE_DASK_ADDRESS) and the S3 settings (AWS_*). `prefect.yaml` declares the same deployments for a work pool.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment

from flows.ingest import backfill, ingest
from flows.write_dataset import write_dataset
from tasks.errors import InvalidRequestError

TAGS = ["icefloe"]


@dataclass(frozen=True)
class IngestSchedule:
    """When the `ingest` deployment runs by itself, and with which parameters (repo, source, ...)."""

    parameters: dict[str, Any]
    cron: str | None = None
    interval_seconds: float | None = None


def build_deployments(schedule: IngestSchedule | None = None) -> list[RunnerDeployment]:
    """The three deployments; `ingest` is scheduled only when `schedule` gives its parameters."""
    ingest_kwargs: dict[str, Any] = {}
    if schedule is not None:
        try:
            ingest.validate_parameters(schedule.parameters)  # a bad schedule fails now, not at 6 am
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
    ]


def serve_deployments(schedule: IngestSchedule | None = None) -> None:
    """Serve until interrupted; schedules pause when the process stops."""
    serve(*build_deployments(schedule))
