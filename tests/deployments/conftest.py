"""The served stack the deployment tests share: started once for the package (a minute on 2 cores)."""

import uuid
from collections.abc import Iterator

import icechunk
import pytest
from icechunk.xarray import to_icechunk

from tests.conftest import BUCKET, S3_ENV
from tests.deployments.stack import Stack, allowance, served_stack
from tests.sources import steps

ENCODING = {"t2m": {"chunks": [24, 19, 36]}, "u10": {"chunks": [24, 19, 36]}}


@pytest.fixture(scope="package")
def stack(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ingest_repo = f"s3://{BUCKET}/ingest-{uuid.uuid4().hex}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
            patch.setenv(key, value)
        # the ingest target exists with the first day; the schedule brings the second
        from tasks.storage.target import repository_storage

        session = icechunk.Repository.create(repository_storage(ingest_repo)).writable_session("main")
        to_icechunk(steps(0, 24), session, encoding=ENCODING)
        session.commit("first day")

        ingest = {
            "repo": ingest_repo,
            "source": {"kind": "callable", "function": "tests.sources:steps", "keywords": {"start": 0, "stop": 48}},
            "overlap": "skip",
        }
        allow = allowance(tmp_path_factory.getbasetemp(), BUCKET, "lake", "raw")  # the README names lake and raw
        logs = tmp_path_factory.mktemp("stack-logs")
        with served_stack(s3_endpoint, logs, allow, ingest, ui=True) as stack:
            yield stack


@pytest.fixture
def s3_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (*S3_ENV, "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(key, stack.env[key])
