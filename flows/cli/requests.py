"""The command's arguments as the typed request a run takes: the source, the `DatasetWrite` and the `WriteOptions`.
A value the models refuse is named as the user wrote it (the flag, the JSON field)."""

import argparse
import json
import re
from typing import Any

from pydantic import TypeAdapter, ValidationError

from flows.cli.arguments import RUN_OPTIONS, WRITE_OPTIONS
from tasks.errors import InvalidRequestError
from tasks.refusals import validation_problems
from tasks.regions import RegionParameter
from tasks.request import DatasetWrite, PublishGate, WriteOptions, dataset_write_gate
from tasks.storage.callables import CALLABLE_PATTERN
from tasks.storage.file_sources import GribSource, NetCDFSource
from tasks.storage.sources import CallableSource, IcechunkSource, NamedSource, ZarrSource
from tasks.storage.synthetic import SyntheticDataset

FLAGS = {option.field: option.flag for option in (*WRITE_OPTIONS, *RUN_OPTIONS)}
"""Each option's flag, by the field it sets, to name it in an error."""


def parse_source(text: str, concat_dim: str | None = None) -> NamedSource:
    """A source from the command line: JSON (any kind), `synthetic`, `package.module:function`, a `.zarr` store,
    an `.icechunk` repository, GRIB files (`.grib`, `.grib2`, `.grb`, `.grb2`), or else NetCDF files (a path, URL
    or glob)."""
    if text.lstrip().startswith("{"):
        try:
            return TypeAdapter(NamedSource).validate_json(text)
        except ValidationError as e:
            raise InvalidRequestError(f"source {text}: {validation_problems(e, tagged=True)}") from e
    if text == "synthetic":
        return SyntheticDataset()
    if re.fullmatch(CALLABLE_PATTERN, text):
        return CallableSource(function=text)
    if text.rstrip("/").endswith(".zarr"):
        return ZarrSource(url=text)
    if text.rstrip("/").endswith(".icechunk"):
        return IcechunkSource(repo=text)
    if text.lower().endswith((".grib", ".grib2", ".grb", ".grb2")):
        return GribSource(paths=text, concat_dim=concat_dim)
    return NetCDFSource(paths=text, concat_dim=concat_dim)


def region_from_flags(values: list[str] | None) -> RegionParameter:
    """`--region`'s values: `auto`, or `dim=start:stop` (either end may be empty) / `dim=auto`, repeated."""
    if not values:
        return None
    if values == ["auto"]:
        return "auto"
    region: dict[str, Any] = {}
    for value in values:
        match = re.fullmatch(r"(\w+)=(?:(auto)|(\d*):(\d*))", value)
        if match is None:
            raise argparse.ArgumentTypeError(f"--region {value!r}: use dim=start:stop, dim=auto or auto")
        dim, auto, start, stop = match.groups()
        region[dim] = "auto" if auto else slice(int(start) if start else None, int(stop) if stop else None)
    return region


def encoding_from_flag(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        encoding = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidRequestError(
            f'--encoding {text!r} is not JSON ({e}); e.g. \'{{"t2m": {{"chunks": [24, 181, 360]}}}}\''
        ) from e
    if not isinstance(encoding, dict):
        raise InvalidRequestError(f"--encoding {text!r}: give a JSON object of variable names to encodings")
    return encoding


def write_options(args: argparse.Namespace) -> WriteOptions:
    """The options the flags give; the model's defaults for those not given."""
    given = {field: getattr(args, field) for field in FLAGS if hasattr(args, field)}
    try:
        return WriteOptions.model_validate({"processes": args.processes, **given})  # a ValidationError, to name flags
    except ValidationError as e:
        raise InvalidRequestError(f"options: {validation_problems(e, FLAGS)}") from e


def dataset_write(args: argparse.Namespace) -> DatasetWrite:
    """`write`'s to_zarr keywords, branch and validation hook."""
    parsed = {"region": region_from_flags(args.region), "encoding": encoding_from_flag(args.encoding)}
    given = {name: getattr(args, name) for name in DatasetWrite.model_fields if hasattr(args, name)}
    try:
        return DatasetWrite.model_validate(given | parsed)
    except ValidationError as e:
        raise InvalidRequestError(validation_problems(e)) from e


def gate_from_flags(args: argparse.Namespace, write: DatasetWrite) -> PublishGate | None:
    """The publish gate `--publish` asks for."""
    if not args.publish and (args.publish_check or args.allow_nan):
        raise InvalidRequestError("--publish-check and --allow-nan apply to --publish only: add --publish")
    return dataset_write_gate(args.publish, write, args.allow_nan, args.publish_check)
