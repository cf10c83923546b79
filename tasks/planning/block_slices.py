"""A block's slice of a dask array, in time that grows with the block, not with the array.

Slicing a dask array (`source[inner]`) walks every chunk boundary along each sliced dimension, and culling that
slice copies every materialized layer of the graph: done once per block, planning grows as blocks x graph (a 10 TB
source has 10^6 chunks along time). `SourceBlocks` looks at the source once: its chunk boundaries, the order of its
graph's layers, whether it knows every layer's kind. A block that starts and stops on the source's own chunk
boundaries (a source chunked like its target, or finer) then takes only the tasks of its own chunks, found from
its output keys down, layer by layer (a blockwise layer makes only those tasks), and renames its keys to start from
zero. Any other block, or a graph with a layer of another kind, falls back to slicing.

The renaming uses dask's own alias task (`Alias`, as `Array.blocks` does), a private name reached through
`tasks/internals/dask.py`, guarded by tests/tasks/test_block_slices.py.
"""

import itertools
from collections import defaultdict
from graphlib import TopologicalSorter
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.blockwise import Blockwise
from dask.highlevelgraph import HighLevelGraph, Layer, MaterializedLayer

from tasks.internals.dask import Alias, GraphNode

type Key = Any


def _known(layer: Layer) -> bool:
    if isinstance(layer, Blockwise):
        return True
    return isinstance(layer, MaterializedLayer) and all(isinstance(t, GraphNode) for t in layer.mapping.values())


class SourceBlocks:
    """Index with a tuple of slices (step 1, in bounds) to get that part of `source` with only its own graph."""

    def __init__(self, source: da.Array) -> None:
        self.source = source
        graph = source.__dask_graph__()
        assert isinstance(graph, HighLevelGraph)  # a dask array's graph always is
        self.graph = graph
        self.bounds = [np.cumsum((0, *sizes)) for sizes in source.chunks]
        self.layers = self.graph.layers
        # consumers before what they consume; only when every layer is of a kind whose tasks can be found by key
        known = all(_known(layer) for layer in self.layers.values())
        self.order = list(reversed(list(TopologicalSorter(self.graph.dependencies).static_order()))) if known else []

    def __getitem__(self, inner: tuple[slice, ...]) -> da.Array:
        ranges = [self._chunk_range(sl, bounds) for sl, bounds in zip(inner, self.bounds, strict=True)]
        whole = [r for r in ranges if r is not None]
        if inner and self.order and len(whole) == len(ranges):
            found = self._from_keys(whole)
            if found is not None:
                return found
        (sliced,) = dask.optimize(self.source[inner])
        return sliced

    @staticmethod
    def _chunk_range(sl: slice, bounds: np.ndarray) -> tuple[int, int] | None:
        """The chunks `sl` covers exactly, or None when it starts or stops inside one."""
        first, last = (int(i) for i in np.searchsorted(bounds, (sl.start, sl.stop)))
        if first == last or bounds[first] != sl.start or last >= len(bounds) or bounds[last] != sl.stop:
            return None
        return first, last

    def _from_keys(self, ranges: list[tuple[int, int]]) -> da.Array | None:
        name = self.source.name
        block_name = f"{name}-block-{tokenize(name, ranges)}"
        aliases: dict[Key, Alias] = {}
        for index in itertools.product(*(range(first, last) for first, last in ranges)):
            key: Key = (block_name, *(i - first for i, (first, _) in zip(index, ranges, strict=True)))
            aliases[key] = Alias(key, (name, *index))
        tasks = self._tasks({alias.target for alias in aliases.values()})
        if tasks is None:
            return None
        graph = HighLevelGraph.from_collections(block_name, {**tasks, **aliases}, dependencies=())
        chunks = tuple(sizes[first:last] for sizes, (first, last) in zip(self.source.chunks, ranges, strict=True))
        return da.Array(graph, block_name, chunks, meta=self.source)

    def _tasks(self, keys: set[Key]) -> dict[Key, GraphNode] | None:
        """The tasks that compute `keys`, layer by layer from the output down; None when a key's layer is not
        found (the caller then slices)."""
        needed: dict[str, set[Key]] = defaultdict(set)
        needed[self.source.name] |= keys
        tasks: dict[Key, GraphNode] = {}
        for name in self.order:
            wanted = needed.pop(name, None)
            if not wanted:
                continue
            found, outside = self._layer_tasks(self.layers[name], wanted)
            tasks.update(found)
            for key in outside - tasks.keys():
                owner = self._owner(key, name)
                if owner is None:
                    return None
                needed[owner].add(key)
        return None if needed else tasks

    @staticmethod
    def _layer_tasks(layer: Layer, wanted: set[Key]) -> tuple[dict[Key, GraphNode], set[Key]]:
        """The tasks of `layer` that compute `wanted`, and the keys of other layers they need."""
        if isinstance(layer, Blockwise):
            culled, dependencies = layer.cull(wanted, ())
            found = {key: culled[key] for key in dependencies}
            return found, set().union(*dependencies.values()) - found.keys()
        assert isinstance(layer, MaterializedLayer)
        found, outside, work = {}, set(), list(wanted)
        while work:
            key = work.pop()
            if key in found or key in outside:
                continue
            if key not in layer.mapping:
                outside.add(key)
                continue
            task: GraphNode = layer.mapping[key]
            found[key] = task
            work.extend(task.dependencies)
        return found, outside

    def _owner(self, key: Key, consumer: str) -> str | None:
        """The layer, among those `consumer` depends on, that holds `key`."""
        name = key[0] if isinstance(key, tuple) else key
        for candidate in sorted(self.graph.dependencies[consumer], key=lambda c: c != name):
            layer = self.layers[candidate]
            if (isinstance(layer, Blockwise) and layer.output == name) or (
                isinstance(layer, MaterializedLayer) and key in layer.mapping
            ):
                return candidate
        return None
