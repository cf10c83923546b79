"""The `validate` flow: check a committed snapshot (chunks present, no all-NaN steps, time increasing, dtypes and
shapes, a sample against the source). Served as a deployment that every `icefloe.snapshot.committed` event
triggers; a failed check fails the run, which an automation can then notify about."""

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from flows.deployment_runs import check_allowed, is_deployment_run
from flows.parameters import icefloe_flow
from flows.process import set_up_flow_process
from tasks.committing.report import artifact_key
from tasks.committing.validate import Validation, validate_snapshot
from tasks.errors import ValidationFailedError
from tasks.storage.sources import DatasetSource, open_source

set_up_flow_process()


@icefloe_flow("validate")
def validate(
    repo: str,
    branch: str = "main",
    snapshot: str | None = None,
    source: DatasetSource | None = None,
    time_dim: str = "time",
    allow_nan: bool = False,
) -> Validation:
    """Check a committed snapshot before anyone reads it; a table artifact reports each check, and a failed check
    fails the run.

    Args:
        repo: Repository: a local path or s3://bucket/prefix (S3 endpoint and keys from the environment).
        branch: Branch whose tip is checked when no snapshot is named.
        snapshot: Snapshot to check; default: the branch's tip.
        source: What the snapshot was written from, to compare a sample of chunks with (its "kind" says which).
        time_dim: Dimension along which no step may be NaN everywhere and whose coordinate must increase.
        allow_nan: Allow steps that are NaN everywhere (a field with gaps by design).
    """
    if is_deployment_run():
        check_allowed(reads=repo, source=source)
    logger = get_run_logger()
    validation = validate_snapshot(
        repo,
        branch=branch,
        snapshot_id=snapshot,
        source=open_source(source) if source is not None else None,
        time_dim=time_dim,
        allow_nan=allow_nan,
    )
    for check in validation.checks:
        log = logger.error if check.outcome == "failed" else logger.info
        log("%s: %s (%s)", check.check, check.outcome, check.detail)
    create_table_artifact(
        [c.model_dump() for c in validation.checks],
        key=artifact_key(validation.target, branch, "validation"),
        description=f"icefloe: checks of snapshot {validation.snapshot} of {validation.target}",
    )
    if not validation.passed:
        raise ValidationFailedError(f"snapshot {validation.snapshot} failed its checks: {validation.failures()}")
    return validation
