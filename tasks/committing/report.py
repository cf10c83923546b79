"""What a run reports once committed: a summary a person reads, a table of its blocks, an event's payload.

Plain text and dicts, so that any orchestrator can publish them (Prefect as artifacts and an event).
"""

import hashlib
import heapq
import re
from typing import Any

from tasks.planning.arrays import ResolvedWrite, region_bytes
from tasks.records import ArrayReport, BlockReport, CommitResult, MergedBlock

BLOCK_ROWS = 25
"""A block table lists every block up to this many; beyond, the slowest ones (the rest are in the per-array totals)."""


def array_reports(resolved: list[ResolvedWrite], created: set[str], merged: list[MergedBlock]) -> list[ArrayReport]:
    """Per array the run wrote blocks of: created by the run or updated, chunks (or shards) written, bytes."""
    chunks: dict[str, int] = {}
    for block in merged:
        for array, n in block.chunks.items():
            chunks[array] = chunks.get(array, 0) + n
    return [
        ArrayReport(
            path=r.path,
            created=r.path in created,
            chunks=chunks.get(r.path, 0),
            bytes=region_bytes(r.region, r.dtype.itemsize),
        )
        for r in sorted(resolved, key=lambda r: r.path)
    ]


def block_reports(merged: list[MergedBlock], itemsizes: dict[str, int]) -> list[BlockReport]:
    """A row per block, slowest first: at most BLOCK_ROWS of them (rows are made for those only)."""
    return [
        BlockReport(
            block=w.block.name,
            chunks=sum(w.chunks.values()),
            mb=round(region_bytes(w.block.region, sum(itemsizes[a] for a in w.block.arrays)) / 1e6, 3),
            seconds=round(w.seconds, 3),
            attempt=w.attempt,
            resubmits=w.resubmits,
            kept=w.kept,
        )
        for w in heapq.nlargest(BLOCK_ROWS, merged, key=lambda w: w.seconds)
    ]


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.1f} MB"


def summary_markdown(result: CommitResult) -> str:
    """The run for a person: where it committed, what it wrote, where the time went, and how to look."""
    blocks = f"{result.blocks} blocks"
    details = [
        f"{result.retried_blocks} retried",
        f"{result.resubmitted_blocks} resubmitted after a lost worker",
    ]
    if result.reused_blocks:
        details.append(f"{result.reused_blocks} kept by an earlier attempt, not rewritten")
    stages = (
        f"initialize {result.initialized_at - result.started_at:.1f} s"
        f" · plan {result.writing_at - result.initialized_at:.1f} s"
        f" · write {result.write_seconds:.1f} s ({result.write_mb_per_s:,.0f} MB/s)"
        f" · commit {result.committed_at - result.written_at:.1f} s · {result.seconds:.1f} s in all"
    )
    heading = {
        None: "committed",
        True: "published",
        False: f"staged (not published: a check failed) on `{result.staged_branch}`",
    }[result.published]
    lines = [
        f"## icefloe {heading} snapshot `{result.snapshot_id}`",
        "",
        "| | |",
        "|---|---|",
        f"| target | `{result.target}` |",
        f"| branch | `{result.branch}` |",
        f"| snapshot | `{result.parent_id}` → `{result.snapshot_id}` |",
        f"| written | {_mb(result.bytes)} in {result.chunks:,} chunks, {blocks} ({', '.join(details)}) |",
        f"| time | {stages} |",
        "",
        "| array | | chunks written | MB |",
        "|---|---|---:|---:|",
        *(
            f"| `{a.path}` | {'created' if a.created else 'updated'} | {a.chunks:,} | {a.bytes / 1e6:,.1f} |"
            for a in result.arrays
        ),
        *publishing_lines(result),
        "",
        f"Its history: `icefloe history {result.target} --branch {result.branch}`",
    ]
    return "\n".join(lines)


def publishing_lines(result: CommitResult) -> list[str]:
    """A publishing run's path, staged -> checked -> published, and each check's result."""
    if result.published is None:
        return []
    failed = sum(c.outcome == "failed" for c in result.checks)
    outcome = "published" if result.published else f"**not published**: `{result.branch}` did not move"
    path = (
        f"staged on `{result.staged_branch}` → checked ({len(result.checks) - failed} of {len(result.checks)} "
        f"passed) → {outcome}"
    )
    return [
        "",
        path,
        "",
        "| check | outcome | found |",
        "|---|---|---|",
        *(f"| {c.check} | {c.outcome} | {c.detail} |" for c in result.checks),
    ]


def committed_payload(result: CommitResult) -> dict[str, Any]:
    """What the `icefloe.snapshot.*` events carry: ids and sizes, nothing secret; and a publishing run's staging
    branch and failed checks."""
    gated: dict[str, Any] = {}
    if result.published is not None:
        gated = {
            "staged_branch": result.staged_branch,
            "failed_checks": [c.model_dump() for c in result.checks if c.outcome == "failed"],
        }
    return gated | {
        "snapshot": result.snapshot_id,
        "parent": result.parent_id,
        "branch": result.branch,
        "arrays": [a.path for a in result.arrays],
        "bytes": result.bytes,
        "chunks": result.chunks,
        "blocks": result.blocks,
    }


def artifact_key(target: str, branch: str, kind: str = "summary") -> str:
    """A Prefect artifact key per repository and branch (lower-case letters, digits, dashes): the UI's artifact
    page then shows each repository's latest run, its earlier ones as versions."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{target} {branch}".lower()).strip("-")
    if len(slug) > 60:
        slug = f"{slug[:47]}-{hashlib.sha256(slug.encode()).hexdigest()[:12]}"
    return f"icefloe-{slug}-{kind}"
