"""The bad-input catalogue: requests a user gets wrong, on the command line, through the Python API and through the
REST API. Each is refused with a message naming what is wrong and how to fix it (on the command line: one line,
no traceback, exit status 2), and leaves the target as it was: an existing branch unchanged, no repository
created where there was none, nothing that trips the next run."""

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import pytest

from flows.ingest import ingest
from flows.store_array import store_array
from flows.write_dataset import write_dataset
from tasks.errors import ChunkAlignmentError, InvalidRequestError, OverlappingWritesError, ValidationHookError
from tasks.request import ArraySpec, ArrayWrite, WriteOptions
from tasks.storage.sources import CallableSource
from tasks.storage.synthetic import SyntheticDataset
from tests.conftest import open_repo
from tests.processes import command_env, icefloe, started_prefect_home
from tests.sources import netcdf_files

PYDANTIC = re.compile(r"pydantic|validation errors? for|\[type=|input_value=")
"""pydantic's own text, which no refusal may show."""

SMALL = {"kind": "synthetic", "ntime": 48, "nlat": 19, "nlon": 36, "time_chunk": 24}


def small(**changes: Any) -> str:
    return json.dumps({**SMALL, **changes})


@dataclass(frozen=True)
class Case:
    """A command line (`{existing}`: a repository the case must leave unchanged; `{new}`: a path where none may be
    created; `{files}`: a directory of good NetCDF files, `{corrupt}`: a file that is not NetCDF) and what the user
    must read in its one error line."""

    argv: list[str]
    says: list[str]
    status: int = 2
    setup: list[str] = field(default_factory=list)


CLI_CASES = {
    "source-json-bad-value": Case(["write", small(ntime=0), "{new}"], ["source", "ntime", "greater than 0"]),
    "source-json-unknown-kind": Case(["write", '{"kind": "csv"}', "{new}"], ["kind", "'csv'", "netcdf", "grib"]),
    "source-json-unknown-field": Case(["write", small(colour=1), "{new}"], ["source", "colour", "not permitted"]),
    "source-json-malformed": Case(["write", '{"kind": "synthetic",', "{new}"], ["source", "JSON"]),
    "source-glob-matches-nothing": Case(["write", "{new}-nothing/*.nc", "{new}"], ["matches no file"]),
    "source-file-missing": Case(["write", "{new}-missing.nc", "{new}"], ["does not exist", "missing.nc"]),
    "source-file-corrupt": Case(["write", "{corrupt}", "{new}"], ["corrupt.nc", "NetCDF"]),
    "source-zarr-missing": Case(["write", "{new}-missing.zarr", "{new}"], ["missing.zarr", "does not exist"]),
    "source-callable-missing": Case(["write", "tests.nowhere:source", "{new}"], ["tests.nowhere"]),
    "source-callable-not-a-dataset": Case(["write", "tests.sources:not_a_dataset", "{new}"], ["not an xarray"]),
    "source-variables-unknown": Case(
        ["write", '{"kind": "netcdf", "paths": "{files}/*.nc", "variables": ["nope"]}', "{new}"], ["['nope']", "t2m"]
    ),
    "source-icechunk-two-versions": Case(
        ["write", '{"kind": "icechunk", "repo": "x", "branch": "a", "tag": "b"}', "{new}"], ["branch and tag"]
    ),
    "target-scheme": Case(["write", small(), "gs://bucket/prefix"], ["gs", "s3://bucket/prefix"]),
    "target-s3-no-prefix": Case(["write", small(), "s3://bucket"], ["s3://bucket", "prefix"]),
    "mode-w-minus-on-data": Case(["write", small(), "{existing}", "--mode", "w-"], ["w-", "mode"]),
    "append-dim-unknown": Case(["write", small(), "{existing}", "--append-dim", "nope"], ["nope"]),
    "append-shape-mismatch": Case(["write", small(nlat=20), "{existing}", "--append-dim", "time"], ["lat"]),
    "region-syntax": Case(["write", small(), "{existing}", "--region", "time=abc"], ["--region", "time=abc"]),
    "region-misaligned": Case(
        [
            "write",
            small(ntime=24),
            "{existing}",
            "--mode",
            "r+",
            "--region",
            "time=5:29",
            "--region",
            "lat=0:19",
            "--region",
            "lon=0:36",
        ],
        ["slice(5, 29", "align_chunks"],
    ),
    "region-on-new-target": Case(["write", small(), "{new}", "--mode", "r+", "--region", "time=0:48"], ["r+"]),
    "encoding-not-json": Case(["write", small(), "{new}", "--encoding", "{t2m"], ["--encoding", "JSON"]),
    "encoding-unknown-variable": Case(
        ["write", small(), "{new}", "--encoding", '{"nope": {"chunks": [24, 19, 36]}}'], ["['nope']", "does not have"]
    ),
    "encoding-unknown-variable-recorded-in-prefect": Case(
        ["write", small(), "{new}", "--encoding", '{"nope": {"chunks": [24, 19, 36]}}', "--temporary-server"],
        ["['nope']", "does not have", "t2m"],
    ),
    "encoding-not-a-dictionary": Case(
        ["write", small(), "{new}", "--encoding", '{"t2m": "zstd"}'],
        ["encoding", "'t2m'", "must be castable to a dictionary", "'zstd'"],
    ),
    "encoding-unknown-key": Case(["write", small(), "{new}", "--encoding", '{"t2m": {"bogus": 1}}'], ["bogus"]),
    "encoding-chunk-zero": Case(
        ["write", small(), "{new}", "--encoding", '{"t2m": {"chunks": [0, 19, 36]}}'],
        ["'t2m'", "chunks [0, 19, 36]", "positive"],
    ),
    "hook-not-importable": Case(
        ["write", small(), "{new}", "--validation-hook", "tests.nowhere:hook"], ["tests.nowhere"]
    ),
    "hook-refuses": Case(
        ["write", small(), "{new}", "--validation-hook", "tests.sources:refuse_everything"],
        ["refuse_everything", "refused"],
    ),
    "publish-check-not-importable": Case(
        ["write", small(), "{existing}", "--mode", "w", "--publish", "--publish-check", "tests.nowhere:check"],
        ["publish check", "tests.nowhere"],
    ),
    "publish-check-without-publish": Case(
        ["write", small(), "{new}", "--publish-check", "tests.sources:refuse_everything"],
        ["--publish-check", "add --publish"],
    ),
    "publish-staged-missing": Case(
        ["publish", "{existing}", "--staged", "icefloe.staged.main.nothing"], ["no staging branch", "icefloe staged"]
    ),
    "branch-missing": Case(
        ["write", small(), "{existing}", "--mode", "a", "--append-dim", "time", "--branch", "nope"], ["'nope'", "main"]
    ),
    "block-mib-zero": Case(["write", small(), "{new}", "--block-mib", "0"], ["--block-mib", "greater than 0"]),
    "retries-negative": Case(["write", small(), "{new}", "--retries", "-1"], ["--retries", "greater than or equal"]),
    "n-workers-zero": Case(["write", small(), "{new}", "--n-workers", "0"], ["--n-workers", "greater than 0"]),
    "dask-address-not-a-url": Case(
        ["write", small(), "{new}", "--dask-address", "localhost:8786"],
        ["--dask-address", "^(tcp|tls|inproc|ucx)://", "localhost:8786"],
    ),
    "dry-run-missing-source": Case(["write", "{new}-missing.nc", "{new}", "--dry-run"], ["does not exist"]),
    "history-not-a-repository": Case(["history", "{new}"], ["{new}", "no Icechunk repository"]),
    "validate-not-a-repository": Case(["validate", "{new}"], ["{new}", "no Icechunk repository"]),
    "validate-branch-missing": Case(["validate", "{existing}", "--branch", "nope"], ["'nope'", "main"]),
    "validate-snapshot-unknown": Case(
        ["validate", "{existing}", "--snapshot", "ABCDEFGHIJKLMNOPQRST"], ["ABCDEFGHIJKLMNOPQRST", "icefloe history"]
    ),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An existing repository with one write, good NetCDF files, a corrupt one."""
    root = tmp_path_factory.mktemp("bad-inputs")
    env = command_env(root / "home")
    existing = root / "existing"
    done = icefloe("write", small(), str(existing), env=env, cwd=root)
    assert done.returncode == 0, done.stderr
    netcdf_files(root / "files", SyntheticDataset(**SMALL).open(), steps_per_file=24)  # type: ignore[arg-type]
    (root / "corrupt.nc").write_bytes(b"this is not a NetCDF file\n" * 10)
    return {
        "root": str(root),
        "existing": str(existing),
        "files": str(root / "files"),
        "corrupt": str(root / "corrupt.nc"),
    }


def fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace(f"{{{name}}}", value)
    return text


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_the_command_line_refuses_with_one_clear_line(name: str, workspace: dict[str, str], tmp_path: Path) -> None:
    case = CLI_CASES[name]
    new = tmp_path / "new-repo"
    argv = [fill(a, {**workspace, "new": str(new)}) for a in case.argv]
    tip = open_repo(workspace["existing"]).lookup_branch("main")

    started = time.perf_counter()
    done = icefloe(*argv, env=command_env(started_prefect_home(tmp_path / "home")), cwd=tmp_path)
    seconds = time.perf_counter() - started

    lines = [line for line in done.stderr.splitlines() if line.startswith("icefloe ")]
    assert done.returncode == case.status, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(lines) == 1, done.stderr[-3000:]
    for fragment in case.says:
        assert fill(fragment, {"new": str(new)}) in lines[0], lines[0]
    assert not PYDANTIC.search(done.stderr), done.stderr[-3000:]
    assert open_repo(workspace["existing"]).lookup_branch("main") == tip
    assert not new.exists(), f"{new} was created"
    assert not list(Path(workspace["existing"]).glob("icefloe/kept/*/*")), "a refused run kept something"
    print(f"{name}: {seconds:.2f} s")


def _zeros(shape: tuple[int, ...]) -> da.Array:
    return da.zeros(shape, chunks=5, dtype="float32")


PYTHON_CASES: dict[str, tuple[Callable[[str], object], type[Exception], list[str]]] = {
    # name: (the call, given a target path; the exception; what its message must say)
    "store-array-shape-too-small": (
        lambda repo: store_array(repo, [ArrayWrite(source=_zeros((10, 10)), target=ArraySpec(path="x", chunks=(5, 5),
                                                                                                shape=(4, 4)))]),
        InvalidRequestError, ["'x'", "(4, 4)", "[0:10, 0:10]"]),
    "store-array-misaligned-region": (
        lambda repo: store_array(repo, [ArrayWrite(source=_zeros((5, 5)), region=(slice(2, 7), slice(0, 5)),
                                                   target=ArraySpec(path="x", chunks=(5, 5), shape=(10, 10)))]),
        ChunkAlignmentError, ["'x'", "nearest aligned region"]),
    "store-array-overlapping-writes": (
        lambda repo: store_array(repo, [
            ArrayWrite(source=_zeros((10, 10)), target=ArraySpec(path="x", chunks=(5, 5))),
            ArrayWrite(source=_zeros((5, 5)), target="x", region=(slice(0, 5), slice(0, 5)))]),
        OverlappingWritesError, ["'x'", "overlapping"]),
    "store-array-missing-array": (
        lambda repo: store_array(repo, [ArrayWrite(source=_zeros((10, 10)), target="nope")]),
        InvalidRequestError, ["'nope'", "ArraySpec"]),
    "store-array-no-writes": (lambda repo: store_array(repo, []), InvalidRequestError, ["no writes"]),
    "write-dataset-bad-mode": (
        lambda repo: write_dataset(repo, SyntheticDataset(**SMALL), mode="overwrite"),  # type: ignore[arg-type]
        InvalidRequestError, ["mode", "'w', 'w-', 'a', 'a-' or 'r+'", "(given: 'overwrite')"]),
    "write-dataset-encoding-not-a-dictionary": (
        lambda repo: write_dataset(repo, SyntheticDataset(**SMALL), encoding={"t2m": "zstd"}),  # type: ignore[dict-item]
        InvalidRequestError, ["encoding", "'t2m'", "must be castable to a dictionary", "'zstd'", "e.g."]),
    "write-dataset-source-as-json-with-a-bad-value": (
        lambda repo: write_dataset(repo, {**SMALL, "ntime": 0}),  # type: ignore[arg-type]
        InvalidRequestError, ["source.synthetic.ntime", "greater than 0", "(given: 0)"]),
    "write-dataset-hook-refuses": (
        lambda repo: write_dataset(repo, SyntheticDataset(**SMALL), validation_hook="tests.sources:refuse_everything"),
        ValidationHookError, ["refuse_everything", "nothing was committed"]),
    "ingest-publish-check-not-importable": (
        lambda repo: ingest(repo, CallableSource(function="tests.sources:steps", keywords={"start": 0, "stop": 24}),
                            publish_check="tests.nowhere:check"),
        InvalidRequestError, ["publish check", "tests.nowhere"]),
    "write-dataset-bad-options": (
        lambda repo: write_dataset(repo, SyntheticDataset(**SMALL), options=WriteOptions(block_bytes=0)),
        InvalidRequestError, ["WriteOptions", "block_bytes", "greater than 0", "(given: 0)"]),
    "write-dataset-bad-options-as-json": (
        lambda repo: write_dataset(repo, SyntheticDataset(**SMALL), options={"n_workers": -1}),  # type: ignore[arg-type]
        InvalidRequestError, ["options.n_workers", "greater than 0", "(given: -1)"]),
}  # fmt: skip


@pytest.mark.parametrize("name", list(PYTHON_CASES))
def test_the_python_api_refuses_before_writing(name: str, prefect_api: None, tmp_path: Path) -> None:
    call, error, says = PYTHON_CASES[name]
    target = tmp_path / "repo"

    with pytest.raises(error) as raised:
        call(str(target))

    for fragment in says:
        assert fragment in str(raised.value), str(raised.value)
    assert not PYDANTIC.search(str(raised.value)), str(raised.value)
    assert not target.exists(), f"{target} was created"
