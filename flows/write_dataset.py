"""The `write_dataset` flow: an xarray Dataset into an Icechunk group with `Dataset.to_zarr` semantics, one commit."""

from flows.deployment_runs import check_allowed, is_deployment_run
from flows.orchestrator import PrefectOrchestrator
from flows.parameters import icefloe_flow
from flows.process import set_up_flow_process
from tasks.records import CommitResult
from tasks.regions import RegionArgument, to_zarr_region
from tasks.request import DatasetWrite, Encodings, WriteMode, WriteOptions, dataset_write_gate
from tasks.running.runs import run_write_dataset
from tasks.storage.sources import DatasetSource

set_up_flow_process()

DEFAULT = DatasetWrite()
"""The defaults the flow's form shows are the request model's own."""


@icefloe_flow("write-dataset")
def write_dataset(
    repo: str,
    source: DatasetSource,
    group: str | None = None,
    mode: WriteMode | None = None,
    append_dim: str | None = None,
    region: RegionArgument = None,
    encoding: Encodings = None,
    safe_chunks: bool = DEFAULT.safe_chunks,
    align_chunks: bool = DEFAULT.align_chunks,
    branch: str = DEFAULT.branch,
    message: str | None = None,
    validation_hook: str | None = None,
    publish: bool = False,
    publish_check: str | None = None,
    allow_nan: bool = False,
    options: WriteOptions = WriteOptions(),  # noqa: B008 - frozen model, safe as a default
) -> CommitResult:
    """Write a dataset into an Icechunk repository like `Dataset.to_zarr` / icechunk's `to_icechunk`: same
    keywords, same errors; metadata and in-memory variables first, then the lazy variables block by block on Dask,
    then ONE commit. Nothing is committed unless everything was written.

    Args:
        repo: Target repository: a local path or s3://bucket/prefix (S3 endpoint and keys from the environment).
        source: What to write: NetCDF or GRIB files, a Zarr store, an Icechunk repository, a Python function or
            the synthetic dataset (its "kind" says which).
        group: Group inside the repository; default: the root.
        mode: As in to_zarr: w (overwrite), w- (create, fail if it exists), a (append or add variables),
            a- (append only variables that have append_dim), r+ (change values only). Default: w-, or a with
            append_dim, or r+ with region.
        append_dim: Dimension to append along (e.g. time).
        region: Region to write, per dimension [start, stop] or "auto"; or "auto" for every dimension.
        encoding: Per variable Zarr encoding: chunks, shards, compressors, dtype, fill_value.
        safe_chunks: Refuse writes whose Dask chunks would share a Zarr chunk (as to_zarr does).
        align_chunks: Rechunk the source to the Zarr chunks first (as to_zarr does).
        branch: Branch to commit to.
        message: Commit message; default: says what was written.
        validation_hook: package.module:function called with the initialized, uncommitted group as a Dataset
            before any block is written; if it raises, nothing is committed.
        publish: Commit to a staging branch, check the snapshot (chunks present, no all-NaN step, time
            increasing, nothing held shrank, disappeared or changed type) and only then move the branch to it.
        publish_check: With publish: package.module:function given the staged snapshot as a Dataset; if it
            raises, the branch does not move.
        allow_nan: With publish: allow steps that are NaN everywhere.
        options: Block size, retries, commit rebases and the Dask cluster.
    """
    if is_deployment_run():
        check_allowed(
            target=repo,
            source=source,
            functions={"validation_hook": validation_hook, "publish_check": publish_check},
            options=options,
        )
    write = DatasetWrite(
        group=group,
        mode=mode,
        append_dim=append_dim,
        region=to_zarr_region(region, pairs=is_deployment_run()),  # a deployment's parameters are JSON
        encoding=encoding,
        safe_chunks=safe_chunks,
        align_chunks=align_chunks,
        branch=branch,
        validation_hook=validation_hook,
    )
    gate = dataset_write_gate(publish, write, allow_nan, publish_check)
    return run_write_dataset(PrefectOrchestrator(), repo, source, write, message, options, gate)
