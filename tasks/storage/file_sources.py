"""Files a run can read: NetCDF and GRIB, one or many, named by a path, a glob or a list of them (local, S3, HTTP),
combined into one lazy Dataset whose dask chunks each come from one file: a block task opens only the files its
region overlaps. A file's size and modification time (its ETag on S3) fingerprint it for resume.
"""

import importlib.util
import json
import re
import tempfile
import warnings
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

    def _on_disk(self, url: str) -> str:
        """A local path of `url`: the file itself, or a copy of a remote one (fetched once per machine), for readers of
        local files only (cfgrib, scipy)."""
        if urlparse(url).scheme in ("", "file"):
            return str(Path(url.removeprefix("file://")).resolve())
        protocol = urlparse(url).scheme
        options = {protocol: storage_options(url, self.anonymous) or {}}
        cache = {"cache_storage": str(GRIB_FILES / "remote")}
        return str(fsspec.open_local(f"simplecache::{url}", simplecache=cache, **options))


NETCDF_FORMATS = {
    b"\x89HDF": ("NetCDF4/HDF5", "h5netcdf", "h5netcdf"),
    b"CDF\x01": ("NetCDF3 classic", "scipy", "scipy"),
    b"CDF\x02": ("NetCDF3 64-bit offset", "scipy", "scipy"),
    b"CDF\x05": ("NetCDF3 64-bit data (CDF5)", "netcdf4", "netCDF4"),
}
"""A NetCDF file's format by its first four bytes: its name, the xarray engine icefloe reads it with, and the package
that engine needs."""


def netcdf_engine(url: str, anonymous: bool) -> str:
    """The engine for the NetCDF file at `url`, from its first bytes; refused naming the format and the package to
    install when that engine is missing, or naming what the file is not."""
    fs, path = fsspec.url_to_fs(url, **(storage_options(url, anonymous) or {}))
    with fs.open(path, "rb") as file:
        magic = file.read(4)
    if magic not in NETCDF_FORMATS:
        raise InvalidRequestError(
            f"cannot read the NetCDF source: {url} is not a NetCDF file (it starts with {magic!r}, not NetCDF4/HDF5's "
            "or NetCDF3's signature)"
        )
    name, engine, package = NETCDF_FORMATS[magic]
    if importlib.util.find_spec(package) is None:
        raise InvalidRequestError(
            f"cannot read the NetCDF source: {url} is {name}, which xarray reads with its {engine!r} engine: install "
            f"{package} where the run opens its source and its workers read it (pip install {package})"
        )
    return engine


class NetCDFSource(FileSource):
    """NetCDF files, one or many, combined into one Dataset: NetCDF4/HDF5 (through h5netcdf) and NetCDF3, classic and
    64-bit offset (through scipy), the format told by each file's first bytes."""

    model_config = FROZEN | ConfigDict(title="NetCDF files")

    kind: Literal["netcdf"] = "netcdf"

    def open(self) -> xr.Dataset:
        urls = self.urls()
        engine = netcdf_engine(urls[0], self.anonymous)  # one engine for all: files of one source share a format
        if engine == "h5netcdf":  # reads remote files in place, range by range
            opened: dict[str, Any] = {"storage_options": storage_options(urls[0], self.anonymous)}
        else:  # reads local files only: a remote one is copied once per machine
            urls, opened = [self._on_disk(url) for url in urls], {}
        try:
            dataset = _combined(urls, engine, self.chunks, self.concat_dim, **opened)
        except (OSError, ValueError, TypeError) as e:
            raise InvalidRequestError(
                f"cannot read the NetCDF source: {self._culprit(urls, engine) or self.paths}: {e}"
            ) from e
        return select_variables(dataset, self.variables, f"the NetCDF source {self.paths!r}")

    def _culprit(self, urls: list[str], engine: str) -> str | None:
        """The first file that does not open on its own, if one does not."""
        for url in urls:
            try:
                netcdf_engine(url, self.anonymous)
                xr.open_dataset(url, engine=engine, storage_options=storage_options(url, self.anonymous)).close()
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
        """The files as one Dataset: those of one hypercube, or the messages `filter_by_keys` selects."""
        return self._opened(self.filter_by_keys or {})

    def open_hypercubes(self) -> dict[str, xr.Dataset]:
        """Each hypercube of the files as a Dataset of its own, named by its kind of level (and its level, where
        several share a kind: `heightAboveGround-2`), as cfgrib's `open_datasets` tells them apart in the first file;
        {"": the Dataset} for files of one hypercube, or when `filter_by_keys` selects the messages."""
        if self.filter_by_keys:
            return {"": self.open()}
        found = hypercube_filters(self._indexed(self.urls()[0]), self._backend({}))
        if len(found) == 1:
            return {"": self.open()}
        opened = {name: self._opened(keys, select=False) for name, keys in found.items()}
        if self.variables is None:
            return opened
        selected = {name: d[[v for v in self.variables if v in d.data_vars]] for name, d in opened.items()}
        missing = sorted(set(self.variables) - {str(v) for d in selected.values() for v in d.data_vars})
        if missing:
            held = sorted({str(v) for d in opened.values() for v in d.data_vars})
            raise InvalidRequestError(f"variables {missing} are not in the GRIB source {self.paths!r}; it has {held}")
        return {name: d for name, d in selected.items() if d.data_vars}

    def _opened(self, keys: dict[str, Any], select: bool = True) -> xr.Dataset:
        files = [self._indexed(url) for url in self.urls()]
        try:
            dataset = _combined(files, "cfgrib", self.chunks, self.concat_dim, backend_kwargs=self._backend(keys))
        except Exception as e:  # cfgrib's own errors derive from nothing more specific
            mixed = type(e).__name__ == "DatasetBuildError"
            hint = (
                '; read one kind of level at a time: filter_by_keys, e.g. {"typeOfLevel": "surface"} (`icefloe '
                "write` and the write-dataset flow write each as a group of its own)"
                if mixed
                else ""
            )
            raise InvalidRequestError(
                f"cannot read the GRIB source {self.paths!r}: {type(e).__name__}: {e}{hint}"
            ) from e
        # cfgrib's coordinates (valid_time, ...) come from the files' indexes, lazily: read now, they are written
        # with the metadata, and each block still opens only the files of its own region
        dataset = dataset.assign_coords({name: c.compute() for name, c in dataset.coords.items() if c.chunks})
        # cfgrib stamps the minute it read the files into `history`: a run resumed a minute after a failed one would
        # find its request changed (its group's attributes) and write every block again
        if isinstance(dataset.attrs.get("history"), str):
            dataset.attrs["history"] = re.sub(r"^\d{4}-\d\d-\d\dT[\d:]+\s*", "", dataset.attrs["history"])
        return select_variables(dataset, self.variables, f"the GRIB source {self.paths!r}") if select else dataset

    def _indexed(self, url: str) -> str:
        """The file on disk, with a directory for its index: cfgrib names each index after its file."""
        path = self._on_disk(url)
        (GRIB_FILES / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def _backend(keys: dict[str, Any]) -> dict[str, Any]:
        return {
            "filter_by_keys": keys,
            "indexpath": f"{GRIB_FILES}/{{path}}.{{short_hash}}.idx",
            # cfgrib would leave out, with a warning only, a variable that does not fit in the Dataset
            "errors": "raise",
        }


def hypercube_filters(path: str, backend: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The hypercubes of the GRIB file at `path`, by name, each as the `filter_by_keys` that reads it (its kind of
    level, its step type and its parameters), as cfgrib's `open_datasets` splits the file."""
    import cfgrib

    found: dict[str, list[tuple[dict[str, Any], xr.Dataset]]] = {}
    with warnings.catch_warnings():  # cfgrib's own merge, about xarray's coming defaults: nothing a user can change
        warnings.simplefilter("ignore", FutureWarning)
        cubes = cfgrib.open_datasets(path, backend_kwargs=backend)
    for cube in cubes:
        attrs = [cube[name].attrs for name in cube.data_vars]
        keys: dict[str, Any] = {"paramId": sorted(int(a["GRIB_paramId"]) for a in attrs)}
        for key in ("typeOfLevel", "stepType"):
            values = {a.get(f"GRIB_{key}") for a in attrs}
            if len(values) == 1 and None not in values:
                keys[key] = values.pop()
        found.setdefault(str(keys.get("typeOfLevel", "undef")), []).append((keys, cube))
    named: dict[str, dict[str, Any]] = {}
    for level_type, cubes in found.items():
        for keys, cube in cubes:
            name = level_type if len(cubes) == 1 else _with_level(level_type, cube)
            if name is None or name in named:
                raise InvalidRequestError(
                    f"the GRIB file {path} holds several hypercubes of level type {level_type!r} that no single "
                    f"level tells apart (one holds {sorted(map(str, cube.data_vars))}): read each with filter_by_keys"
                )
            named[name] = keys
    return named


def _with_level(level_type: str, cube: xr.Dataset) -> str | None:
    """`heightAboveGround-2`: a hypercube named by its kind of level and its one level, if it has one."""
    level = cube.coords.get(level_type)
    return f"{level_type}-{level.item():g}" if level is not None and level.ndim == 0 else None
