"""The published JSON Schema, and its errors turned into positioned diagnostics."""
from __future__ import annotations

import difflib
import functools
import json
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsmguard.policy import progress
from lsmguard.policy.errors import Diagnostic
from lsmguard.policy.source import Document, FieldPath

if TYPE_CHECKING:
    import jsonschema

SCHEMA_NAME = "lsmguard.schema.json"
# Each `pattern` of the schema in words: a message never shows a regular expression
# (tests/unit/policy/test_errors.py checks that every pattern of the schema is here).
PATTERN_WORDS = {
    "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$":
        "is not a policy name: 1 to 63 lower-case letters, digits and '-', starting and ending with a letter "
        "or digit (web-server)",
    "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$":
        "is not a rule id: 1 to 63 letters, digits, '_', '.' and '-', starting with a letter or digit "
        "(no-tmp-exec)",
    "^/": "is not absolute: paths start with /",
    "^[0-9]+-[0-9]+$": "is not a port range 'low-high'",
    "^[A-Za-z_][A-Za-z0-9_.-]*[$]?$":
        "is not a user or group name (letters, digits, '_', '.', '-'; as useradd and groupadd take them)",
}
TYPE_NAMES = {"string": "a string", "integer": "an integer", "array": "a list", "object": "a mapping",
              "boolean": "true or false", "number": "a number", "null": "nothing"}


def schema_path() -> Path:
    override = os.environ.get("LSMGUARD_SCHEMA")
    return Path(override) if override else Path(str(resources.files("lsmguard") / "data" / SCHEMA_NAME))


@functools.cache
def validator() -> jsonschema.Draft202012Validator:
    # Imported here, not at the top: it is half of the CLI's start-up, and
    # status, audit, list and unload never validate a policy.
    # The schema itself is checked against its metaschema by tests/unit/policy/test_load.py,
    # not at each start (a fifth of the validator's start-up).
    return _strict(json.loads(schema_path().read_text()))


def _strict(schema: Any) -> jsonschema.Draft202012Validator:
    """A validator whose "integer" is a whole number written as one: JSON Schema also takes
    1000.0, which no uid, gid or port is, and which the parser would only meet later."""
    import jsonschema
    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=checker)(schema)


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


def _message(error: jsonschema.ValidationError, path: FieldPath) -> tuple[str, bool]:
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
    if v == "additionalProperties":   # validate() makes one message per unknown key
        return "unknown field", True
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
        return f"{value!r} {PATTERN_WORDS.get(str(wanted), 'is not in the form this field takes')}", False
    if v == "maxLength":
        return f"is longer than {wanted} characters", False
    for kind, name, what in (("uids", "uid", "user"), ("gids", "gid", "group")):
        if v == "anyOf" and kind in path:
            if isinstance(value, int) and not isinstance(value, bool):
                return f"{value} is not a {name} (0-4294967294)", False
            return f"{value!r} is not a {name} (0-4294967294), a range 'low-high' or a {what} name", False
    if v == "anyOf" and "ports" in path:
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value} is not a port (1-65535)", False
        return f"{value!r} is not a port (1-65535) or a range 'low-high'", False
    return error.message, False


def unknown_keys(error: jsonschema.ValidationError) -> list[str]:
    """The keys of a mapping the schema does not allow, in the order they were written."""
    allowed = _schema_of(error).get("properties", {})
    instance: Any = error.instance
    return [str(key) for key in instance if key not in allowed]


def unknown_key_message(key: str, allowed: list[str], *, operation: bool = False) -> str:
    """`unknown field 'mod'; did you mean 'mode'? (allowed: ...)`"""
    meant = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    what = "unknown operation or field" if operation else "unknown field"
    return f"{what} '{key}'" + (f"; did you mean '{meant[0]}'?" if meant else "") + \
        f" (allowed: {', '.join(allowed)})"


@functools.cache
def rule_validator() -> jsonschema.Draft202012Validator | None:
    """The schema of one rule, when spec.rules constrains nothing but its items (and has no
    $ref to resolve); None otherwise: documents are then validated whole."""
    schema: Any = validator().schema
    rules = schema["properties"]["spec"]["properties"]["rules"]
    if set(rules) - {"type", "items", "description"} or "$ref" in json.dumps(rules):
        return None
    return _strict(rules["items"])


def _errors(data: Any) -> Iterator[tuple[FieldPath, jsonschema.ValidationError]]:
    """Every schema error with the full path of its value. The rules are validated one by
    one (the same errors as validating the document whole) so that a large set reports how
    far it has got."""
    spec = data.get("spec") if isinstance(data, dict) else None
    rules = spec.get("rules") if isinstance(spec, dict) else None
    one = rule_validator()
    if not isinstance(spec, dict) or not isinstance(rules, list) or one is None:
        for error in validator().iter_errors(data):
            yield tuple(error.absolute_path), error
        return
    for error in validator().iter_errors({**data, "spec": {**spec, "rules": []}}):
        yield tuple(error.absolute_path), error
    for i, rule in enumerate(rules):
        if i % progress.STEP == 0:
            progress.report("validating", i, len(rules))
        for error in one.iter_errors(rule):
            yield ("spec", "rules", i, *error.absolute_path), error


def validate(doc: Document) -> list[Diagnostic]:
    diagnostics = []
    for path, error in _errors(doc.data):
        if error.validator == "additionalProperties":
            allowed = sorted(_schema_of(error).get("properties", {}))
            operation = len(path) == 3 and path[:2] == ("spec", "rules")
            for key in unknown_keys(error):
                diagnostics.append(doc.diagnostic(path + (key,), unknown_key_message(key, allowed,
                                                                                     operation=operation), key=True))
            continue
        message, about_key = _message(error, path)
        diagnostics.append(doc.diagnostic(path, message, key=about_key))
    return diagnostics
