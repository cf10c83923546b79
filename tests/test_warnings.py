"""xarray's warnings reach icefloe's caller as they reach a caller of `to_zarr`: each once, whether the write runs
in the caller's process (threads), on Dask worker processes, or as the command (on its terminal).

The reference is `to_icechunk` on the same source, whose warnings a caller sees through dask's threaded scheduler."""

import warnings
from pathlib import Path

import icechunk
import pytest
from icechunk.xarray import to_icechunk

from tasks.request import DatasetWrite, WriteOptions
from tasks.running.local import LocalOrchestrator
from tasks.running.runs import run_write_dataset
from tasks.storage.sources import CallableSource
from tests.processes import command_env, icefloe
from tests.sources import nan_as_integers, spaced_coordinate

SOURCES = {"spaced_coordinate": spaced_coordinate, "nan_as_integers": nan_as_integers}
EXPECTED = {  # what to_icechunk warns of, by category, a part of the text each
    "spaced_coordinate": [("SerializationWarning", "has a space in its name")],
    "nan_as_integers": [
        ("SerializationWarning", "floating point data as an integer dtype without any _FillValue"),
        ("RuntimeWarning", "invalid value encountered in cast"),
    ],
}


def seen(caught: list[warnings.WarningMessage], name: str) -> list[tuple[str, str]]:
    """Of the warnings caught, those a source's reference warns of, as (category, the part of the text)."""
    found = []
    for category, text in EXPECTED[name]:
        found += [(category, text) for w in caught if w.category.__name__ == category and text in str(w.message)]
    return sorted(found)


@pytest.mark.parametrize("name", list(SOURCES))
def test_to_icechunk_warns_of_each_once(name: str) -> None:
    """The reference itself: what icefloe must match."""
    session = icechunk.Repository.create(icechunk.in_memory_storage()).writable_session("main")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        to_icechunk(SOURCES[name](), session, mode="w")

    assert seen(caught, name) == sorted(EXPECTED[name])


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "worker-processes"])
@pytest.mark.parametrize("name", list(SOURCES))
def test_a_python_caller_sees_each_warning_once(name: str, processes: bool, tmp_path: Path) -> None:
    source = CallableSource(function=f"tests.sources:{name}")
    options = WriteOptions(processes=processes, n_workers=1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_write_dataset(LocalOrchestrator(), str(tmp_path / "repo"), source, DatasetWrite(mode="w"), options=options)

    assert seen(caught, name) == sorted(EXPECTED[name])


@pytest.mark.parametrize("name", list(SOURCES))
def test_the_command_shows_each_warning_once(name: str, tmp_path: Path) -> None:
    done = icefloe(
        "write", f"tests.sources:{name}", str(tmp_path / "repo"), "--processes", "--n-workers", "1",
        env=command_env(tmp_path / "home"), cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    for category, text in EXPECTED[name]:
        assert sum(f"{category}: " in line and text in line for line in done.stderr.splitlines()) == 1, done.stderr
