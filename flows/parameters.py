"""icefloe's flows check their own parameters: Prefect is told not to (`validate_parameters=False`), and each flow
function validates its arguments against its annotations as it is called, from Python or for a deployment's run
(whose parameters arrive as JSON). A refusal is an `InvalidRequestError` naming each parameter, the value and what
is wrong in icefloe's words (`tasks/refusals.py`), where Prefect would raise its ParameterTypeError with pydantic's
text and log pydantic's raw errors."""

import functools
import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Flow, flow
from pydantic import ConfigDict, ValidationError, validate_call

from tasks.errors import InvalidRequestError
from tasks.refusals import validation_problems

# Not PEP 695's parameters: Prefect sends a flow's function to Dask's workers with its context, and cloudpickle
# cannot pickle a function whose annotations hold type parameters of that syntax (module-level ones pickle by name).
P = ParamSpec("P")
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
    validating: Callable[..., T] = validate_call(config=ConfigDict(arbitrary_types_allowed=True))(function)
    return validating


def icefloe_flow(name: str) -> Callable[[Callable[P, R]], Flow[P, R]]:
    """Prefect's `flow` with the parameters checked by icefloe (`checked_parameters`)."""

    def decorate(function: Callable[P, R]) -> Flow[P, R]:
        return flow(name=name, validate_parameters=False)(checked_parameters(function))

    return decorate
