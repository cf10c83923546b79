"""Dask's private API: the task classes of its graph specification. A block's slice of a source renames its own
tasks' keys with `Alias`, as `dask.array.Array.blocks` does, and knows a materialized layer it can walk by its
`GraphNode`s (`tasks/planning/block_slices.py`, guarded by tests/tasks/test_block_slices.py)."""

import dask

try:
    from dask._task_spec import Alias, GraphNode
except ImportError as e:
    raise ImportError(f"icefloe's block slices need dask's task spec, which dask {dask.__version__} lacks: {e}") from e

__all__ = ["Alias", "GraphNode"]
