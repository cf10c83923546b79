"""What a user asks for: which dask arrays go to which target arrays, how a Dataset is written, and how the write
runs.

These are the flow's parameters. They are pydantic models so that Prefect validates them at flow start and records
a small JSON description of them (a dask array is described by its name, shape, dtype and chunks, never encoded
element by element: FastAPI's encoder takes seconds on a large array).
"""

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import dask.array as da
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PositiveFloat,
    PositiveInt,
    WithJsonSchema,
    model_validator,
)

from tasks import defaults
from tasks.internals.pydantic import Request
from tasks.regions import ArrayRegion, RegionParameter


def _check_dask_array(value: object) -> da.Array:
    if not isinstance(value, da.Array):
        raise ValueError(f"expected a dask array, got {type(value).__name__}; wrap numpy data with da.from_array")
    return value


def describe_dask_array(array: da.Array) -> dict[str, Any]:
    """A JSON description that fingerprints the source: dask names are deterministic hashes of the graph."""
    return {
        "name": array.name,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "chunks": [list(c) for c in array.chunks],
    }


DaskArray = Annotated[
    da.Array,
    PlainValidator(_check_dask_array),
    PlainSerializer(describe_dask_array, when_used="json"),
    WithJsonSchema({"type": "object", "description": "a dask array"}),
]


class ArraySpec(Request):
    """A target array, created if missing (and grown if a region reaches past its end)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(pattern=r"^[^/].*[^/]$|^[^/]$", description="Path of the array inside the repository")
    chunks: tuple[PositiveInt, ...] = Field(description="Zarr chunk shape")
    shards: tuple[PositiveInt, ...] | None = Field(None, description="Shard shape, a multiple of chunks")
    shape: tuple[int, ...] | None = Field(None, description="Array shape; default: just large enough for the write")
    dtype: str | None = Field(None, description="Stored dtype; default: the source's dtype")
    fill_value: Any = Field(None, description="Value of chunks never written; default: Zarr's default for the dtype")
    compressors: Literal["auto"] | list[dict[str, Any]] | None = Field(
        "auto", description='Zarr codec specs, e.g. [{"name": "zstd", "configuration": {"level": 3}}]'
    )
    dimension_names: tuple[str, ...] | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class ArrayWrite(Request):
    """One source written into one target array, optionally into a region of it (store_dask's regions)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: DaskArray
    target: ArraySpec | str = Field(description="An ArraySpec, or the path of an array that exists already")
    region: ArrayRegion | None = None

    @property
    def target_path(self) -> str:
        return self.target if isinstance(self.target, str) else self.target.path


class WriteOptions(Request):
    """How a write runs: block size, retries, commit rebases and the Dask cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    block_bytes: PositiveInt | None = Field(
        None,
        description="Target uncompressed bytes per block task (blocks are whole chunks); "
        "default: about two blocks per worker thread, between 64 and 512 MiB",
    )
    piece_bytes: PositiveInt = Field(
        32 * 2**20, description="Uncompressed bytes a block task computes and writes at a time (bounds memory)"
    )
    retries: int = Field(defaults.RETRIES, ge=0, description="Retries of a failed block (each from the pristine fork)")
    chunk_concurrency: PositiveInt | None = Field(
        None,
        description="Chunks a block task has in flight at once (zarr's async.concurrency, raised to this in the "
        "processes that write blocks); default: Zarr's own (10). More only pays where each request waits on the "
        "network: on local storage 64 made small chunks 15% slower",
    )
    manifest_split_chunks: PositiveInt | None = Field(
        None,
        description="Split each array's chunk manifest every this many chunks along its first dimension (Icechunk "
        "advises splitting above ~1M chunks per array); default: one manifest per array",
    )
    manifest_fetch_concurrency: PositiveInt = Field(
        defaults.MANIFEST_FETCH_CONCURRENCY,
        description="Manifests the commit (and the fork that starts the blocks) fetch and write at once; each is a "
        "round trip to an object store, one after the other at Icechunk's default of 1",
    )
    max_task_runs: PositiveInt | None = Field(
        None,
        description="Most Prefect task runs a write makes for its blocks: more blocks are written in batches, "
        "one task run each, every block still retried on its own; default: 16 per worker thread, "
        "between 100 and 1000",
    )
    retry_delay_seconds: float = Field(1.0, ge=0, description="First retry delay; doubles on each retry")
    commit_retries: int = Field(5, ge=0, description="Rebases tried when another commit lands first")
    dask_address: str | None = Field(
        None, pattern=r"^(tcp|tls|inproc|ucx)://", description="Scheduler of an existing Dask cluster"
    )
    cluster_class: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*[.:][A-Za-z_]\w*$",
        description="A Dask cluster class to start for the run, as prefect-dask's DaskTaskRunner takes it "
        "(dask_jobqueue.SLURMCluster, dask_kubernetes.operator.KubeCluster, coiled.Cluster); closed when the run "
        "ends. Not with dask_address",
    )
    cluster_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of cluster_class (JSON), e.g. its cores and memory"
    )
    adapt_kwargs: dict[str, Any] | None = Field(
        None, description="Keyword arguments of the cluster's adapt() (minimum, maximum); default: no adapting"
    )
    n_workers: PositiveInt | None = Field(
        None, description="Local cluster workers; default: one per core, each with one thread"
    )
    processes: bool = Field(False, description="Local cluster workers are processes (default: threads)")
    storage_max_tries: PositiveInt = Field(
        defaults.STORAGE_MAX_TRIES,
        description="Tries of each object-store request, the first included, before the run fails",
    )
    storage_max_backoff_seconds: PositiveFloat = Field(
        10.0, description="Longest wait between two tries of an object-store request (waits double from 0.1 s)"
    )
    resume: bool = Field(
        True,
        description="Keep each finished block beside the target until the commit, so that the same request run "
        "again after a failure writes only the blocks that are missing",
    )

    @model_validator(mode="after")
    def _one_cluster(self) -> "WriteOptions":
        if self.dask_address is not None and self.cluster_class is not None:
            raise ValueError(
                f"dask_address {self.dask_address!r} and cluster_class {self.cluster_class!r} name two clusters: "
                "give the address of a running one, or the class of one to start, not both"
            )
        if self.cluster_class is None and (self.cluster_kwargs or self.adapt_kwargs is not None):
            raise ValueError("cluster_kwargs and adapt_kwargs apply to a cluster_class: name the class too")
        return self


type WriteMode = Literal["w", "w-", "a", "a-", "r+"]


def _castable_encodings(value: object) -> object:
    """to_zarr's rule for `encoding`, in its words: a dictionary of variable names to dictionaries."""
    example = "e.g. {'t2m': {'chunks': [24, 181, 360]}}"
    if value is None:
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"encoding must be castable to a dictionary of variable names to encodings, {example}")
    for name, settings in value.items():
        if not isinstance(settings, Mapping):
            raise ValueError(
                f"the encoding of {name!r} must be castable to a dictionary (given: {settings!r}), {example}"
            )
    return value


Encodings = Annotated[dict[str, dict[str, Any]] | None, BeforeValidator(_castable_encodings)]
"""Zarr encoding per variable, as to_zarr takes it."""


class DatasetWrite(Request):
    """How a Dataset is written: `Dataset.to_zarr`'s keywords, meaning what they mean there, the branch the one
    commit goes to, and the user's check of the initialized group. The flows take them flat (each a field of the UI's
    form) and make one of these once; below the flows, and from the command, they travel as this one value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str | None = None
    mode: WriteMode | None = None
    append_dim: str | None = None
    region: RegionParameter = None
    encoding: Encodings = None
    safe_chunks: bool = True
    align_chunks: bool = False
    branch: str = defaults.BRANCH
    validation_hook: str | None = None


class PublishGate(Request):
    """Publishing through a staging branch: the run commits there, its snapshot is checked, and only then does the
    target branch move to it (`tasks/committing/publishing.py`). What the checks allow is part of the request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time_dim: str = Field("time", description="Dimension whose steps may not be NaN everywhere and must increase")
    allow_nan: bool = Field(False, description="Allow steps that are NaN everywhere (a field with gaps by design)")
    check: str | None = Field(
        None,
        description="package.module:function given the staged snapshot as a read-only Dataset; if it raises, the "
        "branch does not move",
    )
    appends_only: bool = Field(
        False, description="The run only appends: rewriting a step the branch already holds fails the checks"
    )


def publish_gate(
    publish: bool, time_dim: str, allow_nan: bool, check: str | None, appends_only: bool
) -> PublishGate | None:
    """The gate a flow's flat parameters ask for; None: the run commits to its branch directly."""
    if not publish:
        return None
    return PublishGate(time_dim=time_dim, allow_nan=allow_nan, check=check, appends_only=appends_only)


def dataset_write_gate(publish: bool, write: DatasetWrite, allow_nan: bool, check: str | None) -> PublishGate | None:
    """A Dataset write's gate: along its append dimension (else time), appends only when it appends."""
    appends = write.append_dim is not None
    return publish_gate(publish, write.append_dim or "time", allow_nan, check, appends_only=appends)
