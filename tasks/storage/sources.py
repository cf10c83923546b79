"""Datasets a run can read, named by JSON-able parameters (a scheduled or API-triggered run gets no Python objects).

Every source opens lazily: the flow process reads metadata only, and each block task receives the culled dask graph
of its own region, so it opens only the files (or objects) that region needs, whatever the number of blocks.
S3 endpoint and credentials come from the environment, as for targets.
"""

from typing import Annotated, Any, Literal, TypeAlias

import fsspec
import icechunk
import xarray as xr
from pydantic import ConfigDict, Field, PlainSerializer, PlainValidator, model_validator
from pydantic.json_schema import SkipJsonSchema

from tasks.errors import InvalidRequestError
from tasks.internals.pydantic import Request
from tasks.storage.callables import CALLABLE_PATTERN, import_function
from tasks.storage.file_sources import (
    FROZEN,
    VARIABLES,
    GribSource,
    NetCDFSource,
    files_state,
    select_variables,
)
from tasks.storage.source_form import OneForm
from tasks.storage.synthetic import SyntheticDataset
from tasks.storage.target import repository_storage, storage_options

V2_CODECS = ("compressors", "filters", "compressor")
"""A Zarr v2 store's codecs, as xarray keeps them in each variable's encoding: written into Icechunk (Zarr v3) the
repository's own (Zstandard) take their place; chunks, dtypes and fill values are kept."""


class ZarrSource(Request):
    """A Zarr store (v2 or v3), local or remote."""

    model_config = FROZEN | ConfigDict(title="Zarr store")

    kind: Literal["zarr"] = "zarr"
    url: str = Field(description="Local path, s3://bucket/prefix or http(s)://", min_length=1)
    group: str | None = Field(None, description="Group inside the store; default: the root")
    variables: list[str] | None = VARIABLES
    anonymous: bool = Field(False, description="Read public S3 objects without credentials")

    def fingerprint(self) -> str:
        """Every object of the store: a rewritten chunk changes the store's content but not its metadata."""
        fs, path = fsspec.url_to_fs(self.url, **(storage_options(self.url, self.anonymous) or {}))
        return files_state(fs, sorted(fs.find(path)))

    def open(self) -> xr.Dataset:
        options = storage_options(self.url, self.anonymous)
        fs, path = fsspec.url_to_fs(self.url, **(options or {}))
        if not fs.exists(path):
            raise InvalidRequestError(f"source Zarr store {self.url!r} does not exist; check the path")
        dataset = xr.open_zarr(self.url, group=self.group, storage_options=options)
        if fs.exists(f"{path.rstrip('/')}/.zgroup"):  # Zarr v2: its codecs are numcodecs', which Zarr v3 does not take
            for variable in dataset.variables.values():  # this Dataset's own, just opened
                for key in V2_CODECS:
                    variable.encoding.pop(key, None)
        return select_variables(dataset, self.variables, f"the Zarr source {self.url!r}")


class IcechunkSource(Request):
    """Another Icechunk repository, at a branch (default main), a tag or a snapshot."""

    model_config = FROZEN | ConfigDict(title="Icechunk repository")

    kind: Literal["icechunk"] = "icechunk"
    repo: str = Field(description="Local path or s3://bucket/prefix", min_length=1)
    group: str | None = Field(None, description="Group inside the repository; default: the root")
    branch: str | None = Field(None, description="Branch to read; default: main")
    tag: str | None = Field(None, description="Tag to read instead of a branch")
    snapshot_id: str | None = Field(None, description="Snapshot to read instead of a branch")
    variables: list[str] | None = VARIABLES

    @model_validator(mode="after")
    def _one_version(self) -> "IcechunkSource":
        given = [name for name in ("branch", "tag", "snapshot_id") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of branch, tag and snapshot_id, not {' and '.join(given)}")
        return self

    def _session(self) -> icechunk.Session:
        try:
            repository = icechunk.Repository.open(repository_storage(self.repo))
            if self.tag is not None or self.snapshot_id is not None:
                return repository.readonly_session(tag=self.tag, snapshot_id=self.snapshot_id)
            return repository.readonly_session(branch=self.branch or "main")
        except icechunk.IcechunkError as e:
            raise InvalidRequestError(f"cannot read the Icechunk source {self.repo!r}: {e}") from e

    def fingerprint(self) -> str:
        return self._session().snapshot_id

    def open(self) -> xr.Dataset:
        session = self._session()
        dataset = xr.open_zarr(session.store, group=self.group, consolidated=False)
        return select_variables(dataset, self.variables, f"the Icechunk source {self.repo!r}")


class CallableSource(Request):
    """A Python function that returns a lazy (dask-backed) Dataset, named as package.module:function."""

    model_config = FROZEN | ConfigDict(title="Python function")

    kind: Literal["callable"] = "callable"
    function: str = Field(pattern=CALLABLE_PATTERN, description="package.module:function, importable by the flow")
    keywords: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the function (JSON)")

    def open(self) -> xr.Dataset:
        dataset = import_function(self.function, "source function")(**self.keywords)
        if not isinstance(dataset, xr.Dataset):
            raise InvalidRequestError(
                f"source function {self.function!r} returned {type(dataset).__name__}, not an xarray Dataset"
            )
        return dataset


def _check_dataset(value: object) -> xr.Dataset:
    if not isinstance(value, xr.Dataset):
        raise ValueError(f"expected an xarray Dataset, got {type(value).__name__}")
    return value


def describe_dataset(dataset: xr.Dataset) -> dict[str, Any]:
    """What Prefect records of an in-memory Dataset: its layout and the names of its dask graphs."""
    return {
        "dims": {str(k): int(v) for k, v in dataset.sizes.items()},
        "variables": {str(name): getattr(var.data, "name", "in-memory") for name, var in dataset.variables.items()},
    }


InMemoryDataset = Annotated[
    xr.Dataset,
    PlainValidator(_check_dataset),
    PlainSerializer(describe_dataset, when_used="json"),
    # no JSON value is an in-memory Dataset: a deployment's parameter schema (and its form) shows the named ones only
    SkipJsonSchema(),
]

type NamedSource = Annotated[
    NetCDFSource | GribSource | ZarrSource | IcechunkSource | CallableSource | SyntheticDataset,
    Field(discriminator="kind"),
    OneForm(),
]
"""A source a deployment can name in JSON; `kind` says which."""

# a plain alias, not a `type` statement: a definition of its own would put a second $ref between the parameter and
# the kinds, and Prefect's form shows a JSON editor for a $ref to a $ref
DatasetSource: TypeAlias = NamedSource | InMemoryDataset  # noqa: UP040 - see above


def source_fingerprint(source: DatasetSource) -> str:
    """What identifies the source's content beyond the names of its dask graphs (which encode how it is computed):
    the files' sizes and modification times, an Icechunk source's snapshot. Empty where the graph names suffice
    (synthetic data, in-memory Datasets) or nothing more is known (a function's own inputs)."""
    fingerprinted = NetCDFSource | GribSource | ZarrSource | IcechunkSource
    return source.fingerprint() if isinstance(source, fingerprinted) else ""


def open_source(source: DatasetSource) -> xr.Dataset:
    return source if isinstance(source, xr.Dataset) else source.open()


def open_source_groups(source: DatasetSource) -> dict[str, xr.Dataset]:
    """The source as Datasets by the group each is written to, relative to the run's own: {"": the Dataset}, or a
    GRIB source's hypercubes, each a group of its own."""
    return source.open_hypercubes() if isinstance(source, GribSource) else {"": open_source(source)}
