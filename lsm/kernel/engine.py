"""The enforcement engine: the loaded BPF object, its maps, links and pins, and
applying compiled policies to it atomically."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lsmguard import abi
from lsmguard.errors import ExitStatus, LsmguardError
from lsmguard.kernel import entries, hits, inodes, lineage
from lsmguard.kernel.coalescing import CoalescedCounts
from lsmguard.kernel.mounts import HOST_MOUNTS, MountTable
from lsmguard.kernel.resources import bpf_object_path
from lsmguard.loader import BpfError, BpfObject, Link, Map, RingBuffer, membarrier_global, wait_released
from lsmguard.policy import progress
from lsmguard.policy.compile import Compiled

PIN_ROOT = Path("/sys/fs/bpf/lsmguard")
OBJECT_MAP = "lg_build"
# CLOCK_REALTIME_COARSE (linux/time.h): what the kernel stamps inode change times with.
CLOCK_REALTIME_COARSE = getattr(time, "CLOCK_REALTIME_COARSE", 5)


def host_mount_namespace() -> int:
    """The inode number of PID 1's mount namespace (ours where PID 1's cannot be read)."""
    for pid in ("1", "self"):
        try:
            return os.stat(f"/proc/{pid}/ns/mnt").st_ino
        except OSError:
            continue
    return 0


def map_names(obj: BpfObject) -> list[str]:
    """The maps the engine pins and adopts, and the lock guards: every map the object declares.
    (libbpf's maps of the object's global data are frozen at load and never pinned.)"""
    return obj.map_names(internal=False)


def object_digest(path: str | os.PathLike[str]) -> bytes:
    """The value of `lg_build` for the object file at `path` (abi.h, struct lg_build)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


class IncompatiblePins(LsmguardError):
    """What is pinned is not this version's object; nothing was touched. Exit status 2: no
    restart can fix it (the unit's RestartPreventExitStatus), an operator's unload can."""
    exit_status = ExitStatus.USAGE


@dataclass
class Engine:
    obj: BpfObject | None
    maps: dict[str, Map]
    links: list[Link] = field(default_factory=list)
    hash_key: tuple[int, int] = (0, 0)
    compiled: Compiled | None = None
    adopted: bool = False
    replaced: bool = False     # adopted, with the programs of another build replaced by this one's
    old_programs_held: bool = False   # replaced, but another process still holds the old build's links
    other_build: bool = False  # adopted without replacing the programs of another build

    @classmethod
    def load(cls, object_path: str | os.PathLike[str] | None = None,
             pin_root: Path | None = None, replace: bool = True) -> Engine:
        """Adopt what is pinned under `pin_root`, with no gap in enforcement (`replace`: and
        replace another build's programs); else load the object, key the path hash, attach
        every program, and pin if asked."""
        if pin_root is not None and (pin_root / "links").is_dir():
            return cls.adopt(pin_root, object_path, replace)
        obj = BpfObject(object_path or bpf_object_path())
        try:
            obj.skip_absent_hooks()
            obj.load()
            maps = {name: obj.map(name) for name in map_names(obj)}
            hash_key = struct.unpack("=QQ", os.urandom(16))
            maps["lg_config"].update(abi.u32(0), abi.pack("struct lg_config", path_hash_key=list(hash_key),
                                                          host_mnt_ns=host_mount_namespace()))
            maps[OBJECT_MAP].update(abi.u32(0), object_digest(obj.path))
            engine = cls(obj, maps, [], hash_key)
            for program in obj.loaded_programs():
                engine.links.append(program.attach())
            if pin_root is not None:
                engine.pin(pin_root)
            return engine
        except BaseException:
            obj.close()
            raise

    @classmethod
    def adopt(cls, pin_root: Path, object_path: str | os.PathLike[str] | None = None,
              replace: bool = True) -> Engine:
        """Take over pinned maps and links: the programs never stop running. What is pinned
        must have this version's maps, map by map, or nothing is touched. Programs of another
        build (an upgrade that changed their code) are replaced with this one's, with no gap;
        without `replace` (a command that only reads), they are adopted as they are. Those who
        replace hold the host's policy lock: two never replace at once."""
        path = object_path or bpf_object_path()
        with BpfObject(path) as obj:
            obj.skip_absent_hooks()
            programs = sorted(p.name for p in obj.loaded_programs())
            expected = {name: obj.map_spec(name) for name in map_names(obj)}
        pinned_links = sorted(p.name for p in (pin_root / "links").iterdir())
        problems, maps = [], {}
        try:
            for name, spec in expected.items():
                pin = pin_root / "maps" / name
                if not pin.exists():
                    if name != OBJECT_MAP:   # a build from before the digest: its programs are replaced
                        problems.append(f"map {name} is not pinned")
                    continue
                maps[name] = Map.from_pin(pin)
                problems += [f"map {name}: {d}" for d in maps[name].info.spec.differences(spec)]
            if problems:
                raise IncompatiblePins(
                    f"{pin_root} holds an lsmguard object this version cannot use, and nothing was changed:\n  "
                    + "\n  ".join(problems) + "\nIt was loaded by another version of lsmguard. To replace it: "
                    "stop the daemon, run `lsmguard unload` (enforcement stops until the next load), then start "
                    "the daemon again (docs/cli.md, \"Upgrading\").")
            if OBJECT_MAP not in maps:
                maps[OBJECT_MAP] = Map.create(expected[OBJECT_MAP], OBJECT_MAP)
                maps[OBJECT_MAP].pin(pin_root / "maps" / OBJECT_MAP)
            raw = maps["lg_config"].lookup(abi.u32(0)) or b""
            config = abi.view("struct lg_config", raw)
            hash_key = (config.path_hash_key[0], config.path_hash_key[1])
            same_build = maps[OBJECT_MAP].lookup(abi.u32(0)) == object_digest(path) and pinned_links == programs
            if same_build or not replace:
                links = [Link.from_pin(pin_root / "links" / name) for name in pinned_links]
                return cls(None, maps, links, hash_key, adopted=True, other_build=not same_build)
            engine = cls(BpfObject(path), maps, [], hash_key, adopted=True, replaced=True)
        except BaseException:
            for m in maps.values():
                m.close()
            raise
        try:
            engine._replace_programs(pin_root, path)
        except BaseException:
            engine.close()
            raise
        return engine

    def _replace_programs(self, pin_root: Path, path: str | os.PathLike[str]) -> None:
        """Load this build's programs over the pinned maps and put them in the pinned ones'
        place. Both builds' programs are attached for a moment, reading the same maps, so
        each access is decided by both and refused if either refuses: no gap. A daemon that
        dies halfway leaves the digest of the old build, and the next one does it again."""
        assert self.obj is not None
        self.obj.skip_absent_hooks()
        for name, m in self.maps.items():
            self.obj.reuse_map(name, m)
        self.obj.load()
        links_dir = pin_root / "links"
        old_pins = sorted(links_dir.iterdir())
        old_ids = []
        for pin in old_pins:
            with contextlib.closing(Link.from_pin(pin)) as old:
                old_ids.append(old.id)
        for program in self.obj.loaded_programs():
            link = program.attach()
            self.links.append(link)
            staged = links_dir / f"staged_{link.name}"   # bpffs refuses names with a dot
            link.pin(staged)
            os.replace(staged, links_dir / link.name)   # bpffs renames: the old link's pin is dropped
        for pin in old_pins:
            if pin.name not in {link.name for link in self.links}:
                pin.unlink()   # a hook this build no longer has (or a stale staged pin)
        self.maps[OBJECT_MAP].update(abi.u32(0), object_digest(path))
        try:
            wait_released(old_ids)   # from here on, only this build's programs run
        except TimeoutError:
            # another process holds them (a daemon of the old build, not restarted yet): both
            # builds decide until it closes them, each refusing what it refuses
            self.old_programs_held = True

    def pin(self, pin_root: Path) -> None:
        (pin_root / "maps").mkdir(parents=True, exist_ok=True)
        (pin_root / "links").mkdir(parents=True, exist_ok=True)
        for name, m in self.maps.items():
            m.pin(pin_root / "maps" / name)
        for link in self.links:
            link.pin(pin_root / "links" / link.name)

    @staticmethod
    def unpin(pin_root: Path) -> None:
        """Remove every pin; links nobody else holds are detached when this returns.

        A pin's reference is dropped only after an RCU grace period, and the
        final put then runs from a workqueue, so the programs could still run
        for a moment after the unlink: wait until the kernel no longer knows
        the links' ids (the id goes in the same function that detaches).
        """
        links = pin_root / "links"
        ids = []
        if links.is_dir():
            for pin in sorted(links.iterdir()):
                link = Link.from_pin(pin)
                ids.append(link.id)
                pin.unlink()
                link.close()
        if pin_root.exists():
            shutil.rmtree(pin_root)
        wait_released(ids)

    # -- applying policy -------------------------------------------------

    def generation(self) -> int:
        raw = self.maps["lg_config"].lookup(abi.u32(0))
        assert raw is not None
        return abi.view("struct lg_config", raw).generation

    def policies_in_force(self) -> bool:
        """Whether the set in force has any policy (a freshly loaded object has none)."""
        raw = self.maps["lg_policy_sets"].lookup(abi.u32(self.generation()))
        return raw is not None and abi.view("struct lg_policy_set", raw).policies != 0

    def _keys_by_generation(self) -> tuple[dict[str, list[bytes]], dict[str, list[bytes]]]:
        """The keys each generation holds, map by map, as the maps have them now. Read, never
        remembered: another process applies through the same pinned maps (`lsmguard allow` from
        the CLI while the daemon runs), so what this one wrote last says nothing of what is there."""
        held: tuple[dict[str, list[bytes]], dict[str, list[bytes]]] = ({}, {})
        for name, ctype in entries.GENERATION_KEYS.items():
            for generation in held:
                generation[name] = []
            for key, _ in self.maps[name].items():
                held[abi.key_generation(ctype, key) & 1][name].append(key)
        return held

    def _delete(self, keys: dict[str, list[bytes]]) -> None:
        for name, map_keys in keys.items():
            self.maps[name].delete_many(map_keys)

    def _retire_hits(self, generation: int) -> None:
        hits.retire(self.maps["lg_rule_hits"], self.maps["lg_rule_identities"], self.maps["lg_rule_hits_carried"],
                    generation)

    def _drift_baselines(self, compiled: Compiled, old: int) -> list[entries.DriftBaseline]:
        """By policy id: when its drift option came into force. A policy that had drift in the set
        in force keeps its baseline (a reload or a live change must not excuse files written since);
        one that did not gets now, taken before the switch so that no write slips between."""
        now = entries.DriftBaseline(time.clock_gettime_ns(time.CLOCK_MONOTONIC),
                                    time.clock_gettime_ns(CLOCK_REALTIME_COARSE))
        kept: dict[int, entries.DriftBaseline] = {}
        raw = self.maps["lg_policy_sets"].lookup(abi.u32(old))
        if raw is not None and any(p.drift is not None for p in compiled.policies):
            in_force = abi.view("struct lg_policy_set", raw)
            for policy_id in range(abi.MAX_POLICIES):
                if not (in_force.drift_deny | in_force.drift_audit) >> policy_id & 1:
                    continue
                # the drift identity of a policy names it: written only for policies with drift
                ident = self.maps["lg_rule_identities"].lookup(
                    hits.hit_key(abi.rule_reference(policy_id, abi.RULE_INDEX_DRIFT), old))
                if ident is not None:
                    since = in_force.drift_since[policy_id]
                    kept[struct.unpack("=Q", ident)[0]] = entries.DriftBaseline(since.monotonic_ns,
                                                                                since.realtime_ns)
        return [kept.get(hits.identity(self.hash_key, name, hits.DRIFT_RULE), now)
                if policy.drift is not None else entries.DriftBaseline(0, 0)
                for name, policy in zip(compiled.names, compiled.policies, strict=True)]

    def apply(self, compiled: Compiled, mounts: MountTable | None = None) -> None:
        """Replace the policy set in force, atomically: programs see the old set or the
        new one, never a mix. On failure the old set stays in force, unchanged. Rule paths
        are translated with `mounts`, the host's mount table (default: read now)."""
        old = self.generation()
        new = old ^ 1
        self._retire_hits(new)                      # leftovers of an apply that died halfway
        held = self._keys_by_generation()
        self._delete(held[new])
        exe_ids = lineage.assign_exe_ids(self.maps["lg_exe_ids"], self.hash_key,
                                         [p for p, policies in compiled.exe_patterns.items() if policies],
                                         compiled.exe_excluded)
        progress.report("encoding", 0, 0)
        generation = entries.encode(compiled, self.hash_key, new, exe_ids, inodes.bind(compiled),
                                    self._drift_baselines(compiled, old),
                                    mounts if mounts is not None else MountTable.of_host())
        written: dict[str, list[bytes]] = {}
        total, done = sum(len(items) for items in generation.by_map.values()), 0
        try:
            for name, items in generation.by_map.items():
                progress.report("writing", done, total, "map entries")
                done += len(items)
                try:
                    self.maps[name].update_many(items)
                except BpfError as error:
                    written[name] = [key for key, _ in items[:error.done]]
                    raise
                written[name] = [key for key, _ in items]
            self.maps["lg_path_summaries"].update(abi.u32(new), generation.path_summary.pack())
            self.maps["lg_policy_sets"].update(abi.u32(new), generation.policy_set)
        except BpfError:
            self._delete(written)
            raise
        exe_table = entries.seeding_table(exe_ids)
        if compiled.exe_patterns:
            lineage.seed_running_tasks(self.maps["lg_task_subjects"], exe_table)
        raw = bytearray(self.maps["lg_config"].lookup(abi.u32(0)) or b"")
        config = abi.view("struct lg_config", raw)
        config.generation = new
        self.maps["lg_config"].update(abi.u32(0), bytes(raw))   # the switch: one array-map write
        # Wait until no program can still be reading the old generation, then drop it.
        try:
            membarrier_global()
        except OSError as error:
            raise OSError(error.errno, "membarrier(MEMBARRIER_CMD_GLOBAL) failed: cannot retire the old "
                          "policy set") from None
        # Tasks that exec'd a newly named executable while the old set was in force.
        if compiled.exe_patterns:
            lineage.seed_running_tasks(self.maps["lg_task_subjects"], exe_table)
        self._retire_hits(old)
        self._delete(held[old])
        self.maps["lg_policy_sets"].update(abi.u32(old), bytes(abi.sizeof("struct lg_policy_set")))
        self.maps["lg_path_summaries"].update(abi.u32(old), bytes(abi.sizeof("struct lg_path_summary")))
        self.compiled = compiled

    # -- reading ------------------------------------------------------------

    def stats(self) -> dict[abi.Stat, int]:
        return stat_totals(self.maps["lg_stats"])

    def rule_hits(self, compiled: Compiled | None = None) -> dict[tuple[str, str], int]:
        """Hits per (policy, rule id) of `compiled` (default: what this engine applied), counted
        across policy replacements. Rule "" counts refusals by a policy's default, "?" refusals
        the kernel could not attribute to one rule."""
        compiled = compiled or self.compiled
        if compiled is None:
            return {}
        totals = hits.by_identity(self.maps["lg_rule_hits"], self.maps["lg_rule_identities"],
                                  self.maps["lg_rule_hits_carried"], self.generation())
        out = {}
        for name, rules in zip(compiled.names, compiled.rules, strict=True):
            for rule in [*rules, hits.DEFAULT_RULE, hits.UNATTRIBUTED_RULE, hits.DRIFT_RULE]:
                out[(name, rule)] = totals.get(hits.identity(self.hash_key, name, rule), 0)
        return out

    def event_reader(self, callback: Callable[[abi.Event], None], budget: int | None = None,
                     before_batch: Callable[[], None] | None = None,
                     undecodable: Callable[[ValueError], None] | None = None) -> RingBuffer:
        return event_reader(self.maps["lg_events"], callback, budget, before_batch, undecodable)

    def set_coalescing(self, on: bool) -> None:
        """The daemon turns the kernel's coalescing on (it reads the counts); without it the ring
        carries one event per access."""
        self.maps["lg_coalescing"].update(abi.u32(0), abi.u32(int(on)))

    def coalesced_counts(self) -> CoalescedCounts:
        """The reader of the counts of events the kernel coalesced rather than sent."""
        return CoalescedCounts(self.maps["lg_coalesce"], self.maps["lg_coalesce_reported"],
                               lambda: stat_total(self.maps["lg_stats"], abi.Stat.COALESCED))

    def close(self) -> None:
        """Drop this process's handles; pinned links keep enforcing."""
        for link in self.links:
            link.close()
        self.links.clear()
        if self.obj is not None:
            self.obj.close()
            self.obj = None
        else:
            for m in self.maps.values():
                m.close()


def event_reader(ring: Map, callback: Callable[[abi.Event], None], budget: int | None = None,
                 before_batch: Callable[[], None] | None = None,
                 undecodable: Callable[[ValueError], None] | None = None) -> RingBuffer:
    """Events of a ring buffer of abi.h events, decoded, their files named by their paths on the host.
    A record that does not decode goes to `undecodable` (without it, the reader raises)."""
    def hand(data: bytes) -> None:
        try:
            event = abi.decode_event(data, HOST_MOUNTS)
        except ValueError as error:
            if undecodable is None:
                raise
            undecodable(error)
            return
        callback(event)
    return RingBuffer(ring, hand, budget, before_batch)


def stat_totals(counters: Map) -> dict[abi.Stat, int]:
    """The per-CPU counters of `lg_stats`, summed over CPUs."""
    return {stat: stat_total(counters, stat) for stat in abi.Stat}


def stat_total(counters: Map, stat: abi.Stat) -> int:
    return sum(struct.unpack("=Q", v)[0] for v in counters.lookup_percpu(abi.u32(stat)))
