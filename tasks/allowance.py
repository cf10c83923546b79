"""What a deployment's run may name: the operator's allowance, read from the environment of the process it runs in.

Whoever reaches the Prefect API (its UI, its REST API, an automation) can start a deployment's run with any
parameters: Prefect's open-source server has no users or roles. icefloe trusts the operator (the environment and the
installed packages of the runner and its workers) and a user running the command or the flows in their own process.
A deployment run's parameters are data: each that names code, an address, a place or a size is checked here against
what the operator allowed, on its text, before anything is imported, read, connected or written. Nothing is allowed
by default but the runner's own cluster, sources that name no place (synthetic data) and the bounds' defaults.

- `ICEFLOE_ALLOWED_FUNCTIONS`: the functions it may name (a callable source, a validation hook, a publish check):
  `package.module:function`, or `package.module:*` for a module's; and every function an installed package
  registers under the entry-point group `icefloe.functions`.
- `ICEFLOE_ALLOWED_TARGETS`: prefixes of the repositories it may write (and validate): `s3://lake/`, `/data/`.
- `ICEFLOE_ALLOWED_SOURCES`: prefixes of what it may read: `s3://raw/`, `/data/`, `https://host/path/`.
- `ICEFLOE_ALLOWED_DASK_ADDRESSES`: schedulers it may name (`options.dask_address`); else it uses the runner's.
- `ICEFLOE_MAX_*`: the bounds of its sizes and counts (`BOUNDS`).

Lists are comma-separated. `icefloe serve --allow-...` sets the same for the runs it serves.
"""

import os
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tasks.errors import InvalidRequestError

ENTRY_POINTS = "icefloe.functions"
"""The entry-point group under which an installed package registers the functions deployment runs may name."""


@dataclass(frozen=True)
class Bound:
    setting: str
    default: float
    what: str


BOUNDS = {
    "n_workers": Bound("ICEFLOE_MAX_WORKERS", 64, "workers"),
    "block_bytes": Bound("ICEFLOE_MAX_BLOCK_BYTES", 2 * 2**30, "bytes a block"),
    "piece_bytes": Bound("ICEFLOE_MAX_PIECE_BYTES", 512 * 2**20, "bytes a piece"),
    "chunk_concurrency": Bound("ICEFLOE_MAX_CONCURRENCY", 256, "requests in flight"),
    "manifest_fetch_concurrency": Bound("ICEFLOE_MAX_CONCURRENCY", 256, "requests in flight"),
    "max_task_runs": Bound("ICEFLOE_MAX_TASK_RUNS", 10_000, "task runs"),
    "retries": Bound("ICEFLOE_MAX_RETRIES", 20, "tries"),
    "commit_retries": Bound("ICEFLOE_MAX_RETRIES", 20, "tries"),
    "storage_max_tries": Bound("ICEFLOE_MAX_RETRIES", 20, "tries"),
    "retry_delay_seconds": Bound("ICEFLOE_MAX_DELAY_SECONDS", 300, "seconds"),
    "storage_max_backoff_seconds": Bound("ICEFLOE_MAX_DELAY_SECONDS", 300, "seconds"),
}
"""The `WriteOptions` a deployment run may set, each up to a bound the operator may change (its setting)."""


def _listed(setting: str) -> list[str]:
    return [item.strip() for item in os.environ.get(setting, "").split(",") if item.strip()]


def _bound(bound: Bound) -> float:
    text = os.environ.get(bound.setting)
    return float(text) if text else bound.default


def check_function(parameter: str, reference: str) -> None:
    """Refuse a function the operator did not allow, on its name alone (nothing is imported)."""
    module, _, _ = reference.partition(":")
    allowed = set(_listed("ICEFLOE_ALLOWED_FUNCTIONS"))
    if reference in allowed or f"{module}:*" in allowed:
        return
    if any(point.value.replace(" ", "") == reference for point in entry_points(group=ENTRY_POINTS)):
        return
    raise InvalidRequestError(
        f"{parameter} {reference!r} is not a function this runner allows deployment runs to call; the operator "
        f"allows it with ICEFLOE_ALLOWED_FUNCTIONS={reference} (or {module}:* for its module) in the runner's "
        f"environment, or by registering it under the entry-point group {ENTRY_POINTS!r}"
    )


def check_address(parameter: str, address: str) -> None:
    """Refuse a Dask scheduler the operator did not allow: a run would connect there and ship it its forks."""
    if address in _listed("ICEFLOE_ALLOWED_DASK_ADDRESSES"):
        return
    raise InvalidRequestError(
        f"{parameter} {address!r}: deployment runs use the runner's Dask cluster (ICEFLOE_DASK_ADDRESS) and may "
        f"name only a scheduler the operator allows with ICEFLOE_ALLOWED_DASK_ADDRESSES={address}"
    )


def check_place(parameter: str, place: str, *settings: str) -> None:
    """Refuse a path or URL outside every prefix the `settings` list (a local path as it resolves, `..` and symlinks
    followed; a URL by its text, scheme and host included)."""
    prefixes = [prefix for setting in settings for prefix in _listed(setting)]
    if any(_under(place, prefix) for prefix in prefixes):
        return
    names = " or ".join(settings)
    listed = f"it allows {', '.join(prefixes)}" if prefixes else f"{names} not set"
    raise InvalidRequestError(
        f"{parameter} {place!r} is outside what this runner allows deployment runs to reach ({listed}); the operator "
        f"allows a prefix with {names} in the runner's environment"
    )


def _under(place: str, prefix: str) -> bool:
    if _is_local(prefix) != _is_local(place):
        return False
    if _is_local(place):
        return _resolved(place).is_relative_to(_resolved(prefix))
    url, root = urlparse(place), urlparse(prefix)
    same_host = (url.scheme.lower(), url.netloc.lower()) == (root.scheme.lower(), root.netloc.lower())
    directory = root.path.rstrip("/") + "/"
    climbs = ".." in url.path.split("/")  # a server may resolve it: never under a prefix
    return same_host and not climbs and (url.path.rstrip("/") + "/").startswith(directory)


def _is_local(place: str) -> bool:
    return ("://" not in place and "::" not in place) or place.startswith("file://")


def _resolved(place: str) -> Path:
    """A local path as it resolves; a glob, as the directory its first wildcard is in."""
    path = place.removeprefix("file://")
    literal = re.split(r"[*?\[]", path, maxsplit=1)[0]
    if literal != path and not literal.endswith("/"):
        literal = os.path.dirname(literal)
    return Path(literal or ".").expanduser().resolve()


def check_bounds(parameter: str, options: dict[str, Any]) -> None:
    """Refuse a size or count past its bound (`BOUNDS`); None means the run's own default."""
    for field, bound in BOUNDS.items():
        value = options.get(field)
        limit = _bound(bound)
        if value is not None and value > limit:
            raise InvalidRequestError(
                f"{parameter}.{field} {value!r} is more than this runner allows a deployment run ({limit:g} "
                f"{bound.what}); the operator raises the bound with {bound.setting} in the runner's environment"
            )


def describe() -> str:
    """What deployment runs may name here, on one line (the settings' values: no secret is among them)."""
    parts = []
    for setting, what in (
        ("ICEFLOE_ALLOWED_FUNCTIONS", "call"),
        ("ICEFLOE_ALLOWED_TARGETS", "write under"),
        ("ICEFLOE_ALLOWED_SOURCES", "read under"),
        ("ICEFLOE_ALLOWED_DASK_ADDRESSES", "connect to"),
    ):
        listed = _listed(setting)
        parts.append(f"{what} {', '.join(listed) if listed else 'nothing'} ({setting})")
    registered = sorted(point.value for point in entry_points(group=ENTRY_POINTS))
    if registered:
        parts.append(f"call {', '.join(registered)} (entry points {ENTRY_POINTS})")
    return "; ".join(parts)
