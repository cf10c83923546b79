"""`icefloe serve`: the deployments, served from this process with a warm Dask cluster."""

import argparse
import os
import sys


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the write-dataset, ingest and backfill deployments from this process",
        description="Serve the deployments until interrupted, with one Dask cluster kept warm for all their runs "
        "(or the scheduler ICEFLOE_DASK_ADDRESS names). Runs inherit this environment: PREFECT_API_URL and AWS_* "
        "(S3). The ingest schedule also reads ICEFLOE_INGEST_CRON, ICEFLOE_INGEST_INTERVAL and "
        "ICEFLOE_INGEST_PARAMETERS.",
    )
    environ = os.environ.get
    serve.add_argument("--ingest-cron", default=environ("ICEFLOE_INGEST_CRON"), help="e.g. '0 6 * * *'")
    serve.add_argument(
        "--ingest-interval", type=float, default=environ("ICEFLOE_INGEST_INTERVAL"), help="seconds between runs"
    )
    serve.add_argument(
        "--ingest-parameters",
        default=environ("ICEFLOE_INGEST_PARAMETERS"),
        help="the scheduled ingest's parameters, JSON or @file.json",
    )
    serve.add_argument("--n-workers", type=int, help="workers of the warm local cluster (default: one per core)")
    serve.add_argument("--processes", action="store_true", help="the warm cluster's workers are processes")
    serve.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for new runs (default 1)")
    allow = serve.add_argument_group(
        "what the served runs may name",
        "A run started through the Prefect API (its UI, its REST API, a schedule, an automation) may name only what "
        "the operator allows: each flag adds to its ICEFLOE_ALLOWED_* variable, and may be repeated.",
    )
    for flag, setting, example in ALLOWANCES:
        allow.add_argument(flag, action="append", default=[], metavar="VALUE", help=f"adds to {setting} ({example})")
    serve.set_defaults(run=run)


ALLOWANCES = [
    ("--allow-function", "ICEFLOE_ALLOWED_FUNCTIONS", "package.module:function, or package.module:*"),
    ("--allow-target", "ICEFLOE_ALLOWED_TARGETS", "a prefix: s3://lake/, /data/"),
    ("--allow-source", "ICEFLOE_ALLOWED_SOURCES", "a prefix: s3://raw/, /data/, https://host/path/"),
    ("--allow-dask-address", "ICEFLOE_ALLOWED_DASK_ADDRESSES", "tcp://scheduler:8786"),
]
"""`icefloe serve`'s flags for the operator's allowance (`tasks/allowance.py`), and the variables they add to."""


def allow_from_flags(args: argparse.Namespace) -> None:
    """The allowance the flags give, added to the environment the served runs inherit."""
    for flag, setting, _ in ALLOWANCES:
        given = getattr(args, flag.removeprefix("--").replace("-", "_"))
        if given:
            os.environ[setting] = ",".join([*filter(None, os.environ.get(setting, "").split(",")), *given])


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from deployments.serve import IngestSchedule, serve_deployments
    from tasks.allowance import describe
    from tasks.request import WriteOptions

    schedule = None
    if args.ingest_parameters:
        text = args.ingest_parameters
        parameters = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
        schedule = IngestSchedule(parameters, cron=args.ingest_cron, interval_seconds=args.ingest_interval)
    elif args.ingest_cron or args.ingest_interval:
        raise argparse.ArgumentTypeError("an ingest schedule needs --ingest-parameters (repo, source, ...)")
    allow_from_flags(args)
    print(f"icefloe serve: deployment runs may {describe()}", file=sys.stderr)
    cluster = WriteOptions(n_workers=args.n_workers, processes=args.processes)
    serve_deployments(schedule, cluster, poll_seconds=args.poll_seconds)
    return 0
