"""A rule given on the command line (`lsmguard allow`/`deny`), checked on its own before
anything is read or written: an error names the argument that caused it, never a
position in a policy file the user did not write."""
from __future__ import annotations

import re

from lsmguard.errors import UsageError
from lsmguard.policy.errors import Diagnostic, PolicyError
from lsmguard.policy.load import load_text
from lsmguard.state.local_rules import LOCAL_PORT_OPERATIONS, Request, new_policy, render, rule_body

_FIELD = re.compile(r"spec\.(?:rules\[0\]\.[a-z]+\.(?P<key>[a-z]+)|subjects\.(?P<subject>[a-z]+))\[(?P<index>\d+)\]")
_SUBJECT_OPTIONS = {"executables": "--exe", "cgroups": "--cgroup", "uids": "--uid", "gids": "--gid"}


def _given(req: Request) -> dict[str, tuple[str, list[str]]]:
    """Each list the rule's policy file holds -> (how the user gave it, the values as typed)."""
    targets = list(req.targets)
    if req.operation == "connect":
        unix = [t for t in targets if t.startswith(("/", "@"))]
        inet = [t for t in targets if not t.startswith(("/", "@"))]
        inet = [] if inet == ["any"] else inet       # as local_rules.rule_body writes them
        given = {"unix": ("argument", unix), "cidrs": ("argument", inet), "ports": ("--port", list(req.ports))}
    elif req.operation in LOCAL_PORT_OPERATIONS:
        given = {"ports": ("argument", targets)}
    else:
        given = {"paths": ("argument", targets), "access": ("--access", list(req.access))}
    for kind, option in _SUBJECT_OPTIONS.items():
        given[kind] = (option, [str(v) for v in getattr(req, kind)])
    return given


def _argument_error(diagnostic: Diagnostic, given: dict[str, tuple[str, list[str]]]) -> str | None:
    """`argument 'tmp/x' is not absolute: ...`, `--port 99999 is not a port ...`; None when the
    diagnostic is not about one value the user gave."""
    match = _FIELD.fullmatch(diagnostic.field)
    if match is None:
        return None
    how, values = given.get(match["key"] or match["subject"], ("", []))
    index = int(match["index"])
    if not how or index >= len(values):
        return None
    value = values[index]
    label = f"argument {value!r}" if how == "argument" else f"{how} {value}"
    message = diagnostic.message
    for shown in (repr(value), value):        # the message may start with the value itself
        if message.startswith(shown + " "):
            return f"{label} {message[len(shown) + 1:]}"
    return f"{label}: {message}"


def check(action: str, req: Request) -> None:
    """Raise UsageError naming each argument of `req` that cannot make a valid rule."""
    doc = new_policy("command-line", req)
    doc["spec"]["rules"].append({"id": f"{action}-{req.operation}-1", "action": action,
                                 req.operation: rule_body(req)})
    try:
        load_text(render(doc), "<command line>")
    except PolicyError as error:
        given = _given(req)
        problems = [d for d in error.diagnostics if d.severity == "error"]
        named = [_argument_error(d, given) for d in problems]
        lines = [f"{action}: {text}" for text in named if text is not None]
        lines += [f"{action}: {d.field}: {d.message}" for d, text in zip(problems, named, strict=True) if text is None]
        raise UsageError("\nlsmguard: ".join(lines)) from None
