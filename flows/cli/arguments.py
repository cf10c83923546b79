"""Arguments that several commands share, and the write options as flags. Standard library only: every command's
parser is built from these before anything heavy is imported, so `--help` answers at once."""

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tasks import defaults

SOURCE_HELP = (
    "what to write: NetCDF files (a path, URL or glob), a .zarr store, an .icechunk repository, "
    "package.module:function, synthetic, or any source as JSON"
)
TARGET_HELP = "repository: a local path or s3://bucket/prefix (S3 settings: AWS_*)"
PREFECT_HELP = (
    "Runs are recorded in the Prefect API that PREFECT_API_URL (or the active Prefect profile) names. With none, "
    "the write runs here without Prefect, or with --temporary-server on a Prefect server kept for the command."
)


def mib(text: str) -> int:
    """A size in MiB (a decimal number) as bytes."""
    return int(float(text) * 2**20)


@dataclass(frozen=True)
class OptionFlag:
    """A flag that sets a field of `WriteOptions`; absent, the field keeps the model's default."""

    flag: str
    field: str
    type: Callable[[str], Any]
    help: str


WRITE_OPTIONS = (
    OptionFlag("--block-mib", "block_bytes", mib, "MiB per block task (default: from the cluster)"),
    OptionFlag("--retries", "retries", int, f"retries per block (default {defaults.RETRIES})"),
    OptionFlag(
        "--storage-max-tries",
        "storage_max_tries",
        int,
        f"tries of each object-store request (default {defaults.STORAGE_MAX_TRIES})",
    ),
    OptionFlag(
        "--max-task-runs",
        "max_task_runs",
        int,
        "most Prefect task runs for the blocks; more are batched (default: 16 a thread)",
    ),
    OptionFlag(
        "--manifest-split-chunks",
        "manifest_split_chunks",
        int,
        "split each array's manifest every N chunks along its first axis",
    ),
    OptionFlag(
        "--manifest-fetch-concurrency",
        "manifest_fetch_concurrency",
        int,
        f"manifests the commit fetches and writes at once (default {defaults.MANIFEST_FETCH_CONCURRENCY}; "
        "Icechunk's own is 1)",
    ),
)
"""Options of a write beyond where it runs (`add_run_options`)."""


def json_object(text: str) -> dict[str, Any]:
    """A flag's JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({e})") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r}: give a JSON object of keyword arguments")
    return value


RUN_OPTIONS = (
    OptionFlag("--dask-address", "dask_address", str, "scheduler of a running Dask cluster (default: a local one)"),
    OptionFlag(
        "--cluster-class",
        "cluster_class",
        str,
        "a Dask cluster class to start for the run and close after it, e.g. dask_jobqueue.SLURMCluster",
    ),
    OptionFlag("--cluster-kwargs", "cluster_kwargs", json_object, "its keyword arguments, JSON: '{\"cores\": 8}'"),
    OptionFlag("--adapt-kwargs", "adapt_kwargs", json_object, 'adapt() the cluster: \'{"minimum": 1, "maximum": 20}\''),
    OptionFlag("--n-workers", "n_workers", int, "local Dask workers (default: one per core)"),
)


def add_options(parser: argparse.ArgumentParser, flags: tuple[OptionFlag, ...]) -> None:
    for option in flags:
        metavar = option.flag.lstrip("-").replace("-", "_").upper()
        parser.add_argument(
            option.flag,
            dest=option.field,
            type=option.type,
            default=argparse.SUPPRESS,
            metavar=metavar,
            help=option.help,
        )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Where a write runs: the cluster and Prefect."""
    add_options(parser, RUN_OPTIONS)
    parser.add_argument("--processes", action="store_true", help="local Dask workers are processes, not threads")
    parser.add_argument(
        "--temporary-server",
        action="store_true",
        help="with no Prefect API configured, record the run in a Prefect server started for this command",
    )


def add_branch(parser: argparse.ArgumentParser, help: str = "branch") -> None:
    parser.add_argument("--branch", default=defaults.BRANCH, help=f"{help} (default {defaults.BRANCH})")


def add_publish(parser: argparse.ArgumentParser) -> None:
    """Publishing through a staging branch and its checks."""
    parser.add_argument(
        "--publish",
        action="store_true",
        help="commit to a staging branch, check the snapshot, and only then move the branch to it",
    )
    parser.add_argument(
        "--publish-check",
        metavar="FUNCTION",
        help="with --publish: package.module:function given the staged snapshot as a Dataset; raising keeps it off",
    )
    parser.add_argument("--allow-nan", action="store_true", help="with --publish: allow steps NaN everywhere")
