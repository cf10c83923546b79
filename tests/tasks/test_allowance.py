"""The operator's allowance for deployment runs (`tasks/allowance.py`): what is allowed, by which setting, and what a
refusal says. Each check reads only the name it is given: a refused function is never imported."""

import sys
from pathlib import Path

import pytest

from flows.deployment_runs import check_allowed
from tasks.allowance import check_address, check_bounds, check_function, check_place, describe
from tasks.errors import InvalidRequestError
from tasks.request import WriteOptions
from tasks.storage.file_sources import NetCDFSource
from tasks.storage.sources import CallableSource, IcechunkSource, ZarrSource
from tasks.storage.synthetic import SyntheticDataset


@pytest.fixture(autouse=True)
def _no_allowance(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FUNCTIONS", "TARGETS", "SOURCES", "DASK_ADDRESSES"):
        monkeypatch.delenv(f"ICEFLOE_ALLOWED_{name}", raising=False)


def test_no_function_is_allowed_by_default_and_the_refusal_names_the_setting_without_importing_it() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        check_function("source.function", "subprocess:getoutput")

    said = str(refused.value)
    assert "source.function 'subprocess:getoutput'" in said
    assert "ICEFLOE_ALLOWED_FUNCTIONS=subprocess:getoutput" in said
    assert "'icefloe.functions'" in said
    with pytest.raises(InvalidRequestError):
        check_function("validation_hook", "tests.never_imported_module:hook")
    assert "tests.never_imported_module" not in sys.modules


def test_a_function_is_allowed_by_name_or_by_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEFLOE_ALLOWED_FUNCTIONS", "tests.sources:steps, mypkg.checks:*")

    check_function("source.function", "tests.sources:steps")
    check_function("publish_check", "mypkg.checks:anything")
    with pytest.raises(InvalidRequestError, match=r"tests\.sources:counted"):
        check_function("source.function", "tests.sources:counted")
    with pytest.raises(InvalidRequestError):
        check_function("source.function", "mypkg.checks.sub:anything")  # a module's star is not its submodules'


def test_a_function_an_installed_package_registers_is_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution's entry points, as `pip install` leaves them in site-packages."""
    dist = tmp_path / "icefloe_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: icefloe-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[icefloe.functions]\nera5 = plugin.sources:era5\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    check_function("source.function", "plugin.sources:era5")
    with pytest.raises(InvalidRequestError):
        check_function("source.function", "plugin.sources:other")
    assert "call plugin.sources:era5 (entry points icefloe.functions)" in describe()


def test_a_local_place_is_judged_as_it_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    (data / "era5").mkdir(parents=True)
    (data / "escape").symlink_to("/etc")
    monkeypatch.setenv("ICEFLOE_ALLOWED_TARGETS", f"{data}/")

    check_place("repo", str(data / "era5" / "t2m.icechunk"), "ICEFLOE_ALLOWED_TARGETS")
    check_place("repo", f"file://{data}/era5/new.icechunk", "ICEFLOE_ALLOWED_TARGETS")
    for outside in (f"{data}/../elsewhere", f"{data}/escape/passwd", "/etc/passwd", f"{data}-other/x", "~/x"):
        with pytest.raises(InvalidRequestError, match="ICEFLOE_ALLOWED_TARGETS"):
            check_place("repo", outside, "ICEFLOE_ALLOWED_TARGETS")


def test_a_glob_is_judged_by_the_directory_of_its_first_wildcard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEFLOE_ALLOWED_SOURCES", "/data/,s3://raw/era5/")

    check_place("source.paths", "/data/era5-*.nc", "ICEFLOE_ALLOWED_SOURCES")
    check_place("source.paths", "s3://raw/era5/2026-*.nc", "ICEFLOE_ALLOWED_SOURCES")
    for outside in ("/data*/x.nc", "/dat[a]/x.nc", "s3://raw/era5*/x.nc", "s3://raw*/era5/x.nc"):
        with pytest.raises(InvalidRequestError):
            check_place("source.paths", outside, "ICEFLOE_ALLOWED_SOURCES")


def test_an_object_store_or_web_place_is_judged_by_scheme_host_and_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEFLOE_ALLOWED_SOURCES", "s3://lake, https://data.example.org/pub/")

    check_place("source.url", "s3://lake/era5.zarr", "ICEFLOE_ALLOWED_SOURCES")
    check_place("source.paths", "https://data.example.org/pub/a.nc", "ICEFLOE_ALLOWED_SOURCES")
    for outside in (
        "s3://lake-private/x",  # another bucket that starts alike
        "gs://lake/x",  # another scheme
        "https://data.example.org@evil.example/pub/a.nc",  # credentials in the URL: another host
        "https://data.example.org.evil.example/pub/a.nc",
        "https://data.example.org/pub/../private/a.nc",  # a server may resolve it
        "simplecache::s3://lake/x",  # fsspec's chained URLs
        "http://169.254.169.254/latest/meta-data/",
        "/lake/x",
    ):
        with pytest.raises(InvalidRequestError, match="ICEFLOE_ALLOWED_SOURCES"):
            check_place("source", outside, "ICEFLOE_ALLOWED_SOURCES")


def test_no_scheduler_is_allowed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidRequestError, match=r"ICEFLOE_ALLOWED_DASK_ADDRESSES=tcp://10\.0\.0\.9:8786"):
        check_address("options.dask_address", "tcp://10.0.0.9:8786")
    monkeypatch.setenv("ICEFLOE_ALLOWED_DASK_ADDRESSES", "tcp://scheduler:8786")
    check_address("options.dask_address", "tcp://scheduler:8786")


@pytest.mark.parametrize(
    ("options", "bound"),
    [
        ({"n_workers": 10_000}, "ICEFLOE_MAX_WORKERS"),
        ({"block_bytes": 100 * 10**9}, "ICEFLOE_MAX_BLOCK_BYTES"),
        ({"piece_bytes": 10 * 2**30}, "ICEFLOE_MAX_PIECE_BYTES"),
        ({"chunk_concurrency": 100_000}, "ICEFLOE_MAX_CONCURRENCY"),
        ({"max_task_runs": 1_000_000}, "ICEFLOE_MAX_TASK_RUNS"),
        ({"retries": 1000}, "ICEFLOE_MAX_RETRIES"),
        ({"retry_delay_seconds": 86_400}, "ICEFLOE_MAX_DELAY_SECONDS"),
    ],
)
def test_sizes_and_counts_past_their_bound_are_refused_naming_it(options: dict[str, float], bound: str) -> None:
    with pytest.raises(InvalidRequestError, match=bound) as refused:
        check_bounds("options", WriteOptions(**options).model_dump())  # type: ignore[arg-type]
    assert f"options.{next(iter(options))}" in str(refused.value)


def test_the_operator_raises_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEFLOE_MAX_WORKERS", "20000")
    check_bounds("options", WriteOptions(n_workers=10_000).model_dump())
    check_bounds("options", WriteOptions().model_dump())  # the defaults are within every default bound


def test_a_run_s_parameters_are_checked_for_every_place_and_function_they_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ICEFLOE_ALLOWED_TARGETS", "s3://lake/")
    monkeypatch.setenv("ICEFLOE_ALLOWED_SOURCES", "s3://raw/")
    check_allowed(target="s3://lake/t.icechunk", source=SyntheticDataset(), options=WriteOptions())
    check_allowed(target="s3://lake/t.icechunk", source=NetCDFSource(paths=["s3://raw/a.nc", "s3://raw/b.nc"]))
    check_allowed(reads="s3://raw/other.icechunk")  # a repository validated: under the targets or the sources

    refused = {
        "repo 's3://raw/t.icechunk'": {"target": "s3://raw/t.icechunk"},
        "source.paths '/etc/passwd'": {"source": NetCDFSource(paths=["s3://raw/a.nc", "/etc/passwd"])},
        "source.url": {"source": ZarrSource(url="s3://elsewhere/x.zarr")},
        "source.repo": {"source": IcechunkSource(repo="/root/x.icechunk")},
        "source.function": {"source": CallableSource(function="subprocess:getoutput", keywords={"cmd": "id"})},
        "validation_hook": {"functions": {"validation_hook": "os:system"}},
        "options.dask_address": {"options": WriteOptions(dask_address="tcp://127.0.0.1:9")},
    }
    for says, parameters in refused.items():
        with pytest.raises(InvalidRequestError, match=f"^{says}"):
            check_allowed(**parameters)  # type: ignore[arg-type]


def test_what_is_allowed_is_described_for_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEFLOE_ALLOWED_TARGETS", "s3://lake/")

    said = describe()

    assert "call nothing (ICEFLOE_ALLOWED_FUNCTIONS)" in said
    assert "write under s3://lake/ (ICEFLOE_ALLOWED_TARGETS)" in said
    assert "connect to nothing (ICEFLOE_ALLOWED_DASK_ADDRESSES)" in said
