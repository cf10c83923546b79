"""pydantic's private API: a request model's own `__init__` that pydantic does not take for a custom one.

A request model a user builds with a value it refuses raises icefloe's refusal (`InvalidRequestError`, a ValueError
as pydantic's is, worded by `tasks/refusals.py`). pydantic would call a model's own `__init__` for every nested model
it validates as well, and wrap what it raises; marked as its base `__init__` (`__pydantic_base_init__`), it runs only
where a model is built by name, and the validation of a flow's parameters or of the command's `model_validate` keeps
pydantic's located errors for their own wording (tests/tasks/test_internals.py holds both).
"""

from typing import Any

from pydantic import BaseModel, ValidationError

from tasks.errors import InvalidRequestError
from tasks.refusals import validation_problems


class Request(BaseModel):
    """A model of what a user asks for."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise InvalidRequestError(f"{type(self).__name__}: {validation_problems(e)}") from None

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]
