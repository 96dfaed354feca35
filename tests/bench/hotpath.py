"""`make bench-hotpath`: the LSM hot path's lookups measured on this host's own kernel, no lab.

Socket-filter twins (tests/bench/hotpath.bpf.c, run with BPF_PROG_TEST_RUN: this host
refuses LSM programs) look a resolved name up in path entries the real compiler and
encoder wrote (lsmguard.policy.compile, lsmguard.kernel.entries), with the real code of
bpf/path.bpf.h and bpf/scratch.bpf.h. What needs a hook (the walk that names the file,
its probe reads) is not measured here.

Variants, side by side in one run, rounds interleaved, against the same maps:
- before: the lookup before issue 24 (tests/bench/hotpath_before.h): SipHash fed one byte
  per bpf_loop callback, a prefix lookup at every '/' of every slot;
- words: the current code with a summary that admits every lookup (all ones), so it makes
  the lookups `before` makes: what feeding SipHash 8 bytes per callback changes;
- words+summary: the current code with the summary the encoder wrote: what skipping the
  lookups no entry can answer changes on top.
Each is the kernel's mean time of one run (opts.duration) less that of a run that does
all but the lookup (lg_twin_empty); ratios are to `before`.

    python -m tests.bench.hotpath OUT_DIR [--size smoke|full]

Prints ns per lookup and ratios; writes OUT_DIR/hotpath.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from lsmguard import abi
from lsmguard.kernel.lineage import ExeIds
from lsmguard.kernel import entries
from lsmguard.kernel.mounts import Mount, MountTable
from lsmguard.loader import BpfObject
from lsmguard.policy.compile import Compiled, compile_policies
from tests.bench.rulesets import nonmatching

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TWIN = ROOT / "build" / "bench" / "hotpath.bpf.o"

HASH_KEY = (0x0706050403020100, 0x0F0E0D0C0B0A0908)
DEV = (8 << 20) | 1                        # the kernel's encoding of 8:1
MOUNTS = MountTable([Mount(1, 0, DEV, "/", "/")])   # one file system, mounted at /
PACKET = bytes(64)                         # a socket filter's run needs a packet, any
INPUT = struct.Struct("=IIIBBBBII")        # struct lg_twin_input up to its path
OUTPUT_MASKS = 3                           # struct lg_twin_output: found[2], ancestor, then full_hash
ALL_ONES = abi.PathSummary()
ALL_ONES.slots = [[(1 << 64) - 1] * 4 for _ in range(abi.SUMMARY_SLOTS)]

VARIANTS = ("before", "words", "words+summary")
# Names are asked in generation 0; generation 1 holds the same entries, with a summary of all ones.
PROGRAMS = {"before": "lg_twin_before", "words": "lg_twin_all_lookups", "words+summary": "lg_twin_after"}


@dataclass(frozen=True)
class Found:
    """What a twin's lookup found: per slot looked up, the masks (abi.MASKS fields); the
    ancestor entry's; the whole name's hash (0 where no lookup needed it)."""
    slots: tuple[tuple[int, ...], ...]
    ancestor: tuple[int, ...]
    full_hash: int


class Twin:
    """The twin object, loaded: write entries, ask about a name, run a variant."""

    def __init__(self, path: Path = TWIN) -> None:
        self.obj = BpfObject(path)
        self.obj.load()
        self.maps = {name: self.obj.map(name) for name in ("lg_config", "lg_path_entries", "lg_path_summaries",
                                                            "lg_device_summaries", "lg_twin_input", "lg_twin_output")}
        self.maps["lg_config"].update(abi.u32(0), abi.pack("struct lg_config", path_hash_key=list(HASH_KEY)))
        self._written: dict[str, list[bytes]] = {"lg_path_entries": [], "lg_device_summaries": []}

    def close(self) -> None:
        self.obj.close()

    def __enter__(self) -> Twin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def apply(self, compiled: Compiled, generations: tuple[int, ...] = (0, 1), mounts: MountTable = MOUNTS) -> None:
        """The entries and summaries of `compiled`, as the engine writes them, in `generations`
        (replacing what was there); generation 1's summaries then admit every lookup."""
        for name, keys in self._written.items():
            self.maps[name].delete_many(keys)
            keys.clear()
        for generation in generations:
            out = entries.encode(compiled, HASH_KEY, generation, ExeIds(), None, None, mounts)
            items = out.by_map["lg_path_entries"]
            self.maps["lg_path_entries"].update_many(items)
            self._written["lg_path_entries"] += [key for key, _ in items]
            if generation == 1:
                self.set_summary(generation, ALL_ONES, (DEV, *out.device_summaries))
            else:
                self.set_summary(generation, out.path_summary)
                for dev, summary in out.device_summaries.items():
                    self.set_summary(generation, summary, (dev,), union=False)

    def set_summary(self, generation: int, summary: abi.PathSummary, devs: tuple[int, ...] = (),
                    union: bool = True) -> None:
        """Write `summary` as the generation's (with `union`) and as that of each of `devs`."""
        if union:
            self.maps["lg_path_summaries"].update(abi.u32(generation), summary.pack())
        for dev in devs:
            key = abi.device_summary_key(generation, dev)
            self.maps["lg_device_summaries"].update(key, summary.pack())
            self._written["lg_device_summaries"].append(key)

    def ask(self, name: bytes, slots: tuple[int, ...], generation: int = 0, dev: int = DEV,
            kind: abi.NameKind = abi.NameKind.FILE, ancestors: bool = False) -> None:
        """Put `name` where a walk leaves it, and what to look it up in."""
        padded = (*slots, 0)[:2]
        head = INPUT.pack(len(name), dev, kind, padded[0], padded[1], len(slots), ancestors, generation, 0)
        self.maps["lg_twin_input"].update(abi.u32(0), head + name.ljust(abi.PATH_MAX, b"\0"))
        if self.obj.program("lg_twin_load").test_run(PACKET) != 1:
            raise RuntimeError(f"the twin could not take the name {name!r}")

    def lookup(self, program: str = "lg_twin_after") -> Found:
        if self.obj.program(program).test_run(PACKET) != 1:
            raise RuntimeError(f"{program} did not run")
        raw = self.maps["lg_twin_output"].lookup(abi.u32(0))
        assert raw is not None
        size = abi.MASKS.struct.size
        masks = [abi.MASKS.struct.unpack_from(raw, i * size) for i in range(OUTPUT_MASKS)]
        (full_hash,) = struct.unpack_from("=Q", raw, OUTPUT_MASKS * size)
        return Found((masks[0], masks[1]), masks[2], full_hash)

    def time(self, program: str, repeat: int) -> int:
        """The kernel's mean time of one run of `program`, in ns."""
        return self.obj.program(program).test_run_timed(PACKET, repeat).duration_ns


# The names looked up: a 35-byte path of 5 components (the issue's), a short and a long one.
NAMES = {
    "35B/5": b"/usr/share/locale/de/LC_MESSAGES.mo",
    "11B/2": b"/etc/passwd",
    "97B/12": b"/home/user/src/project/build/lib/python3/site-packages/pkg/sub/module/__pycache__/mod.cpython.pyc",
}
# What is looked up: an open for reading and writing (2 slots), a chmod (1 slot).
ACCESSES = {"open-rw": (abi.Slot.OPEN_READ, abi.Slot.OPEN_WRITE), "chmod": (abi.Slot.CHMOD,)}
SIZES = {"smoke": {"rules": (10, 1000), "repeat": 200, "rounds": 1},
         "full": {"rules": (10, 100_000), "repeat": 100_000, "rounds": 7}}


def measure(twin: Twin, repeat: int, rounds: int) -> dict[str, float]:
    """ns per lookup of each variant for the name asked: medians over interleaved rounds, less
    the median of the empty run's."""
    programs = {**PROGRAMS, "empty": "lg_twin_empty"}
    samples: dict[str, list[int]] = {v: [] for v in programs}
    for _ in range(rounds):
        for variant, program in programs.items():
            samples[variant].append(twin.time(program, repeat))
    empty = statistics.median(samples["empty"])
    return {v: max(statistics.median(samples[v]) - empty, 0.0) for v in VARIANTS}


def run(size: str) -> dict[str, object]:
    config = SIZES[size]
    repeat, rounds = int(config["repeat"]), int(config["rounds"])   # type: ignore[call-overload]
    results = []
    with Twin() as twin:
        for count in config["rules"]:   # type: ignore[attr-defined]
            twin.apply(compile_policies(nonmatching(count)))
            for name_label, name in NAMES.items():
                for access, slots in ACCESSES.items():
                    twin.ask(name, slots)
                    found = {v: twin.lookup(PROGRAMS[v]).slots for v in VARIANTS}
                    if len(set(found.values())) != 1:
                        raise AssertionError(f"the variants disagree on {name!r}: {found}")
                    ns = measure(twin, repeat, rounds)
                    results.append({"rules": count, "name": name_label, "access": access, "ns": ns,
                                    "ratios": {v: ns[v] / ns["before"] if ns["before"] else 0.0 for v in VARIANTS}})
    return {"size": size, "repeat": repeat, "rounds": rounds, "results": results}


def report(result: dict[str, object]) -> str:
    lines = [f"{'rules':>7} {'name':7} {'access':8} " + " ".join(f"{v:>14}" for v in VARIANTS)
             + "   words/before  summary/before"]
    for r in result["results"]:   # type: ignore[attr-defined]
        lines.append(f"{r['rules']:>7} {r['name']:7} {r['access']:8} "
                     + " ".join(f"{r['ns'][v]:>11.0f} ns" for v in VARIANTS)
                     + f"   {r['ratios']['words']:>12.2f}  {r['ratios']['words+summary']:>14.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    args = parser.parse_args(argv)
    result = run(args.size)
    print(report(result))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hotpath.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
