"""The kernel's lookups by file identity (entries.identity_tables over the host's mount
table) find what the rules say of a path exactly as the name-level tables do, whatever file
systems are mounted where; and a bind mount's view of a file finds the file's rules."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lsmguard.kernel.entries import identity_tables
from lsmguard.kernel.mounts import Mount, MountTable
from lsmguard.policy.compile import ExceptedPattern, Masks, merge_path_table, permitting, restricting
from lsmguard.policy.model import Action, PathPattern
from tests.unit.policy.strategies import path_exceptions, paths, patterns

ROOT = Mount(1, 0, 1, "/", "/")
# (mount point, device, root): file systems that show no file twice
CANDIDATES = [("/a", 2, "/"), ("/a/b", 3, "/"), ("/ab", 4, "/x"), ("/b", 5, "/")]


def mount_table(mounted: list[tuple[str, int, str]]) -> MountTable:
    """ROOT and `mounted`, each on the mount that shows its mount point's parent."""
    ids = {point: 10 + i for i, (point, _, _) in enumerate(mounted)}
    return MountTable([ROOT] + [Mount(ids[point], ids.get(point.rsplit("/", 1)[0], ROOT.id), dev, root, point)
                                for point, dev, root in mounted])


def tables(rules: list[tuple[PathPattern, int]]) -> dict[PathPattern, Masks]:
    out: dict[PathPattern, Masks] = {}
    for index, (pattern, policy) in enumerate(rules):
        out.setdefault(pattern, Masks()).add(policy, (Action.DENY, Action.ALLOW, Action.AUDIT)[index % 3], index)
    return out


def bits(masks: Masks | None) -> tuple[int, int, int]:
    return (masks.deny, masks.allow, masks.audit) if masks else (0, 0, 0)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(patterns, st.integers(0, 3)), max_size=6),
       st.lists(st.sampled_from(CANDIDATES), unique=True), st.lists(paths, min_size=1, max_size=5))
def test_identity_lookups_find_what_name_lookups_find(rules, mounted, requests) -> None:
    mounts = mount_table(mounted)
    raw = tables(rules)
    by_name = merge_path_table(raw)
    by_identity = identity_tables(raw, mounts)
    for path in requests:
        dev, fs_path = mounts.identity_of(path)
        found = by_identity[dev].lookup(fs_path) if dev in by_identity else None
        assert bits(found) == bits(by_name.lookup(path)), (path, dev, fs_path, mounted)


def test_a_bind_mount_shows_the_same_file_and_finds_its_rules() -> None:
    # /srv/view is /etc of the root file system, bind-mounted
    mounts = MountTable([ROOT, Mount(2, 1, 1, "/etc", "/srv/view")])
    raw = tables([(PathPattern("/etc/shadow", False), 0), (PathPattern("/etc/ssh", True), 1)])
    by_identity = identity_tables(raw, mounts)
    for view, name in (("/srv/view/shadow", "/etc/shadow"), ("/srv/view/ssh/key", "/etc/ssh/key")):
        dev, fs_path = mounts.identity_of(view)
        assert (dev, fs_path) == mounts.identity_of(name)
        assert bits(by_identity[dev].lookup(fs_path)) == bits(merge_path_table(raw).lookup(name)) != (0, 0, 0)


@st.composite
def excepted_rules(draw: st.DrawFn) -> dict[ExceptedPattern, Masks]:
    out: dict[ExceptedPattern, Masks] = {}
    for index in range(draw(st.integers(0, 3))):
        pattern = PathPattern(draw(paths), True)
        exceptions = draw(path_exceptions((pattern,)))
        if exceptions:
            key = ExceptedPattern(pattern, tuple(sorted(exceptions)))
            out.setdefault(key, Masks()).add(draw(st.integers(0, 3)), draw(st.sampled_from(list(Action))), index)
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(patterns, st.integers(0, 3)), max_size=4), excepted_rules(),
       st.lists(st.sampled_from(CANDIDATES), unique=True), st.lists(paths, min_size=1, max_size=5))
def test_exceptions_hold_in_their_file_system_and_not_in_those_mounted_inside(rules, excepted, mounted,
                                                                              requests) -> None:
    # An exception on a file system mounted inside its rule's path is that file system's. A file
    # system mounted inside an exception shows other files: a deny or audit rule keeps them (fail
    # closed); an allow rule's exception reaches them, as its path does.
    mounts = mount_table(mounted)
    raw = tables(rules)
    by_identity = identity_tables(raw, mounts, excepted)
    for path in requests:
        point = mounts.visible(path).point
        plain = {p: m.copy() for p, m in raw.items()}
        reaching: dict[ExceptedPattern, Masks] = {}
        for e, both in excepted.items():
            kept = tuple(x for x in e.exceptions if not _strictly_below(point, x.base))
            for masks, exceptions in ((restricting(both), kept), (permitting(both), e.exceptions)):
                if not masks.rules:
                    continue
                if exceptions:
                    reaching.setdefault(ExceptedPattern(e.pattern, exceptions), Masks()).merge(masks)
                else:
                    plain.setdefault(e.pattern, Masks()).merge(masks)
        by_name = merge_path_table(plain, reaching)
        dev, fs_path = mounts.identity_of(path)
        found = by_identity[dev].lookup(fs_path) if dev in by_identity else None
        assert bits(found) == bits(by_name.lookup(path)), (path, dev, fs_path, mounted)


def _strictly_below(path: str, directory: str) -> bool:
    return path != directory and (directory == "/" or path.startswith(directory + "/"))


def test_a_bind_mount_into_an_exception_does_not_take_the_rule_off_its_source() -> None:
    # deny /etc/app/** except /etc/app/tmp/**, then `mount --bind /etc/app/conf /etc/app/tmp`
    mounts = MountTable([ROOT, Mount(2, 1, 1, "/etc/app/conf", "/etc/app/tmp")])
    masks = Masks()
    masks.add(0, Action.DENY, 0)
    excepted = {ExceptedPattern(PathPattern("/etc/app", True), (PathPattern("/etc/app/tmp", True),)): masks}
    by_identity = identity_tables({}, mounts, excepted)
    for name in ("/etc/app/conf/x", "/etc/app/tmp/x"):     # one file, two names
        dev, fs_path = mounts.identity_of(name)
        assert bits(by_identity[dev].lookup(fs_path)) == (1, 0, 0), name
    # without the bind mount, the exception holds
    by_identity = identity_tables({}, MountTable([ROOT]), excepted)
    assert bits(by_identity[1].lookup("/etc/app/tmp/x")) == (0, 0, 0)
    assert bits(by_identity[1].lookup("/etc/app/conf/x")) == (1, 0, 0)


def test_a_file_system_mounted_inside_and_outside_an_exception_stays_under_the_rule() -> None:
    # deny /srv/** except /srv/upload/**; one disk at /srv/upload/disk and at /srv/data
    mounts = MountTable([ROOT, Mount(2, 1, 7, "/", "/srv/upload/disk"), Mount(3, 1, 7, "/", "/srv/data")])
    masks = Masks()
    masks.add(0, Action.DENY, 0)
    excepted = {ExceptedPattern(PathPattern("/srv", True), (PathPattern("/srv/upload", True),)): masks}
    by_identity = identity_tables({}, mounts, excepted)
    found = {name: bits(by_identity[dev].lookup(fs_path)) if dev in by_identity else (0, 0, 0)
             for name in ("/srv/data/x", "/srv/upload/disk/x", "/srv/upload/y", "/srv/z")
             for dev, fs_path in [mounts.identity_of(name)]}
    assert found == {"/srv/data/x": (1, 0, 0), "/srv/upload/disk/x": (1, 0, 0), "/srv/upload/y": (0, 0, 0),
                     "/srv/z": (1, 0, 0)}
