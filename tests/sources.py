"""Sources with side effects, for provoking failures. Module-level functions, so process workers can import them."""

import json
import os
import pickle
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import dask.array as da
import icechunk
import numpy as np
import xarray as xr
import zarr

from tasks.errors import InvalidRequestError
from tasks.records import BlockJob
from tasks.request import WriteOptions
from tasks.storage.synthetic import SyntheticDataset
from tasks.writing.block import write_block


def _claim(marker_dir: str, name: str, limit: int) -> bool:
    """True for the first `limit` callers across processes (an exclusive file create per claim)."""
    for i in range(limit):
        try:
            os.close(os.open(Path(marker_dir) / f"{name}-{i}", os.O_CREAT | os.O_EXCL))
            return True
        except FileExistsError:
            continue
    return False


def _fail_first(x: np.ndarray, marker_dir: str, attempts: int, block_info: Any = None) -> np.ndarray:
    if block_info and not any(block_info[0]["chunk-location"]) and _claim(marker_dir, "fail", attempts):
        raise OSError("injected failure while reading the source")
    return x


def failing_first(source: da.Array, marker_dir: str, attempts: int) -> da.Array:
    """`source`, but computing its first chunk raises on the first `attempts` tries."""
    return source.map_blocks(_fail_first, marker_dir, attempts, dtype=source.dtype)


def _fail_always(x: np.ndarray, marker_dir: str, invalid: bool, block_info: Any = None) -> np.ndarray:
    if block_info and not any(block_info[0]["chunk-location"]):
        Path(marker_dir, f"attempt-{uuid4().hex}").touch()
        if invalid:
            raise InvalidRequestError("injected: this request can never succeed")
        raise OSError("injected: connection reset by peer")
    return x


def failing_always(source: da.Array, marker_dir: str, invalid: bool) -> da.Array:
    """`source`, but computing its first chunk always fails, with an invalid request or an I/O error; each attempt
    leaves a file `attempt-*` in `marker_dir`."""
    return source.map_blocks(_fail_always, marker_dir, invalid, dtype=source.dtype)


def _commit_elsewhere(x: np.ndarray, target: str, path: str, marker_dir: str, block_info: Any = None) -> np.ndarray:
    if block_info and not any(block_info[0]["chunk-location"]) and _claim(marker_dir, "commit", 1):
        from tests.conftest import open_repo

        session = open_repo(target).writable_session("main")
        array = zarr.open_array(session.store, path=path, mode="r+")
        array[...] = 7
        session.commit("a concurrent writer")
    return x


def committing_elsewhere(source: da.Array, target: str, path: str, marker_dir: str) -> da.Array:
    """`source`, but while it is computed another writer commits to array `path` of the same repository."""
    return source.map_blocks(_commit_elsewhere, target, path, marker_dir, dtype=source.dtype)


def _kill_worker(x: np.ndarray, marker_dir: str, times: int, block_info: Any = None) -> np.ndarray:
    if block_info and not any(block_info[0]["chunk-location"]) and _claim(marker_dir, "kill", times):
        os._exit(1)
    return x


def killing_worker(source: da.Array, marker_dir: str, times: int) -> da.Array:
    """`source`, but computing its first chunk kills the worker process the first `times` times."""
    return source.map_blocks(_kill_worker, marker_dir, times, dtype=source.dtype)


def synthetic(ntime: int = 48, seed: int = 0) -> xr.Dataset:
    """A callable source: `tests.sources:synthetic` with keywords (or none), as a deployment would name it."""
    return SyntheticDataset(ntime=ntime, nlat=19, nlon=36, time_chunk=24, seed=seed).open()


def not_a_dataset() -> int:
    return 42


def refuse_everything(dataset: xr.Dataset) -> None:
    """A validation hook that refuses whatever it is shown."""
    raise ValueError("this hook refuses every write")


def time_must_increase(dataset: xr.Dataset) -> None:
    """A validation hook: the time coordinate of the initialized group must be strictly increasing."""
    if not dataset.indexes["time"].is_monotonic_increasing or not dataset.indexes["time"].is_unique:
        raise ValueError("time is not strictly increasing")


def netcdf_files(directory: Path, dataset: xr.Dataset, steps_per_file: int) -> list[Path]:
    """`dataset` cut along time into NetCDF4 files of `steps_per_file` steps, named by their first step."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, dataset.sizes["time"], steps_per_file):
        path = directory / f"part-{start:05d}.nc"
        dataset.isel(time=slice(start, start + steps_per_file)).to_netcdf(path, engine="h5netcdf")
        paths.append(path)
    return paths


GRIB_GRID = {"Ni": 36, "Nj": 19, "iDirectionIncrementInDegrees": 10.0, "jDirectionIncrementInDegrees": 10.0}
# on "surface" levels; every file also holds "2t" at 2 m and "10u" at 10 m, which `filter_by_keys` leaves out
GRIB_SURFACE = ("sp", "skt")
GRIB_ABOVE_GROUND = {"2t": 2, "10u": 10}


GRIB_PRESSURE = ("t", "z")


def grib_files(directory: Path, days: int, steps_per_day: int = 4, pressure: tuple[int, ...] = ()) -> list[Path]:
    """GRIB2 files made from ecCodes' own sample, a day each (named by it), of 6-hourly steps on a 10-degree grid:
    surface pressure and skin temperature on the surface, and 2 m temperature and 10 m wind above it (two levels of
    another kind, which cfgrib cannot put in one Dataset); with `pressure` levels (hPa), temperature and geopotential
    on each, as ECMWF's and NCEP's files hold surface and pressure levels together."""
    import eccodes

    on_levels = [(name, {"typeOfLevel": "surface"}) for name in GRIB_SURFACE]
    on_levels += [(name, {"typeOfLevel": "heightAboveGround", "level": m}) for name, m in GRIB_ABOVE_GROUND.items()]
    on_levels += [(name, {"typeOfLevel": "isobaricInhPa", "level": hpa}) for hpa in pressure for name in GRIB_PRESSURE]
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in range(days):
        path = directory / f"day-{day:03d}.grib2"
        with path.open("wb") as out:
            for step in range(steps_per_day):
                for i, (name, level) in enumerate(on_levels):
                    message = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
                    keys = {"shortName": name, **level, "dataDate": 20260101 + day, "dataTime": step * 600}
                    keys |= {"latitudeOfFirstGridPointInDegrees": 90.0, "latitudeOfLastGridPointInDegrees": -90.0}
                    keys |= {"longitudeOfFirstGridPointInDegrees": 0.0, "longitudeOfLastGridPointInDegrees": 350.0}
                    for key, value in (keys | GRIB_GRID).items():
                        eccodes.codes_set(message, key, value)
                    values = 1000.0 * (i + 1) + day * 10 + step + np.linspace(0, 1, 19 * 36)
                    eccodes.codes_set_values(message, values)
                    eccodes.codes_write(message, out)
                    eccodes.codes_release(message)
        paths.append(path)
    return paths


def hide_a_file(dataset: xr.Dataset) -> None:
    """A validation hook that moves the file ICEFLOE_TEST_HIDE names out of the way, if it is set: the blocks that
    need it then fail (a source that lost a file while a run was writing)."""
    hidden = os.environ.get("ICEFLOE_TEST_HIDE")
    if hidden and Path(hidden).exists():
        Path(hidden).rename(f"{hidden}.hidden")


def steps(start: int, stop: int, scale: float = 1.0) -> xr.Dataset:
    """Steps [start, stop) of one synthetic series (a callable source); `scale` makes a "corrected" version."""
    dataset = SyntheticDataset(ntime=96, nlat=19, nlon=36, time_chunk=24).time_slice(start, stop)
    return dataset if scale == 1.0 else dataset.assign({name: dataset[name] * scale for name in dataset.data_vars})


def defective(start: int, stop: int, defect: str) -> xr.Dataset:
    """`steps(start, stop)` with one defect a publish gate must catch: "nan" (its second step NaN everywhere),
    "backwards" (time labels a year earlier) or "float64" (variables of another dtype)."""
    dataset = steps(start, stop)
    if defect == "nan":
        return dataset.where(dataset["time"] != dataset["time"][1])
    if defect == "backwards":
        return dataset.assign_coords(time=dataset["time"] - np.timedelta64(365, "D"))
    if defect == "float64":
        return dataset.astype("float64")
    raise ValueError(f"no defect {defect!r}")


KILL_FILE = "ICEFLOE_TEST_KILL_FILE"


def killed_once(dataset: xr.Dataset) -> None:
    """A publish check that kills its own process (SIGKILL, as the OOM killer would) the first time: once the file
    the environment names exists, it removes it and dies; without it, it passes."""
    marker = Path(os.environ.get(KILL_FILE, "/nonexistent"))
    if marker.exists():
        marker.unlink()
        os.kill(os.getpid(), signal.SIGKILL)


OTHER_WRITER = "ICEFLOE_TEST_OTHER_WRITER"


def another_writer_once(dataset: xr.Dataset) -> None:
    """A publish check that, the first time, commits to the target's main branch as a writer outside icefloe would,
    between the staged commit and the publish: a new array `other` (no conflict), or, with "conflict", one more
    step of `t2m` (-1 everywhere), where the staged run appended its own. The environment names the target and a
    marker file whose existence means "not yet"."""
    spec = json.loads(os.environ[OTHER_WRITER])
    marker = Path(spec["marker"])
    if not marker.exists():
        return
    marker.unlink()
    session = icechunk.Repository.open(icechunk.local_filesystem_storage(spec["target"])).writable_session("main")
    if spec["conflict"]:
        t2m = zarr.open_array(session.store, path="t2m", mode="r+")
        t2m.resize((t2m.shape[0] + 1, *t2m.shape[1:]))
        t2m[-1] = -1.0
    else:
        zarr.open_group(session.store, mode="r+").create_array(
            "other", shape=(3,), chunks=(3,), dtype="i4", dimension_names=("other",)
        )[:] = 7
    session.commit("another writer")


def _pause(x: np.ndarray, seconds: float) -> np.ndarray:
    time.sleep(seconds)
    return x


def slow(ntime: int = 96, seconds: float = 1.0) -> xr.Dataset:
    """A callable source whose every dask chunk takes `seconds` to compute: a write long enough to interrupt."""
    dataset = SyntheticDataset(ntime=ntime, nlat=19, nlon=36, time_chunk=8).open()
    return dataset.map(lambda v: v.copy(data=v.data.map_blocks(_pause, seconds, dtype=v.dtype)) if v.chunks else v)


def _broken(x: np.ndarray) -> np.ndarray:
    raise OSError("injected failure while reading the source")


def broken(ntime: int = 48) -> xr.Dataset:
    """A callable source that opens fine and fails when any block reads it."""
    dataset = SyntheticDataset(ntime=ntime, nlat=19, nlon=36, time_chunk=24).open()
    return dataset.map(lambda v: v.copy(data=v.data.map_blocks(_broken, dtype=v.dtype)) if v.chunks else v)


def _invalid(x: np.ndarray) -> np.ndarray:
    raise InvalidRequestError("injected: this block's part of the source is wrong")


def invalid_in_a_block(ntime: int = 48) -> xr.Dataset:
    """A callable source that opens fine and whose every block refuses to be computed, as a request error would."""
    dataset = SyntheticDataset(ntime=ntime, nlat=19, nlon=36, time_chunk=24).open()
    return dataset.map(lambda v: v.copy(data=v.data.map_blocks(_invalid, dtype=v.dtype)) if v.chunks else v)


def _counted(x: np.ndarray, marker_dir: str, variable: str, pause: float, block_info: Any = None) -> np.ndarray:
    chunk = "-".join(map(str, block_info[0]["chunk-location"])) if block_info else "?"
    time.sleep(pause)
    Path(marker_dir, f"read-{variable}-{chunk}-{uuid4().hex}").touch()
    if Path(marker_dir, f"fail-{chunk}").exists():
        raise OSError(f"injected failure while reading chunk {chunk} of {variable}")
    collect = Path(marker_dir, f"collect-{chunk}")
    if collect.exists():  # Icechunk's garbage collection runs on the target while the chunk is computed, once
        target = collect.read_text()
        collect.unlink()
        from tests.conftest import open_repo

        open_repo(target).garbage_collect(datetime.now(UTC))
    return x


COUNTED_CHUNK_BYTES = 24 * 19 * 36 * 4 * 2  # one chunk of both of `counted`'s variables: a block each


def counted(
    marker_dir: str, ntime: int = 96, pause: float = 0.0, nlat: int = 19, nlon: int = 36, time_chunk: int = 24
) -> xr.Dataset:
    """A callable source (`time_chunk` steps a chunk) that leaves a file `read-<variable>-<chunk>-*` in `marker_dir`
    for every chunk computed, fails while a file `fail-<chunk>` exists there, runs a garbage collection on the
    repository a file `collect-<chunk>` names (once), takes `pause` seconds a chunk, and shifts its latitudes by
    the number a file `lat-shift` holds (initialized values that change while the dask graph does not).
    Its dask names are the same for the same arguments: what fails, and when, is not part of the request."""
    dataset = SyntheticDataset(ntime=ntime, nlat=nlat, nlon=nlon, time_chunk=time_chunk).open()
    shift = Path(marker_dir) / "lat-shift"
    if shift.exists():
        dataset = dataset.assign_coords(lat=dataset.lat + float(shift.read_text()))
    return dataset.map(
        lambda v: v.copy(data=v.data.map_blocks(_counted, marker_dir, v.name, pause, dtype=v.dtype)) if v.chunks else v
    )


def chunks_read(marker_dir: Path) -> list[str]:
    """What `counted` computed, as `<variable>-<chunk>`, sorted."""
    read = (p.name.removeprefix("read-").rsplit("-", 1)[0] for p in marker_dir.glob("read-*"))
    return sorted(name for name in read if not name.endswith("?"))  # "?": dask probing the function, no chunk


def write_blocks_each_with_only_its_file(
    session: icechunk.Session, jobs: list[BlockJob], files: list[Path], options: WriteOptions
) -> list[icechunk.ForkSession]:
    """Each block (one per file, in order) written as a worker would (from its pickled job) while every other file
    is moved away: a block that touched one would fail. The blocks' forks."""
    shipped = [pickle.dumps(job) for job in jobs]  # what a worker receives
    hidden = files[0].parent.parent / "hidden"
    hidden.mkdir()
    forks = []
    for own, payload in zip(files, shipped, strict=True):
        for other in files:
            if other != own:
                other.rename(hidden / other.name)
        job: BlockJob = pickle.loads(payload)
        forks.append(write_block(session.fork(), job.block, job.unit, job.sources, options))
        for moved in hidden.iterdir():
            moved.rename(own.parent / moved.name)
    return forks


def spaced_coordinate() -> xr.Dataset:
    """A callable source with a coordinate whose name has a space: xarray warns as it encodes it (SerializationWarning,
    in the process that initializes the write)."""
    dataset = SyntheticDataset(ntime=24, nlat=19, nlon=36, time_chunk=24).open()
    return dataset.assign_coords({"step index": ("time", np.arange(24))})


def nan_as_integers() -> xr.Dataset:
    """A callable source of floats with a NaN, stored as int16 without a fill value: xarray warns as it initializes
    (SerializationWarning), numpy as each block is computed ("invalid value encountered in cast": RuntimeWarning, in
    the process that writes the block)."""
    values = da.from_array(np.array([1.0, np.nan, 3.0, 4.0], dtype="float64"), chunks=2)
    dataset = xr.Dataset({"x": ("t", values)})
    dataset["x"].encoding = {"dtype": "int16"}
    return dataset


def leave_marker(marker: str) -> xr.Dataset:
    """A callable source that leaves a file at `marker` (what `subprocess:getoutput` would do, harmlessly) and
    returns a small dataset: whether a served run called it shows on disk."""
    Path(marker).write_text(f"called in process {os.getpid()}")
    return SyntheticDataset(ntime=24, nlat=19, nlon=36, time_chunk=24).open()


def leave_trace(dataset: xr.Dataset) -> None:
    """A validation hook or publish check that leaves a file named by ICEFLOE_TEST_TRACE (when set) and passes."""
    trace = os.environ.get("ICEFLOE_TEST_TRACE")
    if trace:
        Path(trace).write_text(f"called with {len(dataset.data_vars)} variables")
