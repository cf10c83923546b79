"""A source as Prefect's run form shows it: one set of fields for every kind, the kind chosen from a list.

Prefect's form shows a union of models as tabs, and picks the tab from the value by the keys it shares with each
model. The kinds of source share keys (`kind`, `variables`, `anonymous`, ...), and a tab left behind leaves its
defaults in the value: the form jumps back to another kind's tab as the user types (Prefect issues #18084 and
#18445; seen here on 3.9.1 with a Python function after NetCDF files). One object has no tabs to jump between: the
user picks a kind and fills its fields, each field's description naming the kinds it is for, and validation drops
what the form filled in for other kinds.
"""

import json
import logging
from typing import Any, get_args

from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema, to_jsonable_python

log = logging.getLogger(__name__)


def _kind(model: type[BaseModel]) -> str:
    return str(model.model_fields["kind"].default)


def _default(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields[name]
    return None if field.is_required() else to_jsonable_python(field.get_default(call_default_factory=True))


class OneForm:
    """Annotates a union of source models discriminated by `kind`: its JSON schema is one object with every kind's
    fields, and a value is validated as its kind's model once the other kinds' fields are dropped. The kinds are the
    union's members, read when pydantic builds the schema."""

    kinds: dict[str, type[BaseModel]]
    fields: dict[str, list[type[BaseModel]]]  # each field name, and the kinds that have it

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        self.kinds = {_kind(model): model for model in get_args(source)}
        self.fields = {}
        for model in self.kinds.values():
            for name in model.model_fields:
                self.fields.setdefault(name, []).append(model)
        return core_schema.no_info_before_validator_function(self.for_its_kind, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return self.json_schema()

    def for_its_kind(self, value: Any) -> Any:
        """The value without what belongs to other kinds only (the form fills in every field's default) and
        without fields left empty (None: each source field that takes it has it as default). A name no kind has
        stays, and is refused."""
        model = self.kinds.get(str(value.get("kind"))) if isinstance(value, dict) else None
        if model is None:
            return value
        kept = {}
        for name, field_value in value.items():
            if name in model.model_fields:
                if field_value is not None:
                    kept[name] = field_value
            elif name not in self.fields:
                kept[name] = field_value  # a typo: refused by the model, naming it
            elif field_value not in (None, *(_default(other, name) for other in self.fields[name])):
                kinds = " and ".join(_kind(other) for other in self.fields[name])
                log.warning("ignored %s=%r: a field of %s sources, not of %s", name, field_value, kinds, _kind(model))
        return kept

    def json_schema(self) -> JsonSchemaValue:
        properties: dict[str, dict[str, Any]] = {}
        required: list[dict[str, Any]] = []  # what each kind requires, checked where the API takes the run (the
        # form merges these `allOf` parts into the object it shows, which changes nothing it shows)
        for name, model in self.kinds.items():
            schema = model.model_json_schema()
            for field, prop in schema["properties"].items():
                if field != "kind":
                    assert "$ref" not in json.dumps(prop), f"{model.__name__}.{field}: a form field takes no $ref"
                    properties.setdefault(field, prop)
            if schema.get("required"):
                required.append(
                    {"if": {"properties": {"kind": {"const": name}}}, "then": {"required": schema["required"]}}
                )
        for name, prop in properties.items():
            models = self.fields[name]
            defaults = {json.dumps(_default(model, name)) for model in models}
            if len(defaults) > 1:
                prop["default"] = None  # each kind's own default, as None is dropped (the field takes None)
            described: dict[str, list[str]] = {}  # what the field is, and the kinds it is that for
            for model in models:
                field = model.model_fields[name]
                text = field.description or ""
                if field.is_required():
                    text = f"(required) {text}"
                elif len(defaults) > 1 and _default(model, name) is not None:
                    text = f"{text}; default: {json.dumps(_default(model, name))}"
                described.setdefault(text, []).append(_kind(model))
            prop["description"] = "; ".join(f"{', '.join(kinds)}: {text}" for text, kinds in described.items())
        names = ", ".join(f"{name} ({model.model_config.get('title')})" for name, model in self.kinds.items())
        kind = {
            "title": "Kind",
            "type": "string",
            "enum": list(self.kinds),
            "default": next(iter(self.kinds)),
            "description": f"What to read: {names}. Each field below names the kinds it is for",
        }
        return {
            "type": "object",
            "title": "Source",
            "properties": {"kind": kind, **properties},
            "required": ["kind"],
            "additionalProperties": False,
            "allOf": required,
        }
