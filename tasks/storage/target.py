"""Where a write lands: an Icechunk repository named by one string, a local path or `s3://bucket/prefix`.

S3 endpoint, region and credentials come from the environment (AWS_* variables), never from parameters, so no
secret reaches flow parameters, pickled sessions, logs or the Prefect API.
"""

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import icechunk

from tasks.errors import InvalidRequestError
from tasks.storage.garbage_collection import Mark, mark


def repository_storage(target: str) -> icechunk.Storage:
    """Storage for a target string; S3 settings are read from AWS_ENDPOINT_URL(_S3), AWS_REGION, AWS_* keys."""
    parsed = urlparse(target)
    if parsed.scheme == "s3":
        prefix = parsed.path.strip("/")
        if not parsed.netloc or not prefix:
            raise InvalidRequestError(
                f"target {target!r} names no bucket or no prefix; use s3://bucket/prefix "
                "(Icechunk does not create repositories at a bucket's root)"
            )
        endpoint, region = s3_endpoint_and_region()
        return icechunk.s3_storage(
            bucket=parsed.netloc,
            prefix=prefix,
            region=region,
            endpoint_url=endpoint,
            allow_http=bool(endpoint and endpoint.startswith("http://")),
            # S3-compatible servers (MinIO, moto) address buckets by path; AWS itself needs no endpoint.
            force_path_style=endpoint is not None,
            # Credentials resolve from the environment wherever the session is used: the pickled fork carries none.
            from_env=True,
        )
    path = local_path(target)
    if path is not None:
        return icechunk.local_filesystem_storage(str(path))
    raise InvalidRequestError(
        f"target {target!r} has scheme '{parsed.scheme}'; icefloe writes to a local path or s3://bucket/prefix"
    )


def local_path(target: str) -> Path | None:
    """The absolute path of a local target (`data/x`, `./data/x` and `file:///.../data/x` are one), else None."""
    parsed = urlparse(target)
    if parsed.scheme not in ("", "file"):
        return None
    return Path(parsed.path if parsed.scheme == "file" else target).expanduser().resolve()


def canonical_target(target: str) -> str:
    """One spelling per target: a local one's absolute path, `s3://bucket/prefix` without stray slashes."""
    path = local_path(target)
    if path is not None:
        return str(path)
    parsed = urlparse(target)
    return f"{parsed.scheme}://{parsed.netloc}/{parsed.path.strip('/')}"


@contextmanager
def local_target_lock(target: str, logger: logging.Logger | logging.LoggerAdapter[Any]) -> Iterator[None]:
    """Hold an OS file lock beside a local repository while a run writes it; wait while another process holds it.

    Icechunk's local storage cannot arbitrate concurrent commits (object stores use conditional writes), and the
    kernel releases the lock with its process however that ends, so a crashed writer never blocks the next one.
    The lock file (`.NAME.icefloe-lock` beside the repository) stays. Object-store targets need no lock here.
    """
    path = local_path(target)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.icefloe-lock").open("a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process writing %s", path)
            started = time.perf_counter()
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            logger.info("holding %s after %.1f s", path, time.perf_counter() - started)
        yield  # closing the file releases the lock


def s3_endpoint_and_region() -> tuple[str | None, str | None]:
    """The S3 endpoint (None: AWS itself) and region the environment names."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return endpoint, os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def storage_options(url: str, anonymous: bool = False) -> dict[str, Any] | None:
    """fsspec options for a URL: for s3://, the endpoint the environment names (credentials stay there)."""
    if not url.startswith("s3://"):
        return None
    endpoint, region = s3_endpoint_and_region()
    options: dict[str, Any] = {"anon": anonymous}
    if endpoint:
        options["endpoint_url"] = endpoint
    if region:
        options["client_kwargs"] = {"region_name": region}
    return options


def repository_config(
    max_tries: int,
    max_backoff_seconds: float,
    manifest_split_chunks: int | None = None,
    manifest_fetch_concurrency: int | None = None,
) -> icechunk.RepositoryConfig:
    """How hard Icechunk tries each object-store request (throttling, 5xx, dropped connections) before failing;
    how the commit splits manifests (every `manifest_split_chunks` chunks along each array's first axis); and how
    many manifests a commit (or a fork's flush) fetches and writes at once (Icechunk's default: one after the other,
    a round trip each)."""
    retries = icechunk.StorageRetriesSettings(
        max_tries=max_tries, initial_backoff_ms=100, max_backoff_ms=int(max_backoff_seconds * 1000)
    )
    splitting = None
    if manifest_split_chunks is not None:
        axis0: dict[Any, int] = {icechunk.ManifestSplitDimCondition.Axis(0): manifest_split_chunks}
        splitting = icechunk.ManifestSplittingConfig.from_dict({icechunk.ManifestSplitCondition.AnyArray(): axis0})
    manifest = icechunk.ManifestConfig(
        splitting=splitting, max_concurrent_manifest_fetches_during_commit=manifest_fetch_concurrency
    )
    return icechunk.RepositoryConfig(storage=icechunk.StorageSettings(retries=retries), manifest=manifest)


def check_branch(repo: icechunk.Repository, branch: str) -> str:
    """The tip snapshot of `branch`, or a clear error naming the branches that exist."""
    branches = repo.list_branches()
    if branch not in branches:
        raise InvalidRequestError(
            f"branch {branch!r} does not exist in the target repository; existing branches: {sorted(branches)}. "
            "Create it first (repo.create_branch) or write to one of these"
        )
    return repo.lookup_branch(branch)


def target_exists(target: str) -> bool:
    return bool(icechunk.Repository.exists(repository_storage(target)))


def open_existing(target: str) -> icechunk.Repository:
    """The repository at `target`, to read; refused (before anything else) when there is none."""
    storage = repository_storage(target)
    if not icechunk.Repository.exists(storage):
        raise InvalidRequestError(f"no Icechunk repository at {target}; check the path (or its S3 settings)")
    return icechunk.Repository.open(storage)


@dataclass(frozen=True)
class OpenedTarget:
    """A writable session on a branch of a target, and what a run needs of the repository behind it: the branch's
    tip, the repository itself (None for the in-memory stand-in of one that does not exist yet), and where its
    operations log stood when it was opened (before the run wrote anything; None: from its start, as for a
    repository the run created)."""

    session: icechunk.Session
    parent_id: str | None
    repository: icechunk.Repository | None
    mark: Mark | None


def writable_session(repository: icechunk.Repository, branch: str) -> icechunk.Session:
    """A writable session on `branch`, or a clear error naming the branches that exist."""
    try:
        return repository.writable_session(branch)
    except icechunk.RefNotFoundError:
        check_branch(repository, branch)  # names the branches that exist
        raise


def find_repository(target: str, config: icechunk.RepositoryConfig | None = None) -> icechunk.Repository | None:
    """The repository at `target`, opened (its configuration read, nothing written), or None when there is none."""
    try:
        return icechunk.Repository.open(repository_storage(target), config)
    except icechunk.RepositoryNotFoundError:
        return None


def session_on(repository: icechunk.Repository, branch: str, *, created: bool = False) -> OpenedTarget:
    """A writable session on `branch` of `repository`, its tip and where its log stands. A repository this run
    has just `created` needs no read of its log: all of it is after the run began (`Mark` None)."""
    if created:
        session = writable_session(repository, branch)
        return OpenedTarget(session, session.snapshot_id, repository, None)
    # two round trips at once: the log's head (or a canary's write), the session
    with ThreadPoolExecutor(1, "icefloe-mark") as pool:
        marked = pool.submit(mark, repository, branch)
        session = writable_session(repository, branch)
    return OpenedTarget(session, session.snapshot_id, repository, marked.result())


def in_memory_target(branch: str) -> OpenedTarget:
    """A writable session of an empty in-memory repository (tip None): where a request to a target that does not
    exist yet is tried first, so that a refused one leaves nothing behind."""
    empty = icechunk.Repository.create(icechunk.in_memory_storage())
    return OpenedTarget(writable_session(empty, branch), None, None, None)


def open_target(
    repo: str, branch: str, *, create: bool = True, config: icechunk.RepositoryConfig | None = None
) -> OpenedTarget:
    """A writable session on `branch` of `repo`. With `create=False` a missing repository is not created: the
    session belongs to an empty in-memory one (tip None), so a dry run leaves no trace."""
    repository = find_repository(repo, config)
    if repository is not None:
        return session_on(repository, branch)
    if not create:
        return in_memory_target(branch)
    return create_target(repo, branch, config)[0]


def create_target(repo: str, branch: str, config: icechunk.RepositoryConfig | None = None) -> tuple[OpenedTarget, bool]:
    """A writable session on `branch` of a repository created at `repo` now, and True; or of the one another run
    created there first, and False."""
    storage = repository_storage(repo)
    try:
        repository = icechunk.Repository.create(storage, config)
    except icechunk.IcechunkError as e:
        try:
            repository = icechunk.Repository.open(storage, config)  # another run created it first
        except icechunk.RepositoryNotFoundError:
            raise e from None  # the prefix holds something else: say so
        return session_on(repository, branch), False
    return session_on(repository, branch, created=True), True
