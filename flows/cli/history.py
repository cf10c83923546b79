"""`icefloe history`: a branch's snapshots, newest first, with the run that made each."""

import argparse
from datetime import UTC

from tasks.storage.target import open_existing


def history(args: argparse.Namespace) -> int:
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
