"""Initializing an xarray Dataset in a writable session with xarray's own Zarr writer, so that modes, append_dim,
region, encoding, safe_chunks and align_chunks mean exactly what they mean in `Dataset.to_zarr` and
`icechunk.xarray.to_icechunk` (same checks, same errors).

xarray writes the metadata and the in-memory variables (coordinates, usually) straight into the session; the lazy
variables come back as `ArrayWrite`s for the block tasks.
"""

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import xarray as xr
import zarr
from dask.base import is_dask_collection
from icechunk import IcechunkStore
from zarr.errors import GroupNotFoundError

from tasks.errors import InvalidRequestError, ValidationHookError
from tasks.internals.icechunk import choose_default_mode
from tasks.internals.xarray import ArrayWriter, ZarrStore, autodetect_region, dump_to_store, validate_names_and_encoding
from tasks.planning.arrays import ResolvedWrite, resolve_writes
from tasks.request import ArrayWrite, DatasetWrite
from tasks.storage.callables import import_function


class _CollectingWriter(ArrayWriter):
    """Keeps the lazy variables for the block tasks, and the in-memory ones to write all at once: each is a request
    to an object store, and xarray's writer makes them one after the other."""

    def __init__(self) -> None:
        super().__init__()
        self.lazy: list[ArrayWrite] = []
        self.eager: list[tuple[Any, Any, Any]] = []

    def add(self, source: Any, target: Any, region: Any = None) -> None:
        if is_dask_collection(source):
            self.lazy.append(ArrayWrite(source=source, target=target.path, region=region))
        else:
            self.eager.append((source, target, region))

    def write_eager(self) -> None:
        def write(source: Any, target: Any, region: Any) -> None:
            target[region or ...] = source

        if len(self.eager) == 1:
            write(*self.eager[0])
        elif self.eager:
            with ThreadPoolExecutor(min(16, len(self.eager)), thread_name_prefix="icefloe-eager") as pool:
                list(pool.map(lambda args: write(*args), self.eager))  # list(): re-raises the first error


def _with_empty_variables_loaded(dataset: xr.Dataset) -> xr.Dataset:
    """As to_zarr: a variable with a zero-length dimension is loaded first (a lazy one has no chunk to write, and
    Zarr takes no chunk size of 0 from its empty dask chunks); the caller's Dataset is left as it was."""
    if not any(v.size == 0 and v.chunks is not None for v in dataset.variables.values()):
        return dataset
    dataset = dataset.copy(deep=False)
    for variable in dataset.variables.values():
        if variable.size == 0:
            variable.load()
    return dataset


def initialize_dataset(
    store: IcechunkStore, dataset: xr.Dataset, write: DatasetWrite, *, run_hook: bool = True
) -> list[ResolvedWrite]:
    """Write `dataset`'s metadata and in-memory variables into `store` as to_zarr would with `write`'s keywords, run
    its validation hook (unless not `run_hook`), and return its lazy variables as checked writes for the block tasks.

    Raises xarray's own errors (ValueError and friends) for bad modes, dims, regions and encodings, and the hook's
    refusal, before any chunk of a lazy variable is written.
    """
    group, append_dim, encoding = write.group, write.append_dim, write.encoding
    dataset = _with_empty_variables_loaded(dataset)
    write_region = dict(write.region) if isinstance(write.region, dict) else write.region  # xarray's to change
    chosen_mode = choose_default_mode(mode=write.mode, append_dim=append_dim, region=write_region)
    try:
        xarray_store = ZarrStore.open_group(
            store,
            group=group,
            mode=chosen_mode,
            zarr_format=3,
            append_dim=append_dim,
            write_region=write_region,
            safe_chunks=write.safe_chunks,
            align_chunks=write.align_chunks,
            consolidated=False,
            consolidate_on_close=False,
        )
    except GroupNotFoundError as e:
        raise MissingGroupError(
            f"mode {chosen_mode!r} writes into an existing group, and the target has no group {group or '/'}; "
            "write it first with mode 'w', 'w-' or 'a'"
        ) from e
    _check_chunk_sizes(encoding or {})
    unknown = sorted(set(map(str, encoding or {})) - set(map(str, dataset.variables)))
    if unknown:
        raise UnknownVariableError(
            f"encoding names {unknown}, which the dataset does not have; its variables: "
            f"{sorted(map(str, dataset.variables))}"
        )
    dataset = autodetect_region(xarray_store, dataset)
    validate_names_and_encoding(xarray_store, dataset, encoding or {})
    writer = _CollectingWriter()
    dump_to_store(dataset, xarray_store, writer, encoding=encoding or {})
    writer.write_eager()
    if write.validation_hook is not None and run_hook:
        run_validation(write.validation_hook, store, group)
    if not writer.lazy:
        return []
    # xarray has checked the alignment already, as safe_chunks asks; our blocks keep every chunk in one block
    resolved = resolve_writes(zarr.open_group(store, mode="r"), writer.lazy, partial_edge_chunks=True)
    # xarray's order follows set iteration, which varies between processes: blocks must be named alike in each
    return sorted(resolved, key=lambda r: r.path)


class MissingGroupError(InvalidRequestError, GroupNotFoundError):
    """Mode r+ (or a region write) into a group the target does not have: xarray's error, saying what to do."""


class UnknownVariableError(InvalidRequestError, KeyError):
    """An encoding for a variable the Dataset lacks: xarray's KeyError, naming what there is."""

    def __str__(self) -> str:
        return str(self.args[0])  # a KeyError would show its message quoted


def _check_chunk_sizes(encoding: Mapping[Any, Any]) -> None:
    """Zero or negative chunk sizes reach a division deep inside xarray; refuse them by name instead."""
    for name, settings in encoding.items():
        for key in ("chunks", "shards"):
            sizes = settings.get(key) if isinstance(settings, Mapping) else None
            if isinstance(sizes, list | tuple) and any(not isinstance(n, int) or n <= 0 for n in sizes):
                raise InvalidRequestError(
                    f"encoding of {name!r}: {key} {list(sizes)} must be positive whole numbers, one per dimension"
                )


def run_validation(function: str, store: IcechunkStore, group: str | None) -> None:
    """Call the user's hook with the initialized, uncommitted group as a Dataset; its exception stops the run."""
    hook = import_function(function, "validation hook")
    dataset = xr.open_zarr(store, group=group, consolidated=False)
    try:
        hook(dataset)
    except Exception as e:
        raise ValidationHookError(
            f"validation hook {function!r} refused the write ({type(e).__name__}: {e}); nothing was committed"
        ) from e
