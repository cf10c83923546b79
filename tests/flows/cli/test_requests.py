"""The command's flags as the typed request a run takes: absent, a field keeps the model's default (written once);
given, it is checked by the model and named as the user wrote it."""

import inspect

import pytest

from flows.cli.main import main, parser
from flows.cli.requests import dataset_write, write_options
from flows.write_dataset import write_dataset
from tasks.errors import InvalidRequestError
from tasks.request import DatasetWrite, WriteOptions


def test_a_write_without_flags_is_the_models_defaults() -> None:
    args = parser().parse_args(["write", "synthetic", "target"])
    assert write_options(args) == WriteOptions()
    assert dataset_write(args) == DatasetWrite()


def test_flags_set_their_fields() -> None:
    options = ["--retries", "0", "--block-mib", "1.5", "--n-workers", "3", "--processes"]
    keywords = ["--mode", "a", "--append-dim", "time", "--no-safe-chunks", "--branch", "dev", "--region", "time=0:24"]
    args = parser().parse_args(["write", "synthetic", "t", *options, *keywords])
    assert write_options(args) == WriteOptions(retries=0, block_bytes=int(1.5 * 2**20), n_workers=3, processes=True)
    assert dataset_write(args) == DatasetWrite(
        mode="a", append_dim="time", safe_chunks=False, branch="dev", region={"time": slice(0, 24)}
    )


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--retries", "-1"], "--retries"), (["--block-mib", "0"], "--block-mib"), (["--dask-address", "x"], "--dask")],
)
def test_a_refused_option_is_named_by_its_flag(flags: list[str], named: str) -> None:
    with pytest.raises(InvalidRequestError, match=f"options: {named}"):
        write_options(parser().parse_args(["write", "synthetic", "t", *flags]))


def test_the_help_shows_the_models_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["write", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    options = WriteOptions()
    assert f"retries per block (default {options.retries})" in shown
    assert f"(default {options.storage_max_tries})" in shown
    assert f"(default {options.manifest_fetch_concurrency};" in shown
    assert f"(default {DatasetWrite().branch})" in shown


def test_the_flows_form_shows_the_models_defaults() -> None:
    parameters = inspect.signature(write_dataset.fn).parameters
    for name, default in DatasetWrite():
        assert parameters[name].default == default, name
