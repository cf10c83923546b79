"""Python functions named in JSON as `package.module:function` (sources and validation hooks)."""

import importlib
import operator
from collections.abc import Callable
from typing import Any

from tasks.errors import InvalidRequestError

CALLABLE_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"


def import_function(reference: str, role: str) -> Callable[..., Any]:
    """The function `reference` names, or a clear error saying which `role` could not be imported and why."""
    module_name, _, name = reference.partition(":")
    try:
        function = operator.attrgetter(name)(importlib.import_module(module_name))
    except (ImportError, AttributeError, ValueError) as e:
        raise InvalidRequestError(
            f"{role} {reference!r} cannot be imported ({type(e).__name__}: {e}); "
            "name it as package.module:function, installed where the flow runs"
        ) from e
    if not callable(function):
        raise InvalidRequestError(f"{role} {reference!r} is a {type(function).__name__}, not a function")
    return function
