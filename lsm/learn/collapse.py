"""Observed paths to path patterns: `dir/**` where a directory's observed children reach a
threshold or where a package owns the directory whole; exact paths otherwise.

A directory is never collapsed when the pattern would also cover a path that must stay
refused (a deny rule's object, a drift-refused file), nor above depth 2 (`/etc/**`,
`/usr/**` allow too much to be a suggestion), nor at all for a threshold of 0.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lsmguard.learn.packages import PackageDb, depth, package_trees
from lsmguard.policy.model import PathPattern

MIN_COLLAPSE_DEPTH = 2


@dataclass(frozen=True)
class Collapsed:
    pattern: PathPattern
    paths: frozenset[str]      # the observed paths it stands for
    why: str = ""              # "", "N entries observed", "package tzdata's tree"


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _overlaps(directory: str, protected: Iterable[PathPattern]) -> bool:
    """Would `directory/**` match anything a protected pattern matches?"""
    mine = PathPattern(directory, True)
    return any(mine.matches(p.base) or (p.recursive and p.matches(directory)) for p in protected)


def collapse(paths: Iterable[str], threshold: int, protected: Iterable[PathPattern] = (),
             packages: PackageDb | None = None) -> list[Collapsed]:
    """Patterns covering exactly the observed `paths` or more, none covering another."""
    observed = set(paths)
    protected = list(protected)
    groups: dict[str, set[str]] = {}      # directory collapsed -> observed paths below
    whys: dict[str, str] = {}
    if packages is not None:
        by_tree: dict[str, set[str]] = {}
        for path, tree in package_trees(observed, packages).items():
            by_tree.setdefault(tree, set()).add(path)
        for tree, below in by_tree.items():
            if len(below) >= 2 and not _overlaps(tree, protected):
                groups[tree] = below
                whys[tree] = "a package's own tree"
    if threshold > 0:
        _by_threshold(observed, threshold, protected, groups, whys)
    # a collapsed directory inside another one is the other one
    tops = [d for d in groups if not any(o != d and PathPattern(o, True).matches(d) for o in groups)]
    out = []
    covered: set[str] = set()
    for directory in sorted(tops):
        below = {p for p in observed if PathPattern(directory, True).matches(p)}
        covered |= below
        out.append(Collapsed(PathPattern(directory, True), frozenset(below), whys.get(directory, "")))
    out += [Collapsed(PathPattern(p, False), frozenset({p})) for p in sorted(observed - covered)]
    return sorted(out, key=lambda c: (c.pattern.base, c.pattern.recursive))


def _by_threshold(observed: set[str], threshold: int, protected: list[PathPattern], groups: dict[str, set[str]],
                  whys: dict[str, str]) -> None:
    """Bottom up: a directory with `threshold` distinct observed children (files, or
    directories with something observed below) becomes dir/**."""
    changed = True
    while changed:
        changed = False
        leaves = {p for p in observed if not any(PathPattern(d, True).matches(p) for d in groups)} | set(groups)
        children: dict[str, set[str]] = {}
        for leaf in leaves:
            node = leaf
            while node != "/":
                parent = _parent(node)
                children.setdefault(parent, set()).add(node)
                node = parent
        for directory in sorted(children, key=depth, reverse=True):
            if directory in groups or depth(directory) < MIN_COLLAPSE_DEPTH:
                continue
            if len(children[directory]) >= threshold and not _overlaps(directory, protected):
                groups[directory] = {p for p in observed if PathPattern(directory, True).matches(p)}
                whys[directory] = f"{len(children[directory])} entries seen in it, --collapse {threshold}"
                changed = True
                break
