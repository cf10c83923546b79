"""`icefloe history`: a branch's snapshots, newest first, with the run that made each."""

import argparse
from datetime import UTC

import icechunk

from tasks.errors import InvalidRequestError
from tasks.target import repository_storage


def history(args: argparse.Namespace) -> int:
    storage = repository_storage(args.target)
    if not icechunk.Repository.exists(storage):
        raise InvalidRequestError(f"no Icechunk repository at {args.target}; check the path (or its S3 settings)")
    repo = icechunk.Repository.open(storage)
    for i, snapshot in enumerate(repo.ancestry(branch=args.branch)):
        if i == args.limit:
            break
        when = snapshot.written_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        print(f"{snapshot.id}  {when}  {snapshot.message}")
        meta = snapshot.metadata.get("icefloe")
        if meta:  # its scalars; what it wrote, per array, is for `icefloe validate`
            print("    " + ", ".join(f"{k}={v}" for k, v in meta.items() if v is not None and not isinstance(v, dict)))
    return 0
