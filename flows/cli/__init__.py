"""The `icefloe` command: `write` (and `--dry-run`), `demo`, `history`, `validate`, `kept` and `serve`.

It answers at once: this module imports only the standard library, and each command imports what it needs when it
runs. What its exit code says is decided in `flows/cli/exit_codes.py`.
"""

import argparse
import logging
import os
import signal
import sys
from typing import NoReturn

from flows.cli.exit_codes import report
from flows.cli.signals import interruptible
from tasks.logs import quiet_icechunk

SOURCE_HELP = (
    "what to write: NetCDF files (a path, URL or glob), a .zarr store, an .icechunk repository, "
    "package.module:function, synthetic, or any source as JSON"
)
PREFECT_HELP = (
    "Runs are recorded in the Prefect API that PREFECT_API_URL (or the active Prefect profile) names. With none, "
    "the write runs here without Prefect, or with --temporary-server on a Prefect server kept for the command."
)


def _write(args: argparse.Namespace) -> int:
    from flows.cli.run import Prefect

    # before the heavy imports: a temporary server then starts while this process imports the rest
    prefect = None if args.dry_run else Prefect.choose(args.temporary_server)
    try:
        from flows.cli.write import write

        return write(args, prefect)
    finally:
        if prefect is not None:
            prefect.close()


def _demo(args: argparse.Namespace) -> int:
    from flows.cli.run import Prefect

    prefect = Prefect.choose(args.temporary_server)
    try:
        from flows.cli.write import demo

        return demo(args, prefect)
    finally:
        prefect.close()


def _history(args: argparse.Namespace) -> int:
    from flows.cli.history import history

    return history(args)


def _validate(args: argparse.Namespace) -> int:
    from flows.cli.validate import validate

    return validate(args)


def _kept(args: argparse.Namespace) -> int:
    from flows.cli.kept import kept

    return kept(args)


def _serve(args: argparse.Namespace) -> int:
    from flows.cli.serve import serve

    return serve(args)


def _run_options(parser: argparse.ArgumentParser) -> None:
    """Where a write runs: the cluster and Prefect."""
    parser.add_argument("--dask-address", help="scheduler of a running Dask cluster (default: a local one)")
    parser.add_argument("--n-workers", type=int, help="local Dask workers (default: one per core)")
    parser.add_argument("--processes", action="store_true", help="local Dask workers are processes, not threads")
    parser.add_argument(
        "--temporary-server",
        action="store_true",
        help="with no Prefect API configured, record the run in a Prefect server started for this command",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icefloe", description="Parallel, atomic writes into Icechunk with Prefect")
    parser.add_argument(
        "--icechunk-log",
        metavar="FILTER",
        help="Icechunk's own log filter, e.g. warn or debug (default: warnings, without the two it gives on every "
        "open; the ICECHUNK_LOG environment variable does the same)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    write = commands.add_parser(
        "write",
        help="write a dataset into an Icechunk repository (to_zarr semantics, one commit)",
        description="Write SOURCE into the repository TARGET like Dataset.to_zarr / icechunk's to_icechunk, in one "
        "commit. " + PREFECT_HELP,
    )
    write.add_argument("source", help=SOURCE_HELP)
    write.add_argument("target", help="repository: a local path or s3://bucket/prefix (S3 settings: AWS_*)")
    write.add_argument("--group", help="group inside the repository (default: root)")
    write.add_argument("--mode", choices=["w", "w-", "a", "a-", "r+"], help="as in to_zarr")
    write.add_argument("--append-dim", help="dimension to append along")
    write.add_argument("--region", action="append", help="dim=start:stop (repeat per dim), or auto")
    write.add_argument("--encoding", help='JSON, e.g. \'{"t2m": {"chunks": [24, 361, 720]}}\'')
    write.add_argument("--no-safe-chunks", dest="safe_chunks", action="store_false", help="as in to_zarr")
    write.add_argument("--align-chunks", action="store_true", help="as in to_zarr")
    write.add_argument("--concat-dim", help="dimension NetCDF files are concatenated along")
    write.add_argument("--branch", default="main", help="branch to commit to (default main)")
    write.add_argument("--message", help="commit message")
    write.add_argument("--validation-hook", help="package.module:function called before blocks are written")
    write.add_argument("--block-mib", type=float, help="MiB per block task (default: from the cluster)")
    write.add_argument("--retries", type=int, default=3, help="retries per block (default 3)")
    write.add_argument(
        "--storage-max-tries", type=int, default=10, help="tries of each object-store request (default 10)"
    )
    write.add_argument(
        "--max-task-runs",
        type=int,
        help="most Prefect task runs for the blocks; more are batched (default: 16 a thread)",
    )
    write.add_argument(
        "--manifest-split-chunks", type=int, help="split each array's manifest every N chunks along its first axis"
    )
    write.add_argument(
        "--manifest-fetch-concurrency",
        type=int,
        help="manifests the commit fetches and writes at once (default 16; Icechunk's own is 1)",
    )
    _run_options(write)
    write.add_argument("--dry-run", action="store_true", help="check everything, print the plan, write nothing")
    write.set_defaults(run=_write)

    demo = commands.add_parser(
        "demo",
        help="write a synthetic weather dataset into a local repository",
        description="The demo's synthetic 0.25-degree dataset (two float32 variables, 6-hourly) into a local "
        "repository, read back and compared. " + PREFECT_HELP,
    )
    demo.add_argument("--target", default="data/demo.icechunk", help="repository (default data/demo.icechunk)")
    demo.add_argument("--gib", type=float, default=1.0, help="size of the dataset in GiB (default 1)")
    _run_options(demo)
    demo.set_defaults(run=_demo, dry_run=False)

    history = commands.add_parser(
        "history", help="list a branch's snapshots with the run that made each", description="Snapshots, newest first."
    )
    history.add_argument("target", help="repository: a local path or s3://bucket/prefix")
    history.add_argument("--branch", default="main", help="branch (default main)")
    history.add_argument("--limit", type=int, default=20, help="snapshots to show (default 20)")
    history.set_defaults(run=_history)

    validate = commands.add_parser(
        "validate",
        help="check a committed snapshot: chunks present, no all-NaN steps, time increasing, sample vs source",
        description="Check the tip of BRANCH (or --snapshot) of the repository TARGET as an operational pipeline "
        "checks each update: every chunk its commit wrote is present, no step along --time-dim is NaN everywhere, "
        "that coordinate increases without duplicates, dtypes and shapes are as the commit declared, and a sample "
        "of chunks equals --source when given. Exit 1 when a check fails.",
    )
    validate.add_argument("target", help="repository: a local path or s3://bucket/prefix")
    validate.add_argument("--branch", default="main", help="branch (default main)")
    validate.add_argument("--snapshot", help="snapshot to check (default: the branch's tip)")
    validate.add_argument("--source", help="what it was written from, to compare a sample with: " + SOURCE_HELP)
    validate.add_argument("--time-dim", default="time", help="dimension of the time steps (default time)")
    validate.add_argument("--allow-nan", action="store_true", help="allow steps that are NaN everywhere")
    validate.set_defaults(run=_validate)

    kept = commands.add_parser(
        "kept",
        help="list (or clear) the blocks failed runs kept for their next attempt",
        description="A write that fails keeps the blocks it finished beside its target, and the same request run "
        "again writes only the others; its commit removes them. This lists what is kept, or removes it.",
    )
    kept.add_argument("target", help="repository: a local path or s3://bucket/prefix")
    kept.add_argument("--clear", action="store_true", help="remove every kept block of the target")
    kept.set_defaults(run=_kept)

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
    serve.set_defaults(run=_serve)
    return parser


def entry_point() -> NoReturn:
    """The `icefloe` executable: `main`, then a quick exit.

    Once a command has closed what it opened, the interpreter's own teardown (freeing every module and object of
    xarray, Dask and Icechunk) still took ~0.35 s here, a tenth of a 1 GiB write. Without Prefect loaded there is
    no background queue left to deliver, so the process ends at once; with Prefect, its exit hooks deliver the
    run's last logs and events first. An interrupted command ends at once too: the interpreter would wait for the
    threads of the blocks still running (20 s and more) only to drop what they write; logging's shutdown has
    delivered the run's logs by then.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    if "prefect" not in sys.modules or code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.icechunk_log:
        os.environ["ICECHUNK_LOG"] = args.icechunk_log  # read on icechunk's import, here and in every worker
    quiet_icechunk()
    # Dask's per-worker INFO lines drown the run's own log; workers read this from the environment.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    stopped_by: list[int] = []
    with interruptible(args.command in ("write", "demo"), stopped_by):
        try:
            return int(args.run(args))
        except BaseException as e:
            if stopped_by or isinstance(e, KeyboardInterrupt):
                # whatever the interrupt became on its way out (libraries wrap it), the user stopped the command
                number = stopped_by[0] if stopped_by else signal.SIGINT
                print(f"icefloe {args.command}: interrupted ({signal.Signals(number).name})", file=sys.stderr)
                return 128 + number
            if isinstance(e, Exception):
                return report(args.command, e)
            raise
