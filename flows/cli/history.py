"""`icefloe history`: a branch's snapshots, newest first, with the run that made each."""

import argparse
from datetime import UTC

import icechunk

from tasks.target import repository_storage


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
