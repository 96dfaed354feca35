"""`lsmguard suggest --interactive`: each suggested rule offered in turn, as aa-logprof does:
accept, refuse, widen to the parent directory's `/**`, or edit its objects. Accepting
every rule gives what the non-interactive command writes."""
from __future__ import annotations

import sys
from collections.abc import Callable

from lsmguard.errors import LsmguardError
from lsmguard.learn.render import Header, render
from lsmguard.learn.suggest import SuggestedRule
from lsmguard.policy.errors import PolicyError
from lsmguard.policy.load import load_text

PROMPT = "(a)ccept  (r)efuse  (w)iden to parent/**  (e)dit  accept (A)ll the rest  (q)uit: "
PATH_KINDS = ("exec", "read", "write", "chmod", "unix")


class Quit(LsmguardError):
    """The user quit: nothing is written."""


def widened(obj: str) -> str | None:
    """The parent directory's `/**` of a path or pattern; None at the top (never `/**`)."""
    base = obj.removesuffix("/**")
    if not base.startswith("/"):
        return None
    parent = base.rsplit("/", 1)[0]
    return f"{parent}/**" if parent else None


def problems(rule: SuggestedRule) -> str:
    """What is wrong with a rule, as `lsmguard check` says it (file:line:column), or ""."""
    text = render(Header("edit", "audit", {}, [rule.operation.value]), [rule], [])
    try:
        load_text(text, "<edit>")
    except PolicyError as error:
        return str(error)
    return ""


def review(rules: list[SuggestedRule], ask: Callable[[str], str] = input,
           say: Callable[[str], None] = lambda text: print(text, file=sys.stderr)) -> list[SuggestedRule]:
    kept: list[SuggestedRule] = []
    for index, rule in enumerate(rules):
        while True:
            say(f"\n[{index + 1}/{len(rules)}] allow {rule.describe()}\n    {rule.seen.describe()}"
                + (f"; {rule.note}" if rule.note else ""))
            try:
                answer = ask(PROMPT).strip()
            except EOFError:
                raise Quit("standard input ended: nothing written") from None
            if answer in ("a", ""):
                kept.append(rule)
                break
            if answer == "A":
                return kept + rules[index:]
            if answer == "r":
                break
            if answer == "q":
                raise Quit("quit: nothing written")
            if answer == "w":
                _widen(rule, say)
            elif answer == "e":
                _edit(rule, ask, say)
            else:
                say(f"{answer!r}: answer a, r, w, e, A or q")
    return kept


def _widen(rule: SuggestedRule, say: Callable[[str], None]) -> None:
    if rule.kind not in PATH_KINDS or not all(widened(o) for o in rule.objects):
        say("only a path rule below the top directory can be widened; edit it instead")
        return
    rule.objects = sorted({w for o in rule.objects if (w := widened(o))})
    rule.note = "widened by hand"


def _edit(rule: SuggestedRule, ask: Callable[[str], str], say: Callable[[str], None]) -> None:
    before = (list(rule.objects), list(rule.ports))
    if rule.kind in PATH_KINDS or rule.kind == "connect":
        what = "paths" if rule.kind in PATH_KINDS else "addresses or CIDRs"
        text = ask(f"{what}, comma-separated [{', '.join(rule.objects)}]: ").strip()
        if text:
            rule.objects = [t.strip() for t in text.split(",") if t.strip()]
    if rule.kind in ("connect", "bind", "listen"):
        text = ask(f"ports, comma-separated [{', '.join(map(str, rule.ports))}]: ").strip()
        if text:
            try:
                rule.ports = [int(t) for t in text.split(",") if t.strip()]
            except ValueError:
                say(f"{text!r}: ports are numbers; unchanged")
                rule.objects, rule.ports = before
                return
    trouble = problems(rule)
    if trouble:
        say(f"not valid, unchanged:\n{trouble}")
        rule.objects, rule.ports = before
    else:
        rule.note = "edited by hand"
