"""`icefloe serve`: the deployments, served from this process with a warm Dask cluster."""

import argparse
import json
from pathlib import Path

from deployments.serve import IngestSchedule, serve_deployments
from tasks.request import WriteOptions


def serve(args: argparse.Namespace) -> int:
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
