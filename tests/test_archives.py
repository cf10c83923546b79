"""The archives users hold, each written by icefloe and read back equal to `to_icechunk` of the same files: NetCDF3
(classic and 64-bit offset, as ERA-Interim, NCEP/NCAR reanalysis and CMIP5 are), Zarr v2 stores (consolidated or
not) and NetCDF files served over HTTP (a local server that answers range requests, as a web server does). A file
whose engine is not installed is refused naming its format and the package to install."""

import importlib.util
import io
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import icechunk
import pytest
import xarray as xr
from icechunk.xarray import to_icechunk

from tasks.errors import InvalidRequestError
from tasks.request import DatasetWrite
from tasks.running.local import LocalOrchestrator
from tasks.running.runs import run_write_dataset
from tasks.storage.file_sources import NetCDFSource
from tasks.storage.sources import DatasetSource, ZarrSource
from tasks.storage.synthetic import SyntheticDataset
from tests.conftest import committed

DATASET = SyntheticDataset(ntime=48, nlat=19, nlon=36, time_chunk=24)


def reference(tmp_path: Path, dataset: xr.Dataset) -> xr.Dataset:
    """What `to_icechunk` writes of `dataset`, read back."""
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "reference")))
    session = repo.writable_session("main")
    to_icechunk(dataset, session, mode="w")
    session.commit("reference")
    return xr.open_zarr(repo.readonly_session("main").store, consolidated=False).load()


def written(tmp_path: Path, source: DatasetSource) -> xr.Dataset:
    target = str(tmp_path / "repo")
    run_write_dataset(LocalOrchestrator(), target, source, DatasetWrite(mode="w"))
    return committed(target)


def netcdf_files(directory: Path, file_format: str) -> list[Path]:
    """The dataset as two files of a day each, in `file_format` (xarray's name for it)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"day-{day}.nc" for day in (0, 1)]
    for day, path in enumerate(paths):
        DATASET.time_slice(24 * day, 24 * (day + 1)).to_netcdf(path, format=file_format, engine="scipy")
    return paths


@pytest.mark.parametrize("file_format", ["NETCDF3_CLASSIC", "NETCDF3_64BIT"])
def test_netcdf3_files_land_as_to_icechunk_writes_them(tmp_path: Path, file_format: str) -> None:
    paths = netcdf_files(tmp_path / "files", file_format)
    assert paths[0].read_bytes()[:4] == (b"CDF\x01" if file_format == "NETCDF3_CLASSIC" else b"CDF\x02")
    source = NetCDFSource(paths=str(tmp_path / "files" / "*.nc"), concat_dim="time")

    ours = written(tmp_path, source)

    theirs = reference(tmp_path, xr.open_mfdataset(sorted(map(str, paths)), combine="nested", concat_dim="time"))
    xr.testing.assert_identical(ours, theirs)


def test_a_netcdf_file_whose_engine_is_missing_is_refused_naming_its_format_and_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netcdf_files(tmp_path / "files", "NETCDF3_64BIT")
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else found(name, *a))

    with pytest.raises(InvalidRequestError) as refused:
        written(tmp_path, NetCDFSource(paths=str(tmp_path / "files" / "day-0.nc")))

    said = str(refused.value)
    assert "day-0.nc is NetCDF3 64-bit offset" in said
    assert "install scipy" in said
    assert not (tmp_path / "repo").exists()


def test_a_file_that_is_not_netcdf_is_refused_saying_so(tmp_path: Path) -> None:
    (tmp_path / "notes.nc").write_text("not a NetCDF file")

    with pytest.raises(InvalidRequestError, match=r"notes\.nc is not a NetCDF file"):
        written(tmp_path, NetCDFSource(paths=str(tmp_path / "notes.nc")))


@pytest.mark.parametrize("consolidated", [True, False], ids=["consolidated", "not-consolidated"])
def test_a_zarr_v2_store_lands_as_to_icechunk_writes_it(tmp_path: Path, consolidated: bool) -> None:
    store = tmp_path / "v2.zarr"
    DATASET.open().to_zarr(store, zarr_format=2, consolidated=consolidated)
    assert (store / ".zgroup").exists()  # Zarr v2's layout

    ours = written(tmp_path, ZarrSource(url=str(store)))

    # to_icechunk refuses a v2 store's codecs (numcodecs', for Zarr v3): the reference writes it without them
    theirs = reference(tmp_path, xr.open_zarr(store, consolidated=consolidated).drop_encoding())
    xr.testing.assert_identical(ours, theirs)


class RangeRequests(SimpleHTTPRequestHandler):
    """Files of a directory, with the range requests a web server answers (the standard library's answers none)."""

    def send_head(self) -> Any:
        ranged = self.headers.get("Range", "")
        if not ranged.startswith("bytes="):
            return super().send_head()
        path = Path(self.translate_path(self.path))
        data = path.read_bytes()
        start_text, _, stop_text = ranged.removeprefix("bytes=").partition("-")
        start = int(start_text)
        stop = min(int(stop_text) if stop_text else len(data) - 1, len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{stop}/{len(data)}")
        self.send_header("Content-Length", str(stop - start + 1))
        self.end_headers()
        return io.BytesIO(data[start : stop + 1])

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def served_files(tmp_path: Path) -> Iterator[str]:
    """A web server on loopback serving `tmp_path/files`; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeRequests, directory=str(tmp_path / "files")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_a_netcdf_file_over_http_lands_as_to_icechunk_writes_it(tmp_path: Path, served_files: str) -> None:
    (tmp_path / "files").mkdir()
    DATASET.open().to_netcdf(tmp_path / "files" / "era.nc", engine="h5netcdf")

    ours = written(tmp_path, NetCDFSource(paths=f"{served_files}/era.nc"))

    xr.testing.assert_identical(ours, reference(tmp_path, xr.open_dataset(tmp_path / "files" / "era.nc")))
