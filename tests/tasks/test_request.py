import dask.array as da
import pytest
from fastapi.encoders import jsonable_encoder

from tasks.errors import InvalidRequestError
from tasks.request import ArraySpec, ArrayWrite, WriteOptions


def test_prefect_records_a_dask_source_by_its_description_not_its_elements() -> None:
    """Prefect stores flow parameters through FastAPI's encoder; a bare dask array would be walked element-wise."""
    source = da.zeros((100_000, 100_000), chunks=(1000, 1000), dtype="float32")
    write = ArrayWrite(source=source, target=ArraySpec(path="t2m", chunks=(10, 10)), region=(slice(0, None), [0, 5]))

    encoded = jsonable_encoder(write)

    assert encoded["source"] == {
        "name": source.name,
        "shape": [100_000, 100_000],
        "dtype": "float32",
        "chunks": [[1000] * 100, [1000] * 100],
    }
    assert encoded["region"] == [[0, None], [0, 5]]
    assert write.region == (slice(0, None), slice(0, 5))


def test_invalid_parameters_name_the_field() -> None:
    with pytest.raises(InvalidRequestError, match="source"):
        ArrayWrite(source=[1, 2, 3], target="x")
    with pytest.raises(InvalidRequestError, match="dask_address"):
        WriteOptions(dask_address="localhost:8786")
    with pytest.raises(InvalidRequestError, match="retries"):
        WriteOptions(retries=-1)
    with pytest.raises(InvalidRequestError, match="path"):
        ArraySpec(path="/leading/slash", chunks=(1,))
