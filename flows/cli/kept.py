"""`icefloe kept TARGET`: the blocks that failed runs left beside a target for their next attempt; clearing them."""

import argparse


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    kept = commands.add_parser(
        "kept",
        help="list (or clear) the blocks failed runs kept for their next attempt",
        description="A write that fails keeps the blocks it finished beside its target, and the same request run "
        "again writes only the others; its commit removes them. This lists what is kept, or removes it.",
    )
    kept.add_argument("target", help="repository: a local path or s3://bucket/prefix")
    kept.add_argument("--clear", action="store_true", help="remove every kept block of the target")
    kept.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from tasks.committing.kept_forks import clear_kept, kept_runs

    if args.clear:
        print(f"removed {clear_kept(args.target)} kept sets of {args.target}")
        return 0
    runs = kept_runs(args.target)
    if not runs:
        print(f"nothing kept for {args.target}")
    for kept in runs:
        when = datetime.fromtimestamp(kept.created, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        print(
            f"branch {kept.branch}, based on {kept.parent_id}: {kept.blocks} blocks kept since {when}  {kept.location}"
        )
    return 0
