"""The Dask cluster a run uses: the scheduler it names, a cluster of the class it names (or the operator's:
ICEFLOE_CLUSTER_CLASS) started for it, or a LocalCluster started for it.

A cluster class is what prefect-dask's `DaskTaskRunner(cluster_class=...)` takes: `dask_jobqueue.SLURMCluster` (HPC,
workers as batch jobs), `dask_kubernetes.operator.KubeCluster`, `coiled.Cluster`, with its keyword arguments and,
to grow and shrink with the work, `adapt()`'s. It is started when the run needs its cluster and closed when the run
ends, however it ends: no job is left behind.

Threads by default: writing is decompression, computation, Zstandard and I/O in native code that releases the GIL,
and a threaded LocalCluster starts in milliseconds where process workers take seconds to start and to import what a
block needs. benchmarks/local_cluster.py measured the layouts on synthetic, NetCDF, Zarr and store_array sources:
a thread per core was fastest or tied on each (the README gives the figures). A run without Prefect needs no
cluster for that: it uses a plain pool of threads (`tasks/running/local.py`). Process workers remain an option
(`WriteOptions.processes`) for sources that hold the GIL.
"""

import importlib
import inspect
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dask.config

from tasks.errors import InvalidRequestError
from tasks.request import WriteOptions

if TYPE_CHECKING:
    from distributed import LocalCluster
    from distributed.deploy.cluster import Cluster

WORKER_PRELOAD = "tasks.writing.worker"
"""The module every Dask worker of icefloe's loads as it starts: each LocalCluster started here names it, and so do
docker-compose.yml's workers (`dask worker --preload tasks.writing.worker`)."""

# Each worker's statistical profiler samples every thread's stack 100 times a second for a dashboard that a cluster
# started for a run does not have.
_QUIET_WORKERS = {"distributed.worker.profile.enabled": False}


def scheduler_address(options: WriteOptions) -> str | None:
    """The scheduler the run names, or ICEFLOE_DASK_ADDRESS (which `icefloe serve` and the command set for the flow
    runs they start on their own cluster, whatever class that is)."""
    return options.dask_address or os.environ.get("ICEFLOE_DASK_ADDRESS") or None


@dataclass(frozen=True)
class ClusterClass:
    """A cluster to start: its class's import path, its keyword arguments, and `adapt()`'s (None: no adapting)."""

    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    adapt: dict[str, Any] | None = None


def cluster_class(options: WriteOptions) -> ClusterClass | None:
    """The class of cluster the run names, else the operator's (ICEFLOE_CLUSTER_CLASS, ICEFLOE_CLUSTER_KWARGS and
    ICEFLOE_ADAPT_KWARGS, JSON), else None."""
    if options.cluster_class is not None:
        return ClusterClass(options.cluster_class, options.cluster_kwargs, options.adapt_kwargs)
    path = os.environ.get("ICEFLOE_CLUSTER_CLASS")
    if not path:
        return None
    settings = {name: os.environ.get(name) for name in ("ICEFLOE_CLUSTER_KWARGS", "ICEFLOE_ADAPT_KWARGS")}
    try:
        kwargs, adapt = (json.loads(text) if text else None for text in settings.values())
    except json.JSONDecodeError as e:
        raise InvalidRequestError(f"ICEFLOE_CLUSTER_KWARGS or ICEFLOE_ADAPT_KWARGS is not JSON: {e}") from e
    return ClusterClass(path, kwargs or {}, adapt)


def local_cluster_kwargs(options: WriteOptions) -> dict[str, Any]:
    """`LocalCluster` keywords: a single-threaded worker per core (threads of this process unless `processes`)."""
    cores = os.cpu_count() or 1
    workers = options.n_workers or cores
    return {
        "processes": options.processes,
        "n_workers": workers,
        "threads_per_worker": max(1, cores // workers),
        # no dashboard, and the scheduler's health endpoint on a free port, not 8787 (which another cluster may have)
        "dashboard_address": "127.0.0.1:0",
        "scheduler_kwargs": {"dashboard": False},
    }


@contextmanager
def run_cluster(options: WriteOptions, **overrides: Any) -> Iterator["str | Cluster"]:
    """The one place a run's cluster is decided: the scheduler the run names (`scheduler_address`), else a cluster
    of the class it names (`cluster_class`), else a LocalCluster started for it (`overrides`: LocalCluster keywords
    beyond those `options` give)."""
    address = scheduler_address(options)
    if address:
        yield address
        return
    named = cluster_class(options)
    if named is not None:
        with started_cluster(named) as cluster:
            yield cluster
        return
    with local_cluster(options, **overrides) as cluster:
        yield cluster


def import_cluster_class(path: str) -> type["Cluster"]:
    """The class `path` names (`package.module.Class` or `package.module:Class`), or why it cannot be had."""
    module_name, _, name = path.replace(":", ".").rpartition(".")
    try:
        with _signals_kept():
            found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as e:
        raise InvalidRequestError(
            f"cluster_class {path!r} cannot be imported ({type(e).__name__}: {e}); install its package where the "
            "run starts (icefloe's extras: icefloe[hpc] for dask-jobqueue, [kubernetes], [coiled])"
        ) from e
    if not isinstance(found, type):
        raise InvalidRequestError(f"cluster_class {path!r} is a {type(found).__name__}, not a class")
    return found


@contextmanager
def _signals_kept() -> Iterator[None]:
    """The process's own SIGINT and SIGTERM handlers, as they were before an import: dask-jobqueue's sets SIGINT to
    `sys.exit()` as it is imported, which would end an interrupted command with exit status 0."""
    numbers = (signal.SIGINT, signal.SIGTERM)
    kept = {n: signal.getsignal(n) for n in numbers} if threading.current_thread() is threading.main_thread() else {}
    try:
        yield
    finally:
        for number, handler in kept.items():
            if handler is not None:
                signal.signal(number, handler)


@contextmanager
def started_cluster(named: ClusterClass) -> Iterator["Cluster"]:
    """A cluster of the class `named` names, its workers preloading the block writer, adapting when asked; closed
    (its jobs, pods or machines stopped) when the block ends, however it ends."""
    cls = import_cluster_class(named.path)
    jobs = _is_jobqueue(cls)
    with (
        _jobs_log_as_they_start(jobs),
        dask.config.set(_QUIET_WORKERS),
        cls(**cluster_keywords(cls, named.kwargs)) as cluster,
    ):
        if named.adapt is not None:
            cluster.adapt(**named.adapt)
        scaled = f"adapting {named.adapt}" if named.adapt is not None else "not adapting"
        logging.getLogger("icefloe").info("started a %s (%s): %s", named.path, scaled, cluster.dashboard_link)
        yield cluster


WORKER_SETTINGS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")
"""What workers started elsewhere (pods, cloud machines) are given of this process's environment: where S3 is, never
a credential (those reach them as their platform's secrets or roles: see the README's routes)."""


def cluster_keywords(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` and what the workers of a `cls` cluster need on top, by the keyword its class takes for it: a
    dask-jobqueue job's `dask worker` arguments (jobs inherit the environment they are submitted from), or the
    environment of a pod or machine (`env`: dask-kubernetes' KubeCluster; `environ`: coiled.Cluster) for the preload
    (as Dask's configuration, DASK_DISTRIBUTED__WORKER__PRELOAD) and where S3 is. What the user gave wins."""
    kwargs = dict(kwargs)
    if _is_jobqueue(cls):
        extra = list(kwargs.get("worker_extra_args") or [])
        kwargs["worker_extra_args"] = extra if WORKER_PRELOAD in extra else [*extra, "--preload", WORKER_PRELOAD]
        return kwargs
    takes = inspect.signature(cls).parameters
    key = next((name for name in ("env", "environ") if name in takes), None)
    if key is None:
        return kwargs
    settings = {name: os.environ[name] for name in WORKER_SETTINGS if os.environ.get(name)}
    needed = {"DASK_DISTRIBUTED__WORKER__PRELOAD": WORKER_PRELOAD, **settings}
    given = kwargs.get(key) or {}
    if isinstance(given, list):  # Kubernetes EnvVars, {"name": ..., "value" or "valueFrom": ...}
        named = {entry.get("name") for entry in given}
        kwargs[key] = [*given, *({"name": k, "value": v} for k, v in needed.items() if k not in named)]
    else:
        kwargs[key] = {**needed, **given}
    return kwargs


@contextmanager
def _jobs_log_as_they_start(jobs: bool) -> Iterator[None]:
    """Jobs log at INFO, whatever this process asked of its own workers (the command quiets them through
    DASK_LOGGING__DISTRIBUTED, which a job inherits): a job's output is its own, and dask-jobqueue's local jobs are
    known to have started by their `Registered to:` line, without which closing the cluster waits forever."""
    quieted = os.environ.pop("DASK_LOGGING__DISTRIBUTED", None) if jobs else None
    try:
        yield
    finally:
        if quieted is not None:
            os.environ["DASK_LOGGING__DISTRIBUTED"] = quieted


def _is_jobqueue(cls: type) -> bool:
    try:
        from dask_jobqueue.core import JobQueueCluster
    except ImportError:
        return False
    return issubclass(cls, JobQueueCluster)


@contextmanager
def local_cluster(options: WriteOptions, **overrides: Any) -> Iterator["LocalCluster"]:
    from distributed import LocalCluster  # not imported by a run that needs no cluster

    kwargs = {**local_cluster_kwargs(options), "preload": [WORKER_PRELOAD], **overrides}
    with dask.config.set(_QUIET_WORKERS), LocalCluster(**kwargs) as cluster:
        try:
            yield cluster
        except BaseException:
            # Interrupted or failed: closing a threaded worker waits for the blocks it runs (a minute, for a large
            # one); they write only into forks nothing will merge, so close without waiting for them.
            if not options.processes:  # in-process workers; a process worker's Nanny takes no executor_wait
                for worker in list(cluster.workers.values()):
                    cluster.sync(worker.close, executor_wait=False)
            raise
