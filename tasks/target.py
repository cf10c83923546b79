"""Where a write lands: an Icechunk repository named by one string, a local path or `s3://bucket/prefix`.

S3 endpoint, region and credentials come from the environment (AWS_* variables), never from parameters, so no
secret reaches flow parameters, pickled sessions, logs or the Prefect API.
"""

import os
from pathlib import Path
from urllib.parse import urlparse

import icechunk

from tasks.errors import InvalidRequestError


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
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else target
        return icechunk.local_filesystem_storage(str(Path(path).expanduser().resolve()))
    raise InvalidRequestError(
        f"target {target!r} has scheme '{parsed.scheme}'; icefloe writes to a local path or s3://bucket/prefix"
    )


def s3_endpoint_and_region() -> tuple[str | None, str | None]:
    """The S3 endpoint (None: AWS itself) and region the environment names."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return endpoint, os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def open_repository(target: str) -> icechunk.Repository:
    """Open the repository at `target`, creating an empty one if nothing is there yet."""
    return icechunk.Repository.open_or_create(repository_storage(target))


def check_branch(repo: icechunk.Repository, branch: str) -> str:
    """The tip snapshot of `branch`, or a clear error naming the branches that exist."""
    branches = repo.list_branches()
    if branch not in branches:
        raise InvalidRequestError(
            f"branch {branch!r} does not exist in the target repository; existing branches: {sorted(branches)}. "
            "Create it first (repo.create_branch) or write to one of these"
        )
    return repo.lookup_branch(branch)


def open_target(repo: str, branch: str, *, create: bool = True) -> tuple[icechunk.Session, str | None]:
    """A writable session on `branch` and its tip. With `create=False` a missing repository is not created: the
    session belongs to an empty in-memory one (tip None), so a dry run leaves no trace."""
    if not create and not icechunk.Repository.exists(repository_storage(repo)):
        return icechunk.Repository.create(icechunk.in_memory_storage()).writable_session(branch), None
    repository = open_repository(repo) if create else icechunk.Repository.open(repository_storage(repo))
    return repository.writable_session(branch), check_branch(repository, branch)
