"""The `ingest` flow (scheduled: append what is new, idempotent) and the `backfill` flow (rewrite a time range in
place, or extend the target), both one commit at most."""

from flows.deployment_runs import check_allowed, is_deployment_run
from flows.orchestrator import PrefectOrchestrator
from flows.parameters import icefloe_flow
from flows.process import set_up_flow_process
from tasks.planning.time_steps import Overlap
from tasks.records import CommitResult
from tasks.request import Encodings, WriteOptions, publish_gate
from tasks.running.runs import run_time_update
from tasks.storage.sources import NamedSource, open_source, source_fingerprint

set_up_flow_process()


@icefloe_flow("ingest")
def ingest(
    repo: str,
    source: NamedSource,
    group: str | None = None,
    time_dim: str = "time",
    overlap: Overlap = "skip",
    encoding: Encodings = None,
    branch: str = "main",
    publish: bool = True,
    publish_check: str | None = None,
    allow_nan: bool = False,
    options: WriteOptions = WriteOptions(),  # noqa: B008 - frozen model, safe as a default
) -> CommitResult | None:
    """Append the source's time steps that are newer than the target's last one. Idempotent: steps the target
    already holds are skipped (the log says how many), and with nothing new it commits nothing and says so; a
    schedule over a growing source (a glob of daily files) appends exactly what arrived since its last run.

    Args:
        repo: Target repository: a local path or s3://bucket/prefix (S3 endpoint and keys from the environment).
        source: Where new data comes from: NetCDF or GRIB files, a Zarr store, an Icechunk repository or a Python
            function (its "kind" says which).
        group: Group inside the repository; default: the root.
        time_dim: Dimension to ingest along.
        overlap: Source steps the target already holds: skip (the default: append only the newer ones), refuse
            (the run fails, nothing is written) or rewrite (rewrite them in place, in the same commit).
        encoding: Zarr encoding per variable, used when the run creates the group.
        branch: Branch to commit to.
        publish: Commit to a staging branch, check the new steps (no all-NaN step, time increasing, no held step
            rewritten, nothing held shrank, disappeared or changed type) and only then move the branch to them.
        publish_check: With publish: package.module:function given the staged snapshot as a Dataset; if it
            raises, the branch does not move.
        allow_nan: With publish: allow steps that are NaN everywhere.
        options: Block size, retries, commit rebases and the Dask cluster.
    """
    if is_deployment_run():
        check_allowed(target=repo, source=source, functions={"publish_check": publish_check}, options=options)
    return run_time_update(
        PrefectOrchestrator(),
        repo,
        open_source(source),
        group=group,
        dim=time_dim,
        overlap=overlap,
        encoding=encoding,
        branch=branch,
        message=f"icefloe ingest: new {time_dim} steps into {group or '/'}",
        options=options,
        source_state=source_fingerprint(source) if options.resume else "",
        gate=publish_gate(publish, time_dim, allow_nan, publish_check, appends_only=overlap != "rewrite"),
    )


@icefloe_flow("backfill")
def backfill(
    repo: str,
    source: NamedSource,
    start: str | None = None,
    end: str | None = None,
    group: str | None = None,
    time_dim: str = "time",
    branch: str = "main",
    publish: bool = True,
    publish_check: str | None = None,
    allow_nan: bool = False,
    options: WriteOptions = WriteOptions(),  # noqa: B008 - frozen model, safe as a default
) -> CommitResult | None:
    """Rewrite the source's steps between start and end in place (a region write) and append those after the
    target's last step, in one commit.

    Args:
        repo: Target repository: a local path or s3://bucket/prefix (S3 endpoint and keys from the environment).
        source: Where the corrected or missing data comes from (its "kind" says which).
        start: First step to write, e.g. 2026-11-01 or 2026-11-01T06:00; default: the source's first.
        end: Last step to write (included); default: the source's last.
        group: Group inside the repository; default: the root.
        time_dim: Dimension of the time steps.
        branch: Branch to commit to.
        publish: Commit to a staging branch, check the snapshot (no all-NaN step, time increasing, held steps
            keep their labels, nothing held shrank, disappeared or changed type) and only then move the branch.
        publish_check: With publish: package.module:function given the staged snapshot as a Dataset; if it
            raises, the branch does not move.
        allow_nan: With publish: allow steps that are NaN everywhere.
        options: Block size, retries, commit rebases and the Dask cluster.
    """
    if is_deployment_run():
        check_allowed(target=repo, source=source, functions={"publish_check": publish_check}, options=options)
    window = open_source(source).sel({time_dim: slice(start, end)})
    return run_time_update(
        PrefectOrchestrator(),
        repo,
        window,
        group=group,
        dim=time_dim,
        overlap="rewrite",
        encoding=None,
        branch=branch,
        message=f"icefloe backfill: {time_dim} {start or 'start'} to {end or 'end'} in {group or '/'}",
        options=options,
        source_state=source_fingerprint(source) if options.resume else "",
        gate=publish_gate(publish, time_dim, allow_nan, publish_check, appends_only=False),
    )
