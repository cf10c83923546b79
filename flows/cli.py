"""The `icefloe` command: `demo`, `write` (with `--dry-run`) and `history`."""

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any
from uuid import UUID

import dask.config
import icechunk
import xarray as xr
from prefect.settings import PREFECT_API_URL
from prefect.states import State
from pydantic import TypeAdapter, ValidationError

from flows.prefect_api import running_prefect_api
from flows.progress import terminal_bar
from flows.write_dataset import prepare_write, write_dataset
from tasks.arrays import region_bytes
from tasks.callables import CALLABLE_PATTERN
from tasks.commit import CommitResult
from tasks.dataset import RegionParameter
from tasks.errors import IcefloeError
from tasks.plan import auto_block_bytes, format_region
from tasks.request import WriteOptions
from tasks.sources import CallableSource, IcechunkSource, NamedSource, NetCDFSource, SyntheticDataset, ZarrSource
from tasks.target import repository_storage
from tasks.write import group_writes

DEMO_VARIABLES = ("t2m", "u10")
DEMO_ENCODING = {name: {"chunks": (8, 361, 720)} for name in DEMO_VARIABLES}  # ~8 MiB chunks


def demo_source(gib: float) -> SyntheticDataset:
    """The demo's synthetic 0.25-degree dataset of about `gib` GiB (two float32 variables, 6-hourly)."""
    step_bytes = 721 * 1440 * 4 * 2
    ntime = max(8, round(gib * 2**30 / step_bytes / 8) * 8)
    return SyntheticDataset(ntime=ntime, nlat=721, nlon=1440, variables=DEMO_VARIABLES, time_chunk=8, freq="6h")


def parse_source(text: str, concat_dim: str | None = None) -> NamedSource:
    """A source from the command line: JSON (any kind), `synthetic`, `package.module:function`, a `.zarr` store,
    an `.icechunk` repository, or else NetCDF files (a path, URL or glob)."""
    if text.lstrip().startswith("{"):
        return TypeAdapter(NamedSource).validate_json(text)
    if text == "synthetic":
        return SyntheticDataset()
    if re.fullmatch(CALLABLE_PATTERN, text):
        return CallableSource(function=text)
    if text.rstrip("/").endswith(".zarr"):
        return ZarrSource(url=text)
    if text.rstrip("/").endswith(".icechunk"):
        return IcechunkSource(repo=text)
    return NetCDFSource(paths=text, concat_dim=concat_dim)


def parse_region(values: list[str] | None) -> RegionParameter:
    """`auto`, or `dim=start:stop` (either end may be empty) / `dim=auto`, repeated."""
    if not values:
        return None
    if values == ["auto"]:
        return "auto"
    region: dict[str, Any] = {}
    for value in values:
        match = re.fullmatch(r"(\w+)=(?:(auto)|(\d*):(\d*))", value)
        if match is None:
            raise argparse.ArgumentTypeError(f"--region {value!r}: use dim=start:stop, dim=auto or auto")
        dim, auto, start, stop = match.groups()
        region[dim] = "auto" if auto else (int(start) if start else None, int(stop) if stop else None)
    return region


def _run_flow(run: Callable[[], State[CommitResult]], target: str) -> int:
    """Run a flow against the configured Prefect API (or a temporary one) and print what it committed."""
    temporary = not PREFECT_API_URL.value()
    terminal_bar.set(sys.stderr.isatty() or bool(os.environ.get("ICEFLOE_PROGRESS")))
    with running_prefect_api() as api:
        state = run()
    run_id: UUID | None = state.state_details.flow_run_id
    outcome = state.result(raise_on_failure=False)
    if not isinstance(outcome, CommitResult):
        print(f"icefloe: the run failed, nothing was committed: {type(outcome).__name__}: {outcome}", file=sys.stderr)
        return 1
    print(f"snapshot {outcome.snapshot_id} on {target} (branch {outcome.branch})")
    speed = f"{outcome.seconds:.1f} s, {outcome.mb_per_s:.0f} MB/s"
    print(f"{outcome.bytes / 1e6:.0f} MB in {outcome.blocks} blocks, {speed}")
    if temporary:
        print(f"flow run {run_id} was recorded by a temporary Prefect server, now stopped; to keep runs and see them:")
        print("  uv run prefect server start   then   export PREFECT_API_URL=http://127.0.0.1:4200/api")
    else:
        print(f"see the run: {api.removesuffix('/api')}/runs/flow-run/{run_id}")
    return 0


def demo(args: argparse.Namespace) -> int:
    source = demo_source(args.gib)
    print(f"demo: synthetic dataset {dict(source.open().sizes)}, {source.variables}, -> {args.target}")
    code = _run_flow(
        lambda: write_dataset(
            repo=args.target,
            source=source,
            mode="w",
            encoding=DEMO_ENCODING,
            message="icefloe demo",
            options=WriteOptions(n_workers=args.n_workers),
            return_state=True,
        ),
        args.target,
    )
    if code == 0:
        repo = icechunk.Repository.open(repository_storage(args.target))
        written = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
        xr.testing.assert_identical(written, source.open())
        print("read back with xr.open_zarr(repo.readonly_session('main').store): identical to the source")
    return code


def _write_options(args: argparse.Namespace) -> WriteOptions:
    return WriteOptions(
        block_bytes=args.block_mib * 2**20 if args.block_mib else None,
        retries=args.retries,
        dask_address=args.dask_address,
        n_workers=args.n_workers,
    )


def write(args: argparse.Namespace) -> int:
    source = parse_source(args.source, args.concat_dim)
    keywords: dict[str, Any] = {
        "group": args.group,
        "mode": args.mode,
        "append_dim": args.append_dim,
        "region": parse_region(args.region),
        "encoding": json.loads(args.encoding) if args.encoding else None,
        "safe_chunks": args.safe_chunks,
        "align_chunks": args.align_chunks,
        "branch": args.branch,
        "validation_hook": args.validation_hook,
    }
    options = _write_options(args)
    if args.dry_run:
        return dry_run(args.target, source, keywords, options)
    return _run_flow(
        lambda: write_dataset(
            repo=args.target, source=source, message=args.message, options=options, return_state=True, **keywords
        ),
        args.target,
    )


def dry_run(target: str, source: NamedSource, keywords: dict[str, Any], options: WriteOptions) -> int:
    """Every check of a real run, then the plan; nothing is written or created."""
    prepared = prepare_write(target, source, create=False, **keywords)
    total = sum(region_bytes(r.region, r.dtype.itemsize) for r in prepared.resolved)
    threads = os.cpu_count() or 1
    block_bytes = options.block_bytes or auto_block_bytes(total, threads)
    where = f"snapshot {prepared.parent_id}" if prepared.parent_id else "a new repository"
    print(f"dry run: {source.kind} -> {target} (branch {keywords['branch']}, from {where})")
    groups = group_writes(prepared.resolved)
    blocks = 0
    for group in groups:
        planned = group.blocks(block_bytes)
        blocks += len(planned)
        first = f", first [{format_region(planned[0].region)}]" if planned else ""
        print(
            f"  {'+'.join(group.arrays)}: region [{format_region(group.region)}] of shape {group.shape}, "
            f"grid {group.unit}, {len(planned)} blocks{first}"
        )
    print(f"would write {total / 1e6:.1f} MB in {blocks} blocks of about {block_bytes / 2**20:.0f} MiB, one commit")
    print("nothing was written")
    return 0


def history(args: argparse.Namespace) -> int:
    repo = icechunk.Repository.open(repository_storage(args.target))
    for i, snapshot in enumerate(repo.ancestry(branch=args.branch)):
        if i == args.limit:
            break
        when = snapshot.written_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        print(f"{snapshot.id}  {when}  {snapshot.message}")
        meta = snapshot.metadata.get("icefloe")
        if meta:
            print("    " + ", ".join(f"{k}={v}" for k, v in meta.items() if v is not None))
    return 0


def serve(args: argparse.Namespace) -> int:
    from deployments.serve import IngestSchedule, serve_deployments  # imports every flow: only when serving

    schedule = None
    if args.ingest_parameters:
        text = args.ingest_parameters
        parameters = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
        schedule = IngestSchedule(parameters, cron=args.ingest_cron, interval_seconds=args.ingest_interval)
    elif args.ingest_cron or args.ingest_interval:
        raise argparse.ArgumentTypeError("an ingest schedule needs --ingest-parameters (repo, source, ...)")
    serve_deployments(schedule)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icefloe", description="Parallel, atomic writes into Icechunk with Prefect")
    commands = parser.add_subparsers(dest="command", required=True)

    demo_parser = commands.add_parser(
        "demo", help="write a synthetic weather dataset into a local repository", description=demo_source.__doc__
    )
    demo_parser.add_argument("--target", default="data/demo.icechunk", help="repository (default data/demo.icechunk)")
    demo_parser.add_argument("--gib", type=float, default=1.0, help="size of the dataset in GiB (default 1)")
    demo_parser.add_argument("--n-workers", type=int, default=None, help="local Dask workers (default: machine)")
    demo_parser.set_defaults(run=demo)

    write_parser = commands.add_parser(
        "write",
        help="write a dataset into an Icechunk repository (to_zarr semantics, one commit)",
        description="Write SOURCE into the repository TARGET like Dataset.to_zarr / icechunk's to_icechunk.",
    )
    write_parser.add_argument("source", help=parse_source.__doc__)
    write_parser.add_argument("target", help="repository: a local path or s3://bucket/prefix (S3 settings: AWS_*)")
    write_parser.add_argument("--group", help="group inside the repository (default: root)")
    write_parser.add_argument("--mode", choices=["w", "w-", "a", "a-", "r+"], help="as in to_zarr")
    write_parser.add_argument("--append-dim", help="dimension to append along")
    write_parser.add_argument("--region", action="append", help="dim=start:stop (repeat per dim), or auto")
    write_parser.add_argument("--encoding", help='JSON, e.g. \'{"t2m": {"chunks": [24, 361, 720]}}\'')
    write_parser.add_argument("--no-safe-chunks", dest="safe_chunks", action="store_false", help="as in to_zarr")
    write_parser.add_argument("--align-chunks", action="store_true", help="as in to_zarr")
    write_parser.add_argument("--concat-dim", help="dimension NetCDF files are concatenated along")
    write_parser.add_argument("--branch", default="main", help="branch to commit to (default main)")
    write_parser.add_argument("--message", help="commit message")
    write_parser.add_argument("--validation-hook", help="package.module:function called before blocks are written")
    write_parser.add_argument("--block-mib", type=int, help="MiB per block task (default: from the cluster)")
    write_parser.add_argument("--retries", type=int, default=3, help="retries per block (default 3)")
    write_parser.add_argument("--dask-address", help="scheduler of a running Dask cluster (default: a local one)")
    write_parser.add_argument("--n-workers", type=int, help="local Dask workers (default: machine)")
    write_parser.add_argument("--dry-run", action="store_true", help="check everything, print the plan, write nothing")
    write_parser.set_defaults(run=write)

    history_parser = commands.add_parser(
        "history", help="list a branch's snapshots with the run that made each", description="Snapshots, newest first."
    )
    history_parser.add_argument("target", help="repository: a local path or s3://bucket/prefix")
    history_parser.add_argument("--branch", default="main", help="branch (default main)")
    history_parser.add_argument("--limit", type=int, default=20, help="snapshots to show (default 20)")
    history_parser.set_defaults(run=history)

    serve_parser = commands.add_parser(
        "serve",
        help="serve the write-dataset, ingest and backfill deployments from this process",
        description="Serve the deployments until interrupted. Runs inherit this environment: PREFECT_API_URL, "
        "ICEFLOE_DASK_ADDRESS (the Dask scheduler) and AWS_* (S3). The ingest schedule also reads "
        "ICEFLOE_INGEST_CRON, ICEFLOE_INGEST_INTERVAL and ICEFLOE_INGEST_PARAMETERS.",
    )
    environ = os.environ.get
    serve_parser.add_argument("--ingest-cron", default=environ("ICEFLOE_INGEST_CRON"), help="e.g. '0 6 * * *'")
    serve_parser.add_argument(
        "--ingest-interval", type=float, default=environ("ICEFLOE_INGEST_INTERVAL"), help="seconds between runs"
    )
    serve_parser.add_argument(
        "--ingest-parameters",
        default=environ("ICEFLOE_INGEST_PARAMETERS"),
        help="the scheduled ingest's parameters, JSON or @file.json",
    )
    serve_parser.set_defaults(run=serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Dask's per-worker INFO lines drown the run's own log; workers read this from the environment.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    dask.config.refresh()
    logging.getLogger("distributed").setLevel(logging.WARNING)
    try:
        return int(args.run(args))
    except (IcefloeError, ValidationError, ValueError, argparse.ArgumentTypeError, icechunk.IcechunkError) as e:
        print(f"icefloe {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
