"""`icefloe serve`: the deployments, served from this process with a warm Dask cluster."""

import argparse
import os


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
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from deployments.serve import IngestSchedule, serve_deployments
    from tasks.request import WriteOptions

    schedule = None
    if args.ingest_parameters:
        text = args.ingest_parameters
        parameters = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
        schedule = IngestSchedule(parameters, cron=args.ingest_cron, interval_seconds=args.ingest_interval)
    elif args.ingest_cron or args.ingest_interval:
        raise argparse.ArgumentTypeError("an ingest schedule needs --ingest-parameters (repo, source, ...)")
    cluster = WriteOptions(n_workers=args.n_workers, processes=args.processes)
    serve_deployments(schedule, cluster, poll_seconds=args.poll_seconds)
    return 0
