"""Datasets a run can read, named by JSON-able parameters (a scheduled or API-triggered run gets no Python objects).

Every source opens lazily: the flow process reads metadata only, and each block task receives the culled dask graph
of its own region, so it opens only the files (or objects) that region needs, whatever the number of blocks.
S3 endpoint and credentials come from the environment, as for targets.
"""

import json
from typing import Annotated, Any, Literal

import fsspec
import icechunk
import xarray as xr
from fsspec.implementations.local import LocalFileSystem
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PositiveInt,
    WithJsonSchema,
    model_validator,
)

from tasks.errors import InvalidRequestError
from tasks.storage.callables import CALLABLE_PATTERN, import_function
from tasks.storage.synthetic import SyntheticDataset
from tasks.storage.target import repository_storage, storage_options

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_VARIABLES = Field(None, description="Data variables to keep (with their coordinates); default: all")


def _select(dataset: xr.Dataset, variables: list[str] | None, where: str) -> xr.Dataset:
    if variables is None:
        return dataset
    missing = sorted(set(variables) - set(map(str, dataset.data_vars)))
    if missing:
        raise InvalidRequestError(
            f"variables {missing} are not in {where}; it has {sorted(map(str, dataset.data_vars))}"
        )
    return dataset[variables]


def _files_state(fs: fsspec.AbstractFileSystem, paths: list[str]) -> str:
    """Each file's size and modification time (its ETag on S3): what changes when its content does."""
    state = []
    for path in paths:
        info = fs.info(path)
        state.append([path, info.get("size"), info.get("mtime"), info.get("ETag"), str(info.get("LastModified"))])
    return json.dumps(state, default=str)


class NetCDFSource(BaseModel):
    """NetCDF4/HDF5 files, one or many, combined into one Dataset."""

    model_config = _FROZEN

    kind: Literal["netcdf"] = "netcdf"
    paths: str | list[str] = Field(
        description="A path, a glob or a list of them; local, s3://bucket/key or http(s)://", min_length=1
    )
    concat_dim: str | None = Field(
        None,
        description="Dimension the files are concatenated along, in the order given (a glob's matches sorted); "
        "default: combined by their coordinates",
    )
    variables: list[str] | None = _VARIABLES
    chunks: dict[str, PositiveInt] | None = Field(
        None, description="Dask chunks per dimension inside each file; default: the files' own chunking"
    )
    anonymous: bool = Field(False, description="Read public S3 objects without credentials")

    def urls(self) -> list[str]:
        """Every file, in order. A path that does not exist or a glob that matches nothing is refused."""
        found: list[str] = []
        for pattern in [self.paths] if isinstance(self.paths, str) else self.paths:
            fs, path = fsspec.url_to_fs(pattern, **(storage_options(pattern, self.anonymous) or {}))
            if any(c in pattern for c in "*?["):
                matches = sorted(fs.glob(path))
                if not matches:
                    raise InvalidRequestError(f"source glob {pattern!r} matches no file; check the path")
                local = isinstance(fs, LocalFileSystem)
                found.extend(m if local else fs.unstrip_protocol(m) for m in matches)
            elif not fs.exists(path):
                raise InvalidRequestError(f"source path {pattern!r} does not exist; check the path")
            else:
                found.append(pattern)
        return found

    def fingerprint(self) -> str:
        urls = self.urls()
        return _files_state(fsspec.url_to_fs(urls[0], **(storage_options(urls[0], self.anonymous) or {}))[0], urls)

    def open(self) -> xr.Dataset:
        urls = self.urls()
        try:
            dataset = self._combined(urls)
        except (OSError, ValueError) as e:
            raise InvalidRequestError(f"cannot read the NetCDF source: {self._culprit(urls) or self.paths}: {e}") from e
        return _select(dataset, self.variables, f"the NetCDF source {self.paths!r}")

    def _culprit(self, urls: list[str]) -> str | None:
        """The first file that does not open on its own, if one does not."""
        for url in urls:
            try:
                xr.open_dataset(url, engine="h5netcdf", storage_options=storage_options(url, self.anonymous)).close()
            except Exception:
                return url
        return None

    def _combined(self, urls: list[str]) -> xr.Dataset:
        return xr.open_mfdataset(
            urls,
            engine="h5netcdf",
            chunks=self.chunks or {},
            combine="nested" if self.concat_dim else "by_coords",
            concat_dim=self.concat_dim,
            # variables without the concat dimension (lat, lon, ...) are taken from the first file, not compared
            data_vars="minimal",
            coords="minimal",
            compat="override",
            join="outer",
            storage_options=storage_options(urls[0], self.anonymous),
        )


class ZarrSource(BaseModel):
    """A Zarr store (v2 or v3), local or remote."""

    model_config = _FROZEN

    kind: Literal["zarr"] = "zarr"
    url: str = Field(description="Local path, s3://bucket/prefix or http(s)://", min_length=1)
    group: str | None = Field(None, description="Group inside the store; default: the root")
    variables: list[str] | None = _VARIABLES
    anonymous: bool = Field(False, description="Read public S3 objects without credentials")

    def fingerprint(self) -> str:
        """Every object of the store: a rewritten chunk changes the store's content but not its metadata."""
        fs, path = fsspec.url_to_fs(self.url, **(storage_options(self.url, self.anonymous) or {}))
        return _files_state(fs, sorted(fs.find(path)))

    def open(self) -> xr.Dataset:
        options = storage_options(self.url, self.anonymous)
        fs, path = fsspec.url_to_fs(self.url, **(options or {}))
        if not fs.exists(path):
            raise InvalidRequestError(f"source Zarr store {self.url!r} does not exist; check the path")
        dataset = xr.open_zarr(self.url, group=self.group, storage_options=options)
        return _select(dataset, self.variables, f"the Zarr source {self.url!r}")


class IcechunkSource(BaseModel):
    """Another Icechunk repository, at a branch (default main), a tag or a snapshot."""

    model_config = _FROZEN

    kind: Literal["icechunk"] = "icechunk"
    repo: str = Field(description="Local path or s3://bucket/prefix", min_length=1)
    group: str | None = Field(None, description="Group inside the repository; default: the root")
    branch: str | None = Field(None, description="Branch to read; default: main")
    tag: str | None = Field(None, description="Tag to read instead of a branch")
    snapshot_id: str | None = Field(None, description="Snapshot to read instead of a branch")
    variables: list[str] | None = _VARIABLES

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
        return _select(dataset, self.variables, f"the Icechunk source {self.repo!r}")


class CallableSource(BaseModel):
    """A Python function that returns a lazy (dask-backed) Dataset, named as package.module:function."""

    model_config = _FROZEN

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
    # no JSON value is an in-memory Dataset: a deployment's parameter schema must not accept one
    WithJsonSchema({"not": {}, "description": "an xarray Dataset (Python callers only)"}),
]

type NamedSource = Annotated[
    NetCDFSource | ZarrSource | IcechunkSource | CallableSource | SyntheticDataset, Field(discriminator="kind")
]
"""A source a deployment can name in JSON; `kind` says which."""

type DatasetSource = NamedSource | InMemoryDataset


def source_fingerprint(source: DatasetSource) -> str:
    """What identifies the source's content beyond the names of its dask graphs (which encode how it is computed):
    the files' sizes and modification times, an Icechunk source's snapshot. Empty where the graph names suffice
    (synthetic data, in-memory Datasets) or nothing more is known (a function's own inputs)."""
    return source.fingerprint() if isinstance(source, NetCDFSource | ZarrSource | IcechunkSource) else ""


def open_source(source: DatasetSource) -> xr.Dataset:
    return source if isinstance(source, xr.Dataset) else source.open()
