"""Compiled policies -> map entries: the encoding the kernel programs read."""
from __future__ import annotations

import ipaddress
import os
import struct

from lsmguard import abi
from lsmguard.kernel import entries, lineage
from lsmguard.kernel.lineage import ExeIds
from lsmguard.loader.binding import ffi
from lsmguard.policy.compile import Slot, compile_policies
from lsmguard.policy.load import load_text
from lsmguard.policy.model import PathPattern

HASH_KEY = (1, 2)


def compiled(spec: str, name: str = "p"):
    text = f"apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n{spec}"
    return compile_policies(load_text(text, "p.yaml").policies)


def cast(ctype: str, raw: bytes):
    return ffi.from_buffer(f"{ctype} *", raw)   # keeps `raw` alive, unlike cast(from_buffer(raw))


def test_every_key_carries_the_generation() -> None:
    c = compiled("  mode: enforce\n  subjects: {uids: [33]}\n  rules:\n"
                 "    - {id: a, action: deny, chmod: {paths: [/etc/**]}}\n"
                 "    - {id: b, action: deny, connect: {cidrs: [10.0.0.0/8], ports: [5432]}}\n")
    for generation in (0, 1):
        out = entries.encode(c, HASH_KEY, generation, ExeIds())
        for name, items in out.by_map.items():
            assert items, name
            assert {abi.key_generation(entries.GENERATION_KEYS[name], key) for key, _ in items} == {generation}, name


def test_inet_networks_point_at_their_sorted_port_intervals() -> None:
    c = compiled("  mode: enforce\n  rules:\n"
                 "    - {id: db, action: deny, connect: {cidrs: [10.0.0.0/8], ports: [5432, \"6000-6010\"], protocol: tcp}}\n"
                 "    - {id: v6, action: audit, connect: {cidrs: [\"2001:db8::/32\"], protocol: udp}}\n")
    out = entries.encode(c, HASH_KEY, 1, ExeIds())
    intervals = [cast("struct lg_port_interval", v) for _, v in out.by_map["lg_port_intervals"]]
    networks = {}
    for key, value in out.by_map["lg_inet_networks"]:
        k, v = cast("struct lg_inet_key", key), cast("struct lg_inet_value", value)
        networks[(k.slot, k.family, k.prefixlen - entries.INET_KEY_HEADER_BITS)] = [
            (intervals[i].low, intervals[i].high) for i in range(v.first, v.first + v.count)]
    assert networks[(abi.Slot.TCP, abi.Family.INET, 8)] == [(5432, 5432), (6000, 6010)]
    assert networks[(abi.Slot.UDP, abi.Family.INET6, 32)] == [(0, 65535)]   # no ports: every port, 0 too (ICMP, raw, L2TP)
    assert (abi.Slot.UDP, abi.Family.INET, 8) not in networks   # tcp only


def test_inet_key_holds_the_network_address() -> None:
    key = cast("struct lg_inet_key", entries.inet_key(0, entries.InetSlot.TCP, ipaddress.ip_network("192.0.2.0/24")))
    assert bytes(key.addr)[:4] == bytes([192, 0, 2, 0])
    assert key.prefixlen == entries.INET_KEY_HEADER_BITS + 24


def test_policy_set_masks() -> None:
    c = compile_policies([
        *load_text("apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: web}\nspec:\n  mode: enforce\n"
                   "  default: deny\n  subjects: {executables: [/usr/sbin/nginx], uids: [33]}\n"
                   "  rules: [{id: db, action: allow, connect: {cidrs: [10.0.0.0/8], ports: [5432]}}]\n"
                   "---\napiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {name: tmp}\nspec:\n  mode: audit\n"
                   "  rules: [{id: x, action: deny, exec: {paths: [/tmp/**]}}]\n", "p.yaml").policies])
    nginx = PathPattern("/usr/sbin/nginx", False)
    raw = entries.policy_set(c, ExeIds(naming={nginx: 5}))
    s = cast("struct lg_policy_set", raw)
    assert (s.policies, s.enforce, s.with_subjects) == (0b11, 0b01, 0b01)
    assert (s.unconstrained_exe, s.unconstrained_cgroup, s.unconstrained_uid) == (0, 0b01, 0)
    assert s.exe_policies[5] == 0b01 and sum(s.exe_policies) == 1
    assert [s.default_deny[slot] for slot in (abi.Slot.TCP, abi.Slot.UDP, abi.Slot.UNIX, abi.Slot.EXEC)] == [1, 1, 1, 0]
    # a path the kernel cannot resolve is refused by policies that could refuse in that slot
    assert s.unresolved_refuse[abi.Slot.EXEC] == 0b10
    assert s.unresolved_refuse[abi.Slot.UNIX] == 0b01
    assert s.unresolved_refuse[abi.Slot.CHMOD] == 0


def test_the_seeding_table_carries_subject_ids_and_never_an_id_an_except_reads() -> None:
    """Running processes are given ids by the names /proc shows, which another mount namespace
    can make say anything: an id that exempts is only ever given by the kernel, at an exec. A
    pattern both named and excepted has an id of each role, and only the naming one is seeded."""
    c = compiled("  mode: enforce\n  subjects: {executables: [/opt/app/**, /usr/bin/tool], "
                 "except: {executables: [/usr/sbin/sshd, /usr/bin/tool]}}\n"
                 "  rules: [{id: a, action: deny, chmod: {paths: [/etc/**]}}]\n")
    app, tool, sshd = PathPattern("/opt/app", True), PathPattern("/usr/bin/tool", False), PathPattern("/usr/sbin/sshd", False)
    ids = ExeIds(naming={app: 3, tool: 7}, excepting={sshd: 9, tool: 11})
    table = entries.seeding_table(ids)
    assert table.lookup("/opt/app/bin/x").allow == 1 << 3
    assert table.lookup("/usr/bin/tool").allow == 1 << 7
    assert table.lookup("/usr/bin/other") is None
    assert table.lookup("/usr/sbin/sshd") is None
    s = cast("struct lg_policy_set", entries.policy_set(c, ids))
    assert s.exe_policies[3] == s.exe_policies[7] == 1 and sum(s.exe_policies) == 2
    assert s.exe_excluding[9] == s.exe_excluding[11] == 1 and sum(s.exe_excluding) == 2
    # an exec the kernel sees adds both of a pattern's ids
    exe_entries = {p: m.allow for p, m in entries.bit_table({p: ids.bits(p) for p in ids.patterns()}).exact.items()}
    assert exe_entries["/usr/bin/tool"] == (1 << 7) | (1 << 11) and exe_entries["/usr/sbin/sshd"] == 1 << 9


def test_rule_identities_name_every_rule_and_the_specials() -> None:
    c = compiled("  mode: enforce\n  rules:\n    - {id: a, action: deny, chmod: {paths: [/x]}}\n"
                 "    - {id: b, action: deny, chmod: {paths: [/y]}}\n", name="pol")
    out = dict(entries.encode(c, HASH_KEY, 0, ExeIds()).by_map["lg_rule_identities"])
    expected = {entries.hits.hit_key(i, 0): entries.hits.identity(HASH_KEY, "pol", rule)
                for i, rule in ((0, "a"), (1, "b"), (abi.RULE_INDEX_DEFAULT, ""), (abi.RULE_INDEX_UNATTRIBUTED, "?"))}
    assert {k: struct.unpack("=Q", v)[0] for k, v in out.items()} == expected


def test_exact_deny_and_audit_paths_of_existing_files_get_inode_entries(tmp_path) -> None:
    from lsmguard.kernel import inodes
    secret, link, absent = tmp_path / "secret", tmp_path / "elsewhere", tmp_path / "absent"
    secret.write_text("x")
    os.link(secret, link)   # made before the set is applied: one file, two names
    (tmp_path / "symlink").symlink_to(secret)
    c = compiled("  mode: enforce\n  rules:\n"
                 f"    - {{id: s, action: deny, open: {{paths: [{secret}, {absent}, {tmp_path}/symlink]}}}}\n"
                 f"    - {{id: t, action: deny, open: {{paths: [{tmp_path}/**]}}}}\n"
                 f"    - {{id: a, action: allow, exec: {{paths: [{secret}]}}}}\n"
                 f"    - {{id: c, action: audit, chmod: {{paths: [{link}]}}}}\n")
    bound = inodes.bind(c)
    st = os.stat(secret)
    inode = inodes.Inode(os.major(st.st_dev) << 20 | os.minor(st.st_dev), st.st_ino)
    # absent files, symbolic links, recursive patterns and allow rules bind nothing
    assert {slot.value: list(table) for slot, table in bound.items()} == {
        "open-read": [inode], "open-write": [inode], "chmod": [inode]}
    assert bound[Slot.OPEN_READ][inode].deny == 1 and bound[Slot.OPEN_READ][inode].allow == 0
    assert bound[Slot.CHMOD][inode].audit == 1
    out = entries.encode(c, HASH_KEY, 1, ExeIds(), bound)
    keys = [struct.unpack_from("=QIBBBB", key) for key, _ in out.by_map["lg_path_entries"]]
    assert (st.st_ino, inode.dev, abi.Slot.CHMOD, abi.Match.INODE, 1, 0) in keys
    assert cast("struct lg_policy_set", out.policy_set).bound_inodes == 3


def test_each_device_with_entries_has_its_summary_and_an_inode_entry_marks_its_own() -> None:
    from lsmguard.kernel.inodes import Inode
    from lsmguard.kernel.mounts import Mount, MountTable
    root, other, elsewhere = 8 << 20 | 1, 8 << 20 | 2, 0x2A
    mounts = MountTable([Mount(1, 0, root, "/", "/"), Mount(2, 1, other, "/", "/srv")])
    c = compiled("  mode: enforce\n  rules:\n"
                 "    - {id: a, action: deny, chmod: {paths: [/etc/passwd, /srv/data/**]}}\n")
    bound = {Slot.CHMOD: {Inode(elsewhere, 7): c.bindable[Slot.CHMOD]["/etc/passwd"]}}
    out = entries.encode(c, HASH_KEY, 1, ExeIds(), bound, None, mounts)
    summaries = {cast("struct lg_device_summary_key", k).dev: abi.PathSummary.unpack(v)
                 for k, v in out.by_map["lg_device_summaries"]}
    assert all(cast("struct lg_device_summary_key", k).generation == 1 for k, _ in out.by_map["lg_device_summaries"])
    assert set(summaries) == {root, other, elsewhere}
    assert summaries[root].admits(abi.Slot.CHMOD, False, b"/etc/passwd")
    assert not summaries[root].admits(abi.Slot.CHMOD, True, b"/data")
    assert summaries[other].admits(abi.Slot.CHMOD, True, b"/data")
    assert not summaries[other].admits(abi.Slot.CHMOD, False, b"/etc/passwd")
    # the bound file's device: its slot has entries (the kernel walks to look the inode up), no name is admitted
    marked = summaries[elsewhere].slots[abi.Slot.CHMOD]
    assert marked[0] and not any(marked[1:])


def test_drift_masks_baselines_and_identities() -> None:
    docs = load_text("\n---\n".join(
        f"apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n  mode: enforce\n{drift}"
        "  rules: []\n" for name, drift in (("plain", ""), ("deny", "  drift: deny\n"), ("audit", "  drift: audit\n"))),
        "t.yaml").policies
    c = compile_policies(docs)
    assert (c.drift_deny, c.drift_audit) == (0b010, 0b100)
    since = [entries.DriftBaseline(0, 0), entries.DriftBaseline(11, 12), entries.DriftBaseline(21, 22)]
    out = entries.encode(c, HASH_KEY, 1, ExeIds(), drift_since=since)
    policy_set = cast("struct lg_policy_set", out.policy_set)
    assert (policy_set.drift_deny, policy_set.drift_audit) == (0b010, 0b100)
    assert [(b.monotonic_ns, b.realtime_ns) for b in list(policy_set.drift_since)[:4]] == [(0, 0), (11, 12), (21, 22), (0, 0)]
    # a drift identity only for a policy with drift: the engine finds a baseline to keep by it
    identities = dict(out.by_map["lg_rule_identities"])
    drift_keys = [entries.hits.hit_key(abi.rule_reference(pid, abi.RULE_INDEX_DRIFT), 1) for pid in range(3)]
    assert [key in identities for key in drift_keys] == [False, True, True]
    assert struct.unpack("=Q", identities[drift_keys[1]])[0] == entries.hits.identity(HASH_KEY, "deny", "(drift)")


def test_a_file_on_a_mount_made_during_the_apply_gets_its_mounts_device(tmp_path) -> None:
    """The mount table is read once per apply; a file whose mount is not in it (mounted since)
    has it read again, rather than taking stat's st_dev, which on btrfs and overlayfs is not
    the super block's device the kernel hashes."""
    from lsmguard.kernel import inodes
    (tmp_path / "f").write_text("x")
    fd = os.open(tmp_path / "f", os.O_PATH)
    try:
        mount_id = inodes._mount_id(fd)
    finally:
        os.close(fd)
    # the first read predates the file's mount; the second has it, with a device stat(2)
    # never reports for this file
    reads = [{}, {**inodes._mount_devices(""), mount_id: 0xABC << 20 | 7}]
    devices = inodes.MountDevices("", read=lambda root: reads.pop(0))
    assert inodes.identify(str(tmp_path / "f"), devices) == inodes.Inode(0xABC << 20 | 7,
                                                                          os.stat(tmp_path / "f").st_ino)
    assert reads == []
    # a mount gone by now: stat's device, the super block's on every file system but two
    gone = inodes.MountDevices("", read=lambda root: {})
    st = os.stat(tmp_path / "f")
    assert inodes.identify(str(tmp_path / "f"), gone) == inodes.Inode(inodes.kernel_dev(st.st_dev), st.st_ino)


class Registry:
    """lg_exe_ids as a dict of packed entries."""

    def __init__(self) -> None:
        self.entries: dict[bytes, bytes] = {}

    def lookup(self, key: bytes) -> bytes | None:
        return self.entries.get(key)

    def update(self, key: bytes, value: bytes) -> None:
        self.entries[key] = value


def test_an_except_gets_an_id_of_its_own_never_one_a_subject_had() -> None:
    """The review's case: a pattern named in subjects has had its id seeded from /proc into
    running processes; when a later set excepts it, the except reads another id, which only an
    exec the kernel saw gives (and an id of a build before the roles counts as a subject's)."""
    sshd, tool = PathPattern("/usr/sbin/sshd", False), PathPattern("/usr/bin/tool", False)
    registry = Registry()
    first = lineage.assign_exe_ids(registry, HASH_KEY, [sshd])          # set 1: sshd in subjects
    later = lineage.assign_exe_ids(registry, HASH_KEY, [sshd, tool], [sshd])   # set 2: also excepted
    assert later.naming[sshd] == first.naming[sshd]                      # tasks keep what they descend from
    assert later.excepting[sshd] not in (first.naming[sshd], later.naming[tool])
    again = lineage.assign_exe_ids(registry, HASH_KEY, [], [sshd])      # stable across applies
    assert again.excepting == {sshd: later.excepting[sshd]} and again.naming == {}
    raw = registry.lookup(abi.u32(later.excepting[sshd]))
    assert raw is not None and cast("struct lg_exe_id", raw).role == abi.lib.LG_EXE_ROLE_EXCEPT
