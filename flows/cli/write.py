"""`icefloe write SOURCE TARGET`: a dataset into a repository with to_zarr's semantics, in one commit; with
`--dry-run`, every check of a real run and the plan it would make, writing nothing."""

import argparse

from flows.cli.arguments import (
    PREFECT_HELP,
    SOURCE_HELP,
    TARGET_HELP,
    WRITE_OPTIONS,
    add_branch,
    add_options,
    add_publish,
    add_run_options,
)


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    write = commands.add_parser(
        "write",
        help="write a dataset into an Icechunk repository (to_zarr semantics, one commit)",
        description="Write SOURCE into the repository TARGET like Dataset.to_zarr / icechunk's to_icechunk, in one "
        "commit. " + PREFECT_HELP,
    )
    write.add_argument("source", help=SOURCE_HELP)
    write.add_argument("target", help=TARGET_HELP)
    write.add_argument("--group", help="group inside the repository (default: root)")
    write.add_argument("--mode", choices=["w", "w-", "a", "a-", "r+"], help="as in to_zarr")
    write.add_argument("--append-dim", help="dimension to append along")
    write.add_argument("--region", action="append", help="dim=start:stop (repeat per dim), or auto")
    write.add_argument("--encoding", help='JSON, e.g. \'{"t2m": {"chunks": [24, 361, 720]}}\'')
    write.add_argument("--no-safe-chunks", dest="safe_chunks", action="store_false", help="as in to_zarr")
    write.add_argument("--align-chunks", action="store_true", help="as in to_zarr")
    write.add_argument("--concat-dim", help="dimension NetCDF files are concatenated along")
    add_branch(write, "branch to commit to")
    write.add_argument("--message", help="commit message")
    write.add_argument("--validation-hook", help="package.module:function called before blocks are written")
    add_publish(write)
    add_options(write, WRITE_OPTIONS)
    add_run_options(write)
    write.add_argument("--dry-run", action="store_true", help="check everything, print the plan, write nothing")
    write.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from flows.cli.run import Prefect

    if args.dry_run:
        from flows.cli.dry_run import dry_run

        return dry_run(args)
    # before the heavy imports: a temporary server then starts while this process imports the rest
    prefect = Prefect.choose(args.temporary_server)
    try:
        from flows.cli.requests import dataset_write, gate_from_flags, parse_source, write_options
        from flows.cli.run import WriteCall, print_summary, run_write

        source = parse_source(args.source, args.concat_dim)
        write = dataset_write(args)
        gate = gate_from_flags(args, write)
        call = WriteCall(args.target, source, write, args.message, write_options(args), gate)
        result, recorded = run_write(call, prefect)
        print_summary(result, args.target, recorded)
        return 0
    finally:
        prefect.close()
