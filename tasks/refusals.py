"""How a request the models refuse is worded: the parameter as the user named it, what is wrong, the value given.

pydantic's own text (its error count, its type codes, the names of its validators in a location, a link to its
site) is for the developers of a model; icefloe's users get one line, a problem after the other. The command and the
flows word every refusal of their parameters this way.
"""

import re

from pydantic import ValidationError
from pydantic_core import ErrorDetails

VALUE_ERROR = "Value error, "
"""pydantic's prefix to the message of a ValueError a validator raised: icefloe's own words follow it."""

_VALIDATOR = re.compile(r"^[\w-]+\[.*\]$")
"""A part of an error's location that names one of pydantic's validators or unions, not a field the user wrote
(`function-before[...]`, `tagged-union[...]`)."""


def validation_problems(
    error: ValidationError, names: dict[str, str] | None = None, tagged: bool = False, prefix: str = ""
) -> str:
    """pydantic's errors on one line: where (as the user named it, after `prefix`), what is wrong, what was given (a
    validator's own message, from a ValueError, names the value itself). For a tagged union (`tagged`), the first
    part of each location is the member pydantic tried, not a field the user wrote."""
    problems = []
    for problem in _most_specific(error.errors(include_url=False)):
        parts = [str(part) for part in problem["loc"] if not _VALIDATOR.match(str(part))]
        where = ".".join([prefix] * bool(prefix) + parts[1 if tagged else 0 :])
        where = (names or {}).get(where, where)
        message = problem["msg"].removeprefix(VALUE_ERROR)
        own = message != problem["msg"]
        given = f" (given: {problem['input']!r})" if problem["type"] != "missing" and where and not own else ""
        problems.append(f"{where + ': ' if where else ''}{message}{given}")
    return "; ".join(problems)


def _most_specific(problems: list[ErrorDetails]) -> list[ErrorDetails]:
    """Without what a union's other members said of a value one member took: where a parameter has errors from a
    member whose validator refuses the value whole (a Dataset's, refusing a source given as JSON), and others, the
    others say what is wrong."""
    whole = [p for p in problems if p["loc"] and _VALIDATOR.match(str(p["loc"][-1])) and p["type"] == "value_error"]
    rest = [p for p in problems if p not in whole]
    kept = [p for p in whole if not any(r["loc"][:1] == p["loc"][:1] for r in rest)]
    return [p for p in problems if p in rest or p in kept]
