"""icefloe's flows check their own parameters: Prefect is told not to (`validate_parameters=False`), and each flow
function validates its arguments against its annotations as it is called, from Python or for a deployment's run
(whose parameters arrive as JSON). A refusal is an `InvalidRequestError` naming each parameter, the value and what
is wrong in icefloe's words (`tasks/refusals.py`), where Prefect would raise its ParameterTypeError with pydantic's
text and log pydantic's raw errors."""

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Flow, flow
from pydantic import ConfigDict, TypeAdapter, ValidationError, validate_call

from tasks.errors import InvalidRequestError
from tasks.refusals import validation_problems

# Not PEP 695's parameters: Prefect sends a flow's function to Dask's workers with its context, and cloudpickle
# cannot pickle a function whose annotations hold type parameters of that syntax (module-level ones pickle by name).
P = ParamSpec("P")
ARBITRARY_TYPES = ConfigDict(arbitrary_types_allowed=True)  # a dask array, an xarray Dataset, as Prefect allows
R = TypeVar("R")


def checked_parameters(function: Callable[P, R]) -> Callable[P, R]:  # noqa: UP047 - see P
    """`function`, validating its arguments first (models from JSON, as Prefect would) and refusing bad ones in
    icefloe's words. A model built inside it with a bad value is refused the same way."""

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            bound = inspect.signature(function).bind(*args, **kwargs)  # by name: a problem is named by its parameter
        except TypeError as e:
            raise InvalidRequestError(f"{function.__name__}: {e}") from None
        try:
            return _validating(function)(**bound.arguments)
        except ValidationError as e:
            raise InvalidRequestError(validation_problems(e)) from None

    return call


@functools.cache
def _validating[T](function: Callable[..., T]) -> Callable[..., T]:
    """`function` behind pydantic's validation of its arguments, made once. Looked up by name, not held by `call`:
    Prefect pickles a flow's function into every task it sends to Dask, and pydantic's validator does not travel."""
    validating: Callable[..., T] = validate_call(config=ARBITRARY_TYPES)(function)
    return validating


def icefloe_flow(name: str) -> Callable[[Callable[P, R]], Flow[P, R]]:
    """Prefect's `flow` with the parameters checked by icefloe (`checked_parameters`)."""

    def decorate(function: Callable[P, R]) -> Flow[P, R]:
        return flow(name=name, validate_parameters=False)(checked_parameters(function))

    return decorate


def validated_parameters(checked_flow: Flow[..., object], parameters: dict[str, Any]) -> dict[str, Any]:
    """`parameters` as `checked_flow` would take them (models from JSON, defaults filled in), refused in icefloe's
    words as a run would refuse them, without running it: a schedule's, checked as `serve` starts."""
    signature = inspect.signature(inspect.unwrap(checked_flow.fn))
    unknown = sorted(set(parameters) - set(signature.parameters))
    if unknown:
        raise InvalidRequestError(f"{', '.join(unknown)}: not a parameter of {checked_flow.name}")
    problems, validated = [], {}
    for name, parameter in signature.parameters.items():
        if name not in parameters:
            if parameter.default is inspect.Parameter.empty:
                problems.append(f"{name}: missing")
            else:
                validated[name] = parameter.default
            continue
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(parameter.annotation)
            validated[name] = adapter.validate_python(parameters[name])
        except ValidationError as e:
            problems.append(validation_problems(e, prefix=name))
    if problems:
        raise InvalidRequestError("; ".join(problems))
    return validated
