from pathlib import Path

import dask.array as da
import icechunk
import pytest
import zarr

from tasks.errors import ChunkAlignmentError, InvalidRequestError, OverlappingWritesError
from tasks.planning.arrays import initialize_arrays, resolve_writes
from tasks.request import ArraySpec, ArrayWrite


@pytest.fixture
def group(tmp_path: Path) -> zarr.Group:
    session = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path))).writable_session("main")
    group = zarr.open_group(session.store, mode="a")
    group.create_array("existing", shape=(20, 10), chunks=(5, 5), dtype="float32")
    return group


def resolve(group: zarr.Group, *writes: ArrayWrite) -> list:
    return resolve_writes(group, list(writes))


def f32(*shape: int) -> da.Array:
    return da.zeros(shape, dtype="float32")


@pytest.mark.parametrize(
    ("write", "error", "message"),
    [
        (
            ArrayWrite(source=f32(4, 4), target="missing"),
            InvalidRequestError,
            "'missing' does not exist on this branch",
        ),
        (
            ArrayWrite(source=f32(4, 4), target="existing"),
            InvalidRequestError,
            r"source of shape \(4, 4\) does not fit",
        ),
        (
            ArrayWrite(source=da.zeros((20, 10), dtype="complex64"), target="existing"),
            InvalidRequestError,
            "complex64 cannot be stored as float32",
        ),
        (
            ArrayWrite(source=f32(5, 10), target="existing", region=(slice(20, 25), slice(None))),
            InvalidRequestError,
            "outside the array's shape",
        ),
        (
            ArrayWrite(source=f32(5, 10), target="existing", region=(slice(3, 8), slice(None))),
            ChunkAlignmentError,
            "not a multiple of 5",
        ),
        (
            ArrayWrite(source=f32(20, 10), target=ArraySpec(path="existing", chunks=(10, 10))),
            InvalidRequestError,
            r"exists with chunks \(5, 5\).*asks for chunks \(10, 10\)",
        ),
        (
            ArrayWrite(source=f32(20, 10), target=ArraySpec(path="new", chunks=(10,))),
            InvalidRequestError,
            r"chunks \(10,\) has 1 dimensions, the source has 2",
        ),
    ],
)
def test_bad_writes_are_refused_before_anything_is_written(
    group: zarr.Group, write: ArrayWrite, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        resolve(group, write)
    assert sorted(group.array_keys()) == ["existing"]


def test_writes_that_overlap_on_one_array_are_refused(group: zarr.Group) -> None:
    top = ArrayWrite(source=f32(10, 10), target="existing", region=(slice(0, 10), slice(None)))
    middle = ArrayWrite(source=f32(10, 10), target="existing", region=(slice(5, 15), slice(None)))

    with pytest.raises(OverlappingWritesError, match=r"overlapping regions \[0:10, 0:10\] and \[5:15, 0:10\]"):
        resolve(group, top, middle)


def test_writes_that_share_a_chunk_without_overlapping_are_refused(group: zarr.Group) -> None:
    """Regions may stop inside a chunk when partial edge chunks are allowed (a Dataset's appends); two such
    writes of one chunk would each rewrite it whole."""
    top = ArrayWrite(source=f32(7, 10), target="existing", region=(slice(0, 7), slice(None)))
    bottom = ArrayWrite(source=f32(13, 10), target="existing", region=(slice(7, 20), slice(None)))

    with pytest.raises(OverlappingWritesError, match=r"\[0:7, 0:10\] and \[7:20, 0:10\] .* share a chunk"):
        resolve_writes(group, [top, bottom], partial_edge_chunks=True)
    assert len(resolve_writes(group, [top], partial_edge_chunks=True)) == 1


def test_a_spec_region_past_the_end_grows_the_array(group: zarr.Group) -> None:
    spec = ArraySpec(path="existing", chunks=(5, 5), dtype="float32")
    (resolved,) = resolve(group, ArrayWrite(source=f32(10, 10), target=spec, region=(slice(20, None), slice(None))))

    assert resolved.grow
    assert resolved.shape == (30, 10)
    assert resolved.region == ((20, 30), (0, 10))
    initialize_arrays(group, [resolved])
    assert group["existing"].shape == (30, 10)


def test_a_path_write_may_target_an_array_created_by_the_same_run(group: zarr.Group) -> None:
    spec = ArraySpec(path="new", chunks=(5, 5), shape=(10, 10))
    created, filled = resolve(
        group,
        ArrayWrite(source=f32(5, 10), target=spec),
        ArrayWrite(source=f32(5, 10), target="new", region=(slice(5, 10), slice(None))),
    )

    assert created.create is not None
    assert filled.region == ((5, 10), (0, 10))


def test_no_writes_is_an_error(group: zarr.Group) -> None:
    with pytest.raises(InvalidRequestError, match="no writes given"):
        resolve_writes(group, [])
