"""The machine's floor for a write: what no tool writing these bytes here can beat, measured on the same bytes.

Each part is measured alone, on every core: a new interpreter importing what a write needs; the source's chunks
computed and dropped; Zstandard alone (Zarr v3's default codec, level 0) on the source's chunks; the encoded chunks
written as files and synced. Computing and encoding share the cores, writing can overlap them, so a whole process
cannot beat imports + max(source + codec, store). `benchmarks/end_to_end.py` prints it beside the paths it times.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMPORTS = "import dask.array, icechunk, xarray, zarr"


@dataclass(frozen=True)
class Floor:
    imports: float
    source: float
    codec: float
    store: float

    @property
    def seconds(self) -> float:
        return self.imports + max(self.source + self.codec, self.store)

    def __str__(self) -> str:
        return (
            f"floor {self.seconds:.2f} s = imports {self.imports:.2f} + max(source {self.source:.2f} + codec "
            f"{self.codec:.2f}, store {self.store:.2f})"
        )


def local_floor(dataset_source: dict[str, Any], chunks: tuple[int, ...], workdir: Path) -> Floor:
    """The floor of writing the synthetic dataset `dataset_source` names, in Zarr chunks of `chunks`, to `workdir`'s
    disk on this machine's cores."""
    import dask
    import dask.array as da
    from numcodecs import Zstd

    from tasks.storage.synthetic import SyntheticDataset

    cores = os.cpu_count() or 1
    imports = best_of(lambda: subprocess.run([sys.executable, "-c", IMPORTS], check=True))

    arrays = [v.data.rechunk(chunks) for v in SyntheticDataset(**dataset_source).open().data_vars.values()]
    dropped: list[Any] = [_Dropped() for _ in arrays]
    with dask.config.set(scheduler="threads", num_workers=cores):
        source = best_of(lambda: da.store(arrays, dropped, lock=False))
        held = [a.blocks[index].compute() for a in arrays for index in _block_indexes(a)]  # the codec's input

    codec = Zstd(level=0)
    encoded: list[bytes] = []
    with ThreadPoolExecutor(cores) as pool:
        encoding = best_of(lambda: encoded.__setitem__(slice(None), pool.map(codec.encode, held)))

    def write_and_sync() -> None:
        directory = Path(tempfile.mkdtemp(dir=workdir))
        try:
            with ThreadPoolExecutor(cores) as pool:
                list(pool.map(lambda item: (directory / str(item[0])).write_bytes(item[1]), enumerate(encoded)))
            os.sync()
        finally:
            shutil.rmtree(directory)

    os.sync()
    store = best_of(write_and_sync)
    return Floor(imports, source, encoding, store)


def best_of(run: Callable[[], object], times: int = 2) -> float:
    """The fastest of `times` runs, in seconds: the first may pay for warming caches and allocators."""
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


class _Dropped:
    def __setitem__(self, key: object, value: object) -> None:
        pass


def _block_indexes(array: Any) -> list[tuple[int, ...]]:
    import itertools

    return list(itertools.product(*(range(n) for n in array.numblocks)))
