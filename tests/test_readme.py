"""The README's commands, JSON parameters and Python, run as written (tests/readme.py reads them from the README):
the `icefloe` command's examples and synopsis, the Python examples, and the parameters of the schedule example.
The deployments' examples (a run through `prefect deployment run`, curl and `run_deployment`) run against the
served stack in tests/deployments/test_readme_runs.py. The README's buckets (raw, lake, my-bucket) are made on the
test's S3 server; only a Dask scheduler's address and `uv run` are replaced."""

import inspect
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import icechunk
import pytest
import xarray as xr
import yaml
import zarr
from distributed import LocalCluster
from icechunk.xarray import to_icechunk

from tasks.errors import InvalidRequestError
from tasks.storage.target import repository_storage
from tests.conftest import S3_ENV, committed, open_repo, snapshot_count
from tests.flows.test_grib import SURFACE, as_cfgrib_reads
from tests.processes import command_env
from tests.readme import ROOT, block, commands, fresh_buckets, run, small, upload
from tests.sources import grib_files

pytestmark = [pytest.mark.s3]

MYPKG_CHECKS = '''
import numpy as np


def time_is_continuous(dataset):
    """The README's validation hook: time steps only increase."""
    if not (np.diff(dataset["time"].values) > np.timedelta64(0)).all():
        raise ValueError("time goes backwards")
'''


@pytest.fixture
def readme_env(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Empty README buckets; the S3 endpoint and keys in the environment (this process's and the commands')."""
    fresh_buckets(s3_endpoint, "raw", "lake", "my-bucket")
    for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return command_env(tmp_path / "home", **S3_ENV, AWS_ENDPOINT_URL=s3_endpoint)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A Dask scheduler the commands can reach (tcp), as the README's tcp://scheduler:8786 stands for."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None) as c:
        yield c.scheduler_address


def test_the_write_examples_run_as_written(readme_env: dict[str, str], scheduler: str, tmp_path: Path) -> None:
    # November appended to October (append_dim into a target that does not exist is refused, as to_zarr does); the
    # days differ in their `seed` attribute, and the last write's attributes are the group's, as with to_zarr
    october = small(24, "2026-10-31")
    session = icechunk.Repository.create(repository_storage("s3://lake/era5.icechunk")).writable_session("main")
    to_icechunk(october, session)
    session.commit("October")
    november = [small(24, f"2026-11-0{day}", seed=day) for day in (1, 2)]
    for day, dataset in zip((1, 2), november, strict=True):
        upload(dataset, f"s3://raw/era5/2026-11-0{day}.nc", tmp_path)
    (tmp_path / "data").mkdir()
    era5 = small(168, "2026-01-01")
    session = icechunk.Repository.create(icechunk.local_filesystem_storage("data/era5.icechunk")).writable_session(
        "main"
    )
    to_icechunk(era5, session, encoding={name: {"chunks": (24, 19, 36)} for name in era5.data_vars})
    session.commit("a week")
    small(24, str(era5.time.values[120]), seed=9).to_netcdf("data/fix.nc", engine="h5netcdf")
    repository = icechunk.Repository.create(repository_storage("s3://lake/staging.icechunk"))
    session = repository.writable_session("main")
    to_icechunk(small(48, "2026-06-01", seed=3), session)
    repository.create_tag("v3", session.commit("v3"))
    session = repository.writable_session("main")
    to_icechunk(small(24, "2026-07-01", seed=4), session, mode="w")
    session.commit("after v3")  # main moved on: what lands must be the tag's
    grib = grib_files(tmp_path / "data" / "ifs", days=2)

    write, dry_run, from_staging, from_grib = commands(block("icefloe write 's3://raw/era5/2026-11-*.nc'"))

    run(write, readme_env, tmp_path, {"tcp://scheduler:8786": scheduler})
    xr.testing.assert_equal(committed("s3://lake/era5.icechunk"), xr.concat([october, *november], "time"))
    assert snapshot_count("s3://lake/era5.icechunk") == 3

    assert "dry run" in run(dry_run, readme_env, tmp_path).lower()
    assert snapshot_count("data/era5.icechunk") == 2  # nothing written

    run(from_staging, readme_env, tmp_path)
    xr.testing.assert_identical(committed("s3://lake/era5.icechunk"), committed("s3://lake/staging.icechunk", tag="v3"))

    run(from_grib, readme_env, tmp_path)
    assert json.loads(shlex.split(from_grib)[2])["filter_by_keys"] == SURFACE
    xr.testing.assert_equal(committed("data/ifs.icechunk"), as_cfgrib_reads(grib))


def test_every_command_and_option_of_the_synopsis_exists(tmp_path: Path) -> None:
    env = command_env(tmp_path / "home")
    for line in commands(block("icefloe write SOURCE TARGET [options]")):
        words = line.split("#")[0].replace("[", " ").replace("]", " ").split()[1:]
        at = 0
        while words[at].startswith("--"):  # the command's own options, each with its value, come first
            at += 2
        top = run("icefloe --help", env, tmp_path)
        own = run(f"icefloe {words[at]} --help", env, tmp_path)
        assert words[at] in top, line
        for option in (w for w in words[:at] if w.startswith("--")):
            assert option in top, line
        for option in (w for w in words[at + 1 :] if w.startswith("--")):
            assert option in own, line


def test_the_python_examples_run_as_written(
    readme_env: dict[str, str], scheduler: str, tmp_path: Path, prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "checks.py").write_text(MYPKG_CHECKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    days = [small(24, f"2026-11-2{day}", seed=day, full=True) for day in (0, 1)]
    for day, dataset in zip((0, 1), days, strict=True):
        upload(dataset, f"s3://raw/era5/2026-11-2{day}.nc", tmp_path)
    next_day_dataset = small(24, "2026-11-22", seed=7, full=True)

    store_array_example = block("from flows.store_array import store_array")
    exec(store_array_example.replace("tcp://scheduler:8786", scheduler), {})
    written = zarr.open_array(open_repo("s3://my-bucket/era5.icechunk").readonly_session("main").store, path="t2m")
    assert (written.shape, written.chunks, written.dtype) == ((48, 181, 360), (24, 181, 360), "float32")

    exec(block("from flows.write_dataset import write_dataset"), {"next_day_dataset": next_day_dataset})
    from tasks.storage.synthetic import SyntheticDataset

    first = SyntheticDataset(ntime=72).open().compute()
    xr.testing.assert_equal(committed("data/era.icechunk"), xr.concat([first, *days, next_day_dataset], "time"))
    assert snapshot_count("data/era.icechunk") == 4  # the repository's first, then one per write


def test_the_schedule_example_parameters_are_what_serve_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    from deployments.serve import IngestSchedule, build_deployments
    from flows.cli.main import parser
    from flows.cli.serve import allow_from_flags

    (serve,) = [c for c in commands(block("--ingest-cron")) if "icefloe serve" in c]
    words = shlex.split(serve)
    args = parser().parse_args(words[words.index("serve") :])
    for name in ("FUNCTIONS", "TARGETS", "SOURCES", "DASK_ADDRESSES"):
        monkeypatch.delenv(f"ICEFLOE_ALLOWED_{name}", raising=False)
    allow_from_flags(args)  # what the example allows, as `icefloe serve` does with its flags
    parameters = json.loads(args.ingest_parameters)

    ingest = build_deployments(IngestSchedule(parameters, cron=args.ingest_cron))[1]  # what serve checks as it starts

    assert ingest.parameters == parameters
    assert [s.schedule.cron for s in ingest.schedules] == [args.ingest_cron]
    monkeypatch.delenv("ICEFLOE_ALLOWED_FUNCTIONS")
    with pytest.raises(InvalidRequestError, match="ICEFLOE_ALLOWED_FUNCTIONS"):  # without its --allow-function
        build_deployments(IngestSchedule(parameters, cron=args.ingest_cron))


def cluster_routes() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every cluster the README names: its class, keywords and adapt()'s, from `icefloe write` commands, `export`
    lines and a work pool's job variables."""
    routes = []
    for text in re.findall(r"```[a-z]*\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        if "--cluster-class" in text:
            for command in (c for c in commands(text) if "--cluster-class" in c):
                words = shlex.split(command)
                settings = [words[words.index(flag) + 1] for flag in ("--cluster-kwargs", "--adapt-kwargs")]
                routes.append((words[words.index("--cluster-class") + 1], *map(json.loads, settings)))
        elif "ICEFLOE_CLUSTER_CLASS" in text:
            env = dict(shlex.split(line)[1].split("=", 1) for line in commands(text) if line.startswith("export "))
            if not env:
                env = yaml.safe_load(text)["work_pool"]["job_variables"]["env"]
            kwargs, adapt = (json.loads(env[name]) for name in ("ICEFLOE_CLUSTER_KWARGS", "ICEFLOE_ADAPT_KWARGS"))
            routes.append((env["ICEFLOE_CLUSTER_CLASS"], kwargs, adapt))
    return routes


def keywords_of(cls: type) -> set[str]:
    """The keywords `cls` names (its own and, where it passes the rest on, its parents' and its job class's)."""
    named: set[str] = set()
    for owner in cls.__mro__:
        if "__init__" in vars(owner):
            parameters = inspect.signature(vars(owner)["__init__"]).parameters.values()
            named |= {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self"}
    job = getattr(cls, "job_cls", None)
    return named | (keywords_of(job) if isinstance(job, type) else set())


def test_every_cluster_route_names_keywords_its_class_takes() -> None:
    from tasks.running.cluster import cluster_keywords, import_cluster_class

    routes = cluster_routes()

    assert sorted(path for path, _, _ in routes) == [
        "coiled.Cluster",
        "dask_jobqueue.SLURMCluster",
        "dask_jobqueue.SLURMCluster",
        "dask_kubernetes.operator.KubeCluster",
    ]
    for path, kwargs, adapt in routes:
        cls = import_cluster_class(path)
        unknown = set(cluster_keywords(cls, kwargs)) - keywords_of(cls)
        assert not unknown, f"{path} takes no {sorted(unknown)}"
        inspect.signature(cls.adapt).bind(cls, **adapt)  # raises naming a keyword adapt() does not take


def test_the_kubernetes_workers_get_the_preload_and_where_s3_is_beside_their_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tasks.running.cluster import WORKER_PRELOAD, cluster_keywords, import_cluster_class

    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.org")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-pods")
    (kwargs,) = [kwargs for path, kwargs, _ in cluster_routes() if path.endswith("KubeCluster")]

    env = cluster_keywords(import_cluster_class("dask_kubernetes.operator.KubeCluster"), kwargs)["env"]

    assert {"name": "DASK_DISTRIBUTED__WORKER__PRELOAD", "value": WORKER_PRELOAD} in env
    assert {"name": "AWS_ENDPOINT_URL", "value": "https://s3.example.org"} in env
    secret = [e for e in env if e["name"] == "AWS_SECRET_ACCESS_KEY"]
    assert secret == [
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "secret-access-key"}}}
    ]


def test_the_slurm_example_builds_its_cluster_and_job_script() -> None:
    """The README's HPC example, as dask-jobqueue's SLURMCluster takes it: its job script what its keywords ask (no
    job submitted: the cluster starts with none)."""
    from tasks.running.cluster import import_cluster_class

    path, kwargs, _ = cluster_routes()[0]
    assert path == "dask_jobqueue.SLURMCluster"

    with import_cluster_class(path)(**kwargs) as cluster:
        script = cluster.job_script()

    assert "#SBATCH -p compute" in script
    assert "#SBATCH -A climate" in script
    assert "#SBATCH -t 02:00:00" in script
    assert "--nthreads 8" in script
