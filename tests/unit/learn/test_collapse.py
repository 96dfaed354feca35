"""Observed paths to patterns: the collapse threshold, package-managed trees, and what must stay refused."""
from __future__ import annotations

from collections.abc import Iterable

from lsmguard.learn.collapse import collapse
from lsmguard.learn.packages import DpkgDb, package_trees
from lsmguard.policy.model import PathPattern


def patterns(paths: Iterable[str], threshold: int, **kw: object) -> list[str]:
    return [str(c.pattern) for c in collapse(paths, threshold, **kw)]  # type: ignore[arg-type]


STATIC = [f"/srv/app/static/f{i}.css" for i in range(5)]


def test_a_directory_collapses_when_its_observed_children_reach_the_threshold() -> None:
    assert patterns(STATIC, 5) == ["/srv/app/static/**"]
    assert patterns(STATIC, 6) == sorted(STATIC)
    assert patterns(STATIC, 0) == sorted(STATIC)          # 0: never by count


def test_subdirectories_count_as_one_child_each_and_collapse_upwards() -> None:
    paths = [f"/srv/app/d{d}/f{i}" for d in range(3) for i in range(3)]
    assert patterns(paths, 3) == ["/srv/app/**"]          # each d* collapses, then app has 3 children
    assert patterns(paths, 4) == sorted(paths)


def test_never_above_depth_two() -> None:
    assert patterns([f"/etc/f{i}" for i in range(20)], 2) == sorted(f"/etc/f{i}" for i in range(20))


def test_a_protected_path_below_keeps_the_directory_exact() -> None:
    protected = [PathPattern("/srv/app/static/secret", False)]
    assert patterns(STATIC, 5, protected=protected) == sorted(STATIC)
    # a recursive deny above the directory protects it too
    assert patterns(STATIC, 5, protected=[PathPattern("/srv", True)]) == sorted(STATIC)


class FakeDb:
    """Two packages: tzdata owns /usr/share/zoneinfo whole; /usr/share/doc is shared."""
    FILES = {"tzdata": ["/usr/share/zoneinfo", "/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/Europe",
                        "/usr/share/zoneinfo/Europe/Paris", "/usr/share/doc/tzdata/copyright"],
             "bash": ["/usr/share/doc/bash/copyright"]}

    def owners(self, directories: Iterable[str]) -> dict[str, frozenset[str]]:
        return {d: frozenset(p for p, files in self.FILES.items() if any(f.startswith(d + "/") for f in files))
                for d in directories}

    def lists(self, directory: str, package: str) -> bool:
        return directory in self.FILES[package]


def test_a_package_owned_tree_is_allowed_whole_once_two_of_its_files_were_seen() -> None:
    seen = ["/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/Europe/Paris", "/usr/share/doc/bash/copyright",
            "/usr/share/doc/tzdata/copyright"]
    assert patterns(seen, 0, packages=FakeDb()) == [
        "/usr/share/doc/bash/copyright", "/usr/share/doc/tzdata/copyright", "/usr/share/zoneinfo/**"]
    assert patterns(seen[:1], 0, packages=FakeDb()) == ["/usr/share/zoneinfo/UTC"]   # one file: exact


def test_this_hosts_dpkg_database_names_package_trees() -> None:
    db = DpkgDb()
    trees = package_trees(["/usr/share/zoneinfo/UTC", "/usr/bin/python3"], db)
    assert trees.get("/usr/share/zoneinfo/UTC") == "/usr/share/zoneinfo"     # tzdata's
    assert "/usr/bin/python3" not in trees                                  # /usr/bin is everyone's
