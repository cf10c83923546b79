"""`icefloe history TARGET`: a branch's snapshots, newest first, with the run that made each."""

import argparse

from flows.cli.arguments import add_branch


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    history = commands.add_parser(
        "history", help="list a branch's snapshots with the run that made each", description="Snapshots, newest first."
    )
    history.add_argument("target", help="repository: a local path or s3://bucket/prefix")
    add_branch(history)
    history.add_argument("--limit", type=int, default=20, help="snapshots to show (default 20)")
    history.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from datetime import UTC

    from tasks.storage.target import open_existing

    repo = open_existing(args.target)
    for i, snapshot in enumerate(repo.ancestry(branch=args.branch)):
        if i == args.limit:
            break
        when = snapshot.written_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        print(f"{snapshot.id}  {when}  {snapshot.message}")
        meta = snapshot.metadata.get("icefloe")
        if meta:  # its scalars; what it wrote, per array, is for `icefloe validate`
            print("    " + ", ".join(f"{k}={v}" for k, v in meta.items() if v is not None and not isinstance(v, dict)))
    return 0
