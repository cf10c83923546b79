"""The cluster a run starts, by class: named by the run, else by the operator's environment (as `icefloe serve` and a
work pool's runs take it); what its workers are given on top of the user's keywords."""

import json

import pytest

from tasks.errors import InvalidRequestError
from tasks.request import WriteOptions
from tasks.running.cluster import (
    WORKER_PRELOAD,
    WORKER_SETTINGS,
    ClusterClass,
    cluster_class,
    cluster_keywords,
    import_cluster_class,
)

JOBS = {"cores": 1, "memory": "2GiB"}


def test_the_operators_environment_names_the_class_when_the_run_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEFLOE_CLUSTER_CLASS", "dask_jobqueue.SLURMCluster")
    monkeypatch.setenv("ICEFLOE_CLUSTER_KWARGS", json.dumps(JOBS))
    monkeypatch.setenv("ICEFLOE_ADAPT_KWARGS", '{"maximum": 20}')

    assert cluster_class(WriteOptions()) == ClusterClass("dask_jobqueue.SLURMCluster", JOBS, {"maximum": 20})
    named = WriteOptions(cluster_class="dask_jobqueue.PBSCluster", cluster_kwargs={"cores": 2})
    assert cluster_class(named) == ClusterClass("dask_jobqueue.PBSCluster", {"cores": 2}, None)  # the run's wins
    monkeypatch.setenv("ICEFLOE_CLUSTER_KWARGS", "{cores: 1}")
    with pytest.raises(InvalidRequestError, match="ICEFLOE_CLUSTER_KWARGS or ICEFLOE_ADAPT_KWARGS is not JSON"):
        cluster_class(WriteOptions())


def test_no_class_named_anywhere_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ICEFLOE_CLUSTER_CLASS", raising=False)

    assert cluster_class(WriteOptions()) is None


def test_a_class_that_cannot_be_imported_is_refused_naming_the_extra_to_install() -> None:
    with pytest.raises(InvalidRequestError, match=r"cannot be imported .*icefloe\[hpc\]"):
        import_cluster_class("dask_slurm_nonexistent.SLURMCluster")
    with pytest.raises(InvalidRequestError, match="is a function, not a class"):
        import_cluster_class("json.dumps")


def test_a_jobs_workers_preload_the_block_writer_once() -> None:
    slurm = import_cluster_class("dask_jobqueue.SLURMCluster")

    given = cluster_keywords(slurm, {**JOBS, "worker_extra_args": ["--lifetime", "55m"]})

    assert given["worker_extra_args"] == ["--lifetime", "55m", "--preload", WORKER_PRELOAD]
    assert cluster_keywords(slurm, given)["worker_extra_args"] == given["worker_extra_args"]


def test_cloud_machines_get_the_preload_and_where_s3_is_never_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in WORKER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.org")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-machines")

    coiled = import_cluster_class("coiled.Cluster")

    environ = cluster_keywords(coiled, {"environ": {"AWS_REGION": "us-east-1"}})["environ"]

    assert environ == {
        "DASK_DISTRIBUTED__WORKER__PRELOAD": WORKER_PRELOAD,
        "AWS_ENDPOINT_URL": "https://s3.example.org",
        "AWS_REGION": "us-east-1",  # the user's wins
    }
