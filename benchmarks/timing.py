"""Timing two write paths fairly on one machine: fresh target per run, alternating order, best run of each."""

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def timed(run: Callable[[Path], None], workdir: Path) -> float:
    target = Path(tempfile.mkdtemp(dir=workdir))
    os.sync()  # start each run with no dirty pages left by the one before
    started = time.perf_counter()
    run(target)
    elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    return elapsed


def compare(
    raw: Callable[[Path], None], ours: Callable[[Path], None], repeat: int, workdir: Path
) -> dict[str, list[float]]:
    """Run both `repeat` times, alternating who goes first; seconds per run."""
    runs = {"raw": raw, "ours": ours}
    times: dict[str, list[float]] = {"raw": [], "ours": []}
    for i in range(repeat):
        for name in ("raw", "ours") if i % 2 == 0 else ("ours", "raw"):
            times[name].append(timed(runs[name], workdir))
    return times


def report(times: dict[str, list[float]], nbytes: float, raw_name: str, our_name: str) -> None:
    """Per-run times, best throughput of each, and last the ratio of throughputs icefloe/raw."""
    raw_mbs, our_mbs = nbytes / 1e6 / min(times["raw"]), nbytes / 1e6 / min(times["ours"])
    width = max(len(raw_name), len(our_name)) + 1
    print(f"{raw_name + ':':<{width}} {' '.join(f'{t:.2f}s' for t in times['raw'])} -> best {raw_mbs:.0f} MB/s")
    print(f"{our_name + ':':<{width}} {' '.join(f'{t:.2f}s' for t in times['ours'])} -> best {our_mbs:.0f} MB/s")
    print(f"ratio icefloe/raw = {our_mbs / raw_mbs:.3f}")
