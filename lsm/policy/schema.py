"""The published JSON Schema, and its errors turned into positioned diagnostics."""
from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsmguard.policy.errors import Diagnostic
from lsmguard.policy.source import Document

if TYPE_CHECKING:
    import jsonschema

SCHEMA_NAME = "lsmguard.schema.json"
TYPE_NAMES = {"string": "a string", "integer": "an integer", "array": "a list", "object": "a mapping",
              "boolean": "true or false", "number": "a number", "null": "nothing"}


def schema_path() -> Path:
    override = os.environ.get("LSMGUARD_SCHEMA")
    return Path(override) if override else Path(str(resources.files("lsmguard") / "data" / SCHEMA_NAME))


@functools.cache
def validator() -> jsonschema.Draft202012Validator:
    # Imported here, not at the top: it is half of the CLI's start-up, and
    # status, audit, list and unload never validate a policy.
    import jsonschema
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    for t, name in (((int, float), "a number"), (str, "a string"), (list, "a list"), (dict, "a mapping")):
        if isinstance(value, t):
            return name
    return "nothing" if value is None else type(value).__name__


def _schema_of(error: jsonschema.ValidationError) -> dict[str, Any]:
    """The (sub)schema that failed; {} for a boolean schema."""
    return error.schema if isinstance(error.schema, dict) else {}


def _message(error: jsonschema.ValidationError) -> tuple[str, bool]:
    """A readable message, and whether it is about a key rather than a value."""
    v = error.validator
    value: Any = error.instance           # the JSON value that failed
    schema = _schema_of(error)
    wanted: Any = error.validator_value   # the schema's bound, list, pattern or type(s)
    custom = schema.get("x-lsmguard-error")
    if schema.get("x-lsmguard-check") == "path" and isinstance(value, str):
        from lsmguard.policy.parse import path_problem
        problem = path_problem(value)
        if problem:
            return problem, False
    if custom and v in ("minimum", "maximum", "type"):
        return f"{value!r} {custom}", False
    if v == "required":
        missing = error.message.split("'")[1]
        return f"missing required field '{missing}'", False
    if v == "additionalProperties":
        allowed = ", ".join(sorted(schema.get("properties", {})))
        extra = sorted(set(value) - set(schema.get("properties", {})))
        return f"unknown field '{extra[0]}' (allowed: {allowed})", True
    if v == "enum":
        return f"{value!r} is not one of {', '.join(map(str, wanted))}", False
    if v == "const":
        return f"{value!r} must be {wanted!r}", False
    if v == "type":
        names = " or ".join(TYPE_NAMES.get(t, str(t)) for t in (wanted if isinstance(wanted, list) else [wanted]))
        return f"expected {names}, got {_describe(value)}", False
    if v == "minItems":
        return "must not be empty", False
    if v == "minProperties":
        return "must not be empty", False
    if v == "uniqueItems":
        return "has duplicate entries", False
    if v == "pattern":
        return f"{value!r} does not match {wanted}", False
    if v == "maxLength":
        return f"is longer than {wanted} characters", False
    if v == "anyOf" and "ports" in error.absolute_path:
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value} is not a port (1-65535)", False
        return f"{value!r} is not a port (1-65535) or a range 'low-high'", False
    return error.message, False


def _extra_key_path(error: jsonschema.ValidationError) -> tuple[str | int, ...]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        instance: Any = error.instance
        extra = sorted(set(instance) - set(_schema_of(error).get("properties", {})))
        if extra:
            path += (extra[0],)
    elif error.validator == "required":
        pass
    return path


def validate(doc: Document) -> list[Diagnostic]:
    diagnostics = []
    for error in validator().iter_errors(doc.data):
        message, about_key = _message(error)
        path = _extra_key_path(error)
        if (error.validator == "additionalProperties" and len(path) == 4
                and path[:2] == ("spec", "rules")):
            message = message.replace("unknown field", "unknown operation or field")
        diagnostics.append(doc.diagnostic(path, message, key=about_key))
    return diagnostics
