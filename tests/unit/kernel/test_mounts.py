"""Rule paths to file identities through the host's mount table, and back."""
from __future__ import annotations

import subprocess
import sys

from lsmguard.kernel.mounts import Identity, MountTable, kernel_dev
from lsmguard.policy.model import PathPattern

ROOT, VAR, TMP, DOCKER, BIND = (kernel_dev(8, 1), kernel_dev(8, 2), kernel_dev(0, 30), kernel_dev(8, 3),
                                kernel_dev(8, 1))
# id parent major:minor root point options - fstype source superoptions
MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 8:2 / /var rw,relatime shared:2 - ext4 /dev/sda2 rw
24 22 0:30 / /tmp rw shared:3 - tmpfs tmpfs rw
25 23 8:3 / /var/lib/docker rw shared:4 - ext4 /dev/sda3 rw
26 22 8:1 /srv/data /mnt/data\\040dir rw shared:1 - ext4 /dev/sda1 rw
27 22 0:31 / /media rw - tmpfs tmpfs rw
28 22 0:32 / /media rw - tmpfs tmpfs rw
29 27 0:33 / /media/hidden rw - tmpfs tmpfs rw
"""


def table() -> MountTable:
    return MountTable.parse(MOUNTINFO)


def test_a_path_is_named_from_the_root_of_the_file_system_it_is_on() -> None:
    t = table()
    assert t.identity_of("/etc/shadow") == (ROOT, "/etc/shadow")
    assert t.identity_of("/var/log/syslog") == (VAR, "/log/syslog")
    assert t.identity_of("/var") == (VAR, "/")
    assert t.identity_of("/var/lib/docker/x") == (DOCKER, "/x")
    assert t.identity_of("/mnt/data dir/f") == (BIND, "/srv/data/f")   # a bind mount: the same file
    assert t.identity_of("/") == (ROOT, "/")


def test_a_recursive_rule_covers_every_file_system_mounted_below_it() -> None:
    assert table().identities(PathPattern("/var", True)) == [
        Identity(VAR, PathPattern("/", True)), Identity(DOCKER, PathPattern("/", True))]
    assert table().identities(PathPattern("/var/lib", True)) == [
        Identity(VAR, PathPattern("/lib", True)), Identity(DOCKER, PathPattern("/", True))]
    assert table().identities(PathPattern("/var/log/x", False)) == [Identity(VAR, PathPattern("/log/x", False))]


def test_stacked_mounts_show_the_last_and_hide_what_is_below() -> None:
    t = table()
    assert t.identity_of("/media/x") == (kernel_dev(0, 32), "/x")
    assert t.identity_of("/media/hidden/x") == (kernel_dev(0, 32), "/hidden/x")   # 29 is under 27, hidden
    assert Identity(kernel_dev(0, 33), PathPattern("/", True)) not in t.identities(PathPattern("/media", True))


FUSE = kernel_dev(0, 40)
FUSE_OVER_VAR = kernel_dev(0, 41)


def test_a_file_a_users_fuse_mount_covers_keeps_its_rule() -> None:
    """A user who owns a directory may mount a FUSE file system over it (setuid fusermount3):
    a rule then names the FUSE file system's file and the file it hides, which a directory
    opened before the mount still reaches. Other mounts (root's) cover nothing a rule keeps."""
    t = MountTable.parse(MOUNTINFO + "30 22 0:40 / /srv/www rw,nosuid,nodev - fuse.sshfs host:/ rw\n"
                         "31 23 0:41 / /var/cache rw - fuse /dev/fuse rw\n")
    assert t.identities(PathPattern("/srv/www/.env", False)) == [
        Identity(FUSE, PathPattern("/.env", False)), Identity(ROOT, PathPattern("/srv/www/.env", False))]
    assert t.identities(PathPattern("/srv/www/app", True)) == [
        Identity(FUSE, PathPattern("/app", True)), Identity(ROOT, PathPattern("/srv/www/app", True))]
    assert t.identities(PathPattern("/var/cache/x", False)) == [
        Identity(FUSE_OVER_VAR, PathPattern("/x", False)), Identity(VAR, PathPattern("/cache/x", False))]
    assert t.identities(PathPattern("/srv", True)) == [Identity(ROOT, PathPattern("/srv", True)),
                                                       Identity(FUSE, PathPattern("/", True))]
    assert t.identities(PathPattern("/var/log/x", False)) == [Identity(VAR, PathPattern("/log/x", False))]
    assert t.host_path(ROOT, "/srv/www/.env") == "/srv/www/.env"   # its events are named by that path


SECRETS = kernel_dev(0, 60)


def test_a_mount_below_a_directory_a_users_mount_covers_keeps_its_rules() -> None:
    """The file systems mounted below the covered directory are hidden with it, and reached
    the same way: a rule keeps naming their files, exact or recursive, and their events keep
    the name they had."""
    below = MOUNTINFO + "40 22 0:60 / /srv/app/secrets rw - tmpfs tmpfs rw\n"
    covered = below + "41 22 0:40 / /srv/app rw,nosuid,nodev - fuse.sshfs host:/ rw\n"
    for text in (below, covered):
        t = MountTable.parse(text)
        assert Identity(SECRETS, PathPattern("/key", False)) in t.identities(PathPattern("/srv/app/secrets/key", False))
        assert Identity(SECRETS, PathPattern("/", True)) in t.identities(PathPattern("/srv/app", True))
        assert Identity(SECRETS, PathPattern("/", True)) in t.identities(PathPattern("/srv", True))
        assert t.host_path(SECRETS, "/key") == "/srv/app/secrets/key"
    assert Identity(FUSE, PathPattern("/secrets/key", False)) in MountTable.parse(covered).identities(
        PathPattern("/srv/app/secrets/key", False))


def test_a_users_mount_at_the_root_or_by_ecryptfs_covers_nothing_a_rule_names() -> None:
    for line in ("41 22 0:40 / / rw - fuse.x x rw\n", "41 22 0:40 /home/u/.Private /srv/www rw - ecryptfs x rw\n"):
        t = MountTable.parse(MOUNTINFO + line)
        assert Identity(ROOT, PathPattern("/srv/www/.env", False)) in t.identities(PathPattern("/srv/www/.env", False))


def test_names_other_than_files_are_not_translated() -> None:
    assert table().identities(PathPattern("@abstract", False)) == [Identity(0, PathPattern("@abstract", False))]


def test_an_identity_is_named_back_by_the_host_path_that_shows_it() -> None:
    t = table()
    assert t.host_path(VAR, "/log/syslog") == "/var/log/syslog"
    assert t.host_path(ROOT, "/etc/shadow") == "/etc/shadow"
    assert t.host_path(ROOT, "/srv/data/f") == "/mnt/data dir/f"      # the longer root: the bind mount
    assert t.host_path(DOCKER, "/") == "/var/lib/docker"
    assert t.host_path(kernel_dev(0, 99), "/x") is None               # a file system the host does not show


def test_the_host_table_of_this_machine_reads() -> None:
    t = MountTable.of_host()
    dev, path = t.identity_of("/")
    assert path.startswith("/") and t.host_path(dev, path) == "/"


MOUNT_THEN_NAME = """\
import os, subprocess, sys, tempfile
from pathlib import Path
from lsmguard.kernel.mounts import HostMounts, MountTable
mounts = HostMounts(Path("/proc/self/mountinfo"))
point = tempfile.mkdtemp()
assert mounts.host_path(*MountTable.of_host(Path("/proc/self/mountinfo")).identity_of("/")) == "/"
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", point], check=True)
dev = os.stat(point).st_dev
print(mounts.host_path((os.major(dev) << 20) | os.minor(dev), "/f"), point + "/f")
"""


def test_a_file_system_mounted_a_moment_ago_names_its_events() -> None:
    # A private mount namespace: a real mount, seen by the table's watch, with nothing left behind.
    got = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", MOUNT_THEN_NAME],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    named, expected = got.stdout.split()
    assert named == expected
