"""Files a run can read: NetCDF and GRIB, one or many, named by a path, a glob or a list of them (local, S3, HTTP),
combined into one lazy Dataset whose dask chunks each come from one file: a block task opens only the files its
region overlaps. A file's size and modification time (its ETag on S3) fingerprint it for resume.
"""

import json
import tempfile
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import fsspec
import xarray as xr
from fsspec.implementations.local import LocalFileSystem
from pydantic import ConfigDict, Field, PositiveInt

from tasks.errors import InvalidRequestError
from tasks.internals.pydantic import Request
from tasks.storage.target import storage_options

FROZEN = ConfigDict(frozen=True, extra="forbid")
VARIABLES = Field(None, description="Data variables to keep (with their coordinates); default: all")
_PATHS = Field(description="A path, a glob or a list of them; local, s3://bucket/key or http(s)://", min_length=1)
_CONCAT_DIM = Field(
    None,
    description="Dimension the files are concatenated along, in the order given (a glob's matches sorted); "
    "default: combined by their coordinates",
)
_CHUNKS = Field(None, description="Dask chunks per dimension inside each file; default: the files' own chunking")
_ANONYMOUS = Field(False, description="Read public S3 objects without credentials")

GRIB_FILES = Path(tempfile.gettempdir()) / "icefloe-grib"
"""Where cfgrib's index files go (never beside a source, which may be read-only), and the copies of remote GRIB
files, which cfgrib reads from disk only."""


def select_variables(dataset: xr.Dataset, variables: list[str] | None, where: str) -> xr.Dataset:
    if variables is None:
        return dataset
    missing = sorted(set(variables) - set(map(str, dataset.data_vars)))
    if missing:
        raise InvalidRequestError(
            f"variables {missing} are not in {where}; it has {sorted(map(str, dataset.data_vars))}"
        )
    return dataset[variables]


def files_state(fs: fsspec.AbstractFileSystem, paths: list[str]) -> str:
    """Each file's size and modification time (its ETag on S3): what changes when its content does."""
    state = []
    for path in paths:
        info = fs.info(path)
        state.append([path, info.get("size"), info.get("mtime"), info.get("ETag"), str(info.get("LastModified"))])
    return json.dumps(state, default=str)


def matched_urls(paths: str | list[str], anonymous: bool) -> list[str]:
    """Every file `paths` names, in order. A path that does not exist or a glob that matches nothing is refused."""
    found: list[str] = []
    for pattern in [paths] if isinstance(paths, str) else paths:
        fs, path = fsspec.url_to_fs(pattern, **(storage_options(pattern, anonymous) or {}))
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


def _files_fingerprint(urls: list[str], anonymous: bool) -> str:
    return files_state(fsspec.url_to_fs(urls[0], **(storage_options(urls[0], anonymous) or {}))[0], urls)


def _combined(
    urls: list[str], engine: str, chunks: dict[str, int] | None, concat_dim: str | None, **backend: Any
) -> xr.Dataset:
    """The files as one lazy Dataset, each file its own dask chunks: a block opens only the files of its region."""
    return xr.open_mfdataset(
        urls,
        engine=engine,
        chunks=chunks or {},
        combine="nested" if concat_dim else "by_coords",
        concat_dim=concat_dim,
        # variables without the concat dimension (lat, lon, ...) are taken from the first file, not compared
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="outer",
        **backend,
    )


class FileSource(Request):
    """What every kind of file source has: files named by paths, combined along a dimension or by coordinates."""

    model_config = FROZEN

    kind: str  # each kind narrows it to its own name (and keeps its place, first, in the form)
    paths: str | list[str] = _PATHS
    concat_dim: str | None = _CONCAT_DIM
    variables: list[str] | None = VARIABLES
    chunks: dict[str, PositiveInt] | None = _CHUNKS
    anonymous: bool = _ANONYMOUS

    def urls(self) -> list[str]:
        return matched_urls(self.paths, self.anonymous)

    def fingerprint(self) -> str:
        return _files_fingerprint(self.urls(), self.anonymous)


class NetCDFSource(FileSource):
    """NetCDF4/HDF5 files, one or many, combined into one Dataset."""

    model_config = FROZEN | ConfigDict(title="NetCDF files")

    kind: Literal["netcdf"] = "netcdf"

    def open(self) -> xr.Dataset:
        urls = self.urls()
        options = storage_options(urls[0], self.anonymous)
        try:
            dataset = _combined(urls, "h5netcdf", self.chunks, self.concat_dim, storage_options=options)
        except (OSError, ValueError) as e:
            raise InvalidRequestError(f"cannot read the NetCDF source: {self._culprit(urls) or self.paths}: {e}") from e
        return select_variables(dataset, self.variables, f"the NetCDF source {self.paths!r}")

    def _culprit(self, urls: list[str]) -> str | None:
        """The first file that does not open on its own, if one does not."""
        for url in urls:
            try:
                xr.open_dataset(url, engine="h5netcdf", storage_options=storage_options(url, self.anonymous)).close()
            except Exception:
                return url
        return None


class GribSource(FileSource):
    """GRIB 1 and 2 files, one or many (as ECMWF open data, GFS, HRRR and ERA5 arrive), read through cfgrib and
    combined into one Dataset."""

    model_config = FROZEN | ConfigDict(title="GRIB files")

    kind: Literal["grib"] = "grib"
    filter_by_keys: dict[str, str | int | float] | None = Field(
        None,
        description='GRIB keys a message must have to be read, as cfgrib takes them (e.g. {"typeOfLevel": '
        '"surface"}): one Dataset holds one kind of level, so a file that mixes them is read one kind at a time',
    )

    def open(self) -> xr.Dataset:
        files = [self._on_disk(url) for url in self.urls()]
        for path in files:  # cfgrib names each index after its file: "{path}" below
            (GRIB_FILES / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        backend = {
            "filter_by_keys": self.filter_by_keys or {},
            "indexpath": f"{GRIB_FILES}/{{path}}.{{short_hash}}.idx",
            # cfgrib would leave out, with a warning only, a variable that does not fit in the Dataset
            "errors": "raise",
        }
        try:
            dataset = _combined(files, "cfgrib", self.chunks, self.concat_dim, backend_kwargs=backend)
        except Exception as e:  # cfgrib's own errors derive from nothing more specific
            mixed = type(e).__name__ == "DatasetBuildError"
            hint = (
                '; read one kind of level at a time: filter_by_keys, e.g. {"typeOfLevel": "surface"}' if mixed else ""
            )
            raise InvalidRequestError(
                f"cannot read the GRIB source {self.paths!r}: {type(e).__name__}: {e}{hint}"
            ) from e
        # cfgrib's coordinates (valid_time, ...) come from the files' indexes, lazily: read now, they are written
        # with the metadata, and each block still opens only the files of its own region
        dataset = dataset.assign_coords({name: c.compute() for name, c in dataset.coords.items() if c.chunks})
        return select_variables(dataset, self.variables, f"the GRIB source {self.paths!r}")

    def _on_disk(self, url: str) -> str:
        """A local path of `url`: the file itself, or a copy of a remote one (fetched once per machine)."""
        if urlparse(url).scheme in ("", "file"):
            return str(Path(url.removeprefix("file://")).resolve())
        protocol = urlparse(url).scheme
        options = {protocol: storage_options(url, self.anonymous) or {}}
        cache = {"cache_storage": str(GRIB_FILES / "remote")}
        return str(fsspec.open_local(f"simplecache::{url}", simplecache=cache, **options))
