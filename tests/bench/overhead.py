"""Guest side of `make bench`: the driver's cost per operation under each
configuration, interleaved in rounds within one boot, so that every ratio is
measured side by side.

    python -m tests.bench.overhead OUT_DIR [--rounds N] [--size smoke|ci|full]

Writes OUT_DIR/overhead.jsonl, one line per (round, configuration, operation),
with the driver's wall and CPU time per operation; OUT_DIR/programs.jsonl, the
kernel's own run time and count of each lsmguard program per (configuration,
operation), from a pass after the rounds with kernel.bpf_stats_enabled on (the
statistics cost two clock reads per program run, so the rounds run without);
and OUT_DIR/verifier.json, the instructions the verifier processed per program
and the object's load times. Absolute times under software emulation mean
nothing; the ratios do."""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from lsmguard import abi
from lsmguard.kernel.engine import Engine
from lsmguard.policy.compile import compile_policies
from tests.bench.rulesets import (Objects, apparmor_profile, audit_matching, audit_mode_default_deny, drift_in_force,
                                  nonmatching)

BUILD = Path(__file__).resolve().parents[2] / "build" / "bench"
RULE_COUNTS = (0, 10, 1_000, 100_000)
APPARMOR_RULES = 10
PORT = 40123
SIZES = {   # iterations per driver run, by operation
    "smoke": dict(open=200, write=200, chmod=200, exec=4, connect=200, create=100, rename=100),  # runs, measures nothing
    "ci": dict(open=2_000, write=2_000, chmod=2_000, exec=40, connect=2_000, create=1_000, rename=1_000),
    "full": dict(open=20_000, write=20_000, chmod=20_000, exec=400, connect=20_000, create=10_000, rename=10_000),
}
BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
EVERY_EVENT = "-every-event"   # the kernel's coalescing off: every repeated access is an event read
# configurations that make events, each run with a reader: as the daemon runs (coalescing on),
# and audit mode's worst case, where no access repeats within a window
EVENTFUL = ("lsmguard-audit-match", "lsmguard-audit-mode", f"lsmguard-audit-mode{EVERY_EVENT}")
SMOKE_RULE_COUNTS = (0, 10, 1_000)   # compiling 100,000 rules under emulation is the smoke run's longest step


@dataclass
class Bench:
    objects: Objects
    iterations: dict[str, int]
    out: Path
    driver: Path

    def targets(self) -> list[tuple[str, object]]:
        return [("open", self.objects.file), ("write", self.objects.file), ("chmod", self.objects.file),
                ("exec", self.objects.binary), ("connect", self.objects.port),
                ("create", self.objects.made), ("rename", self.objects.moved)]

    def run_op(self, config: str, op: str, target: object) -> dict:
        proc = subprocess.run([str(self.driver), op, str(target), str(self.iterations[op])],
                              capture_output=True, text=True, check=True)
        result = json.loads(proc.stdout)
        if result["failures"]:
            raise RuntimeError(f"{config}: {op} failed {result['failures']} times; nothing here may be denied")
        return result

    def run_ops(self, round_: int, config: str) -> None:
        for op, target in self.targets():
            result = self.run_op(config, op, target)
            self.record("overhead.jsonl", {"round": round_, "config": config, **result})

    def profile_ops(self, config: str, engine: Engine) -> None:
        """Each operation again, with the kernel's statistics on: per program, how often it ran
        per operation and its run time per run."""
        programs = engine.obj.loaded_programs() if engine.obj else []
        for op, target in self.targets():
            before = {p.name: p.info() for p in programs}
            result = self.run_op(config, op, target)
            for p in programs:
                after, earlier = p.info(), before[p.name]
                runs = int(after.run_cnt - earlier.run_cnt)
                if runs:
                    self.record("programs.jsonl", {
                        "config": config, "op": op, "program": p.name,
                        "runs_per_op": runs / result["iterations"],
                        "ns_per_run": int(after.run_time_ns - earlier.run_time_ns) / runs})

    def record(self, name: str, line: dict) -> None:
        with (self.out / name).open("a") as f:
            f.write(json.dumps(line) + "\n")


@contextmanager
def apparmor(bench: Bench, *, audit: bool = False, complain: bool = False) -> Iterator[None]:
    """The driver confined by an AppArmor profile: the same non-matching rules (with
    audit rules on its objects), or, in complain mode, a profile that allows nothing."""
    profile = Path(tempfile.mkdtemp()) / "lsmguard-bench"
    canary = bench.objects.file.with_name("apparmor-canary")
    canary.write_text("")
    profile.write_text(apparmor_profile("lsmguard-bench", bench.driver, APPARMOR_RULES,
                                        audit=bench.objects if audit else None, allow=not complain,
                                        deny_read=() if complain else (canary,)))
    subprocess.run(["apparmor_parser", "-r", *(["-C"] if complain else []), str(profile)], check=True)
    try:
        if not complain:   # the profile is attached: its canary rule refuses
            probe = json.loads(subprocess.run([str(bench.driver), "open", str(canary), "1"], capture_output=True,
                                              text=True, check=True).stdout)
            if probe["failures"] != 1:
                raise RuntimeError(f"the AppArmor profile is not attached to {bench.driver}")
        yield
    finally:
        subprocess.run(["apparmor_parser", "-R", str(profile)], check=True)


@contextmanager
def bpf_stats() -> Iterator[None]:
    BPF_STATS.write_text("1\n")
    try:
        yield
    finally:
        BPF_STATS.write_text("0\n")


def load_engine(bench: Bench) -> Engine:
    """The object loaded and attached, timed, with the verifier's work per program noted."""
    started = time.monotonic()
    engine = Engine.load()
    seconds = time.monotonic() - started
    verifier = bench.out / "verifier.json"
    known = json.loads(verifier.read_text()) if verifier.exists() else {"load_s": [], "processed_insns": {}}
    known["load_s"].append(round(seconds, 3))
    known["processed_insns"] = {p.name: p.verified_insns for p in engine.obj.loaded_programs()} if engine.obj else {}
    verifier.write_text(json.dumps(known, indent=1))
    return engine


@contextmanager
def consuming_events(engine: Engine, coalescing: bool) -> Iterator[None]:
    """Read the ring buffer as the daemon would, so that event cost is measured with a
    reader (a full ring buffer would make every event a cheap failed reservation). With
    `coalescing`, as the daemon runs: the kernel sends a repeat once per window and counts
    the rest, and the reader sweeps the counts of ended windows as the daemon's pump does."""
    stop = threading.Event()
    counts = engine.coalesced_counts() if coalescing else None

    def read(event: abi.Event) -> None:
        key = abi.window_key(event)
        if key is not None and counts is not None:   # as the daemon's pump: its count is read by key
            counts.watch(key)

    reader = engine.event_reader(read)
    engine.set_coalescing(coalescing)
    # what came before this configuration's first operation (the end of the one before it, the
    # bench's own accesses since the policy set was applied) is not its operations' cost
    reader.consume()

    def pump() -> None:
        while not stop.is_set():
            reader.poll(50)
            if counts is not None:
                for counted in counts.sweep(time.monotonic_ns()):
                    counts.settled(counted)   # as the daemon once journald has its record

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        engine.set_coalescing(False)
        if counts is not None:
            for counted in counts.sweep(time.monotonic_ns(), everything=True):
                counts.settled(counted)
        reader.close()


def eventful_context(engine: Engine, name: str) -> AbstractContextManager[None]:
    """The reader an eventful configuration runs with; none for the others."""
    if name not in EVENTFUL:
        return nullcontext()
    return consuming_events(engine, coalescing=not name.endswith(EVERY_EVENT))


def rotate(items: list, by: int) -> list:
    return items[by % len(items):] + items[:by % len(items)] if items else items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", choices=SIZES, default="ci")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("overhead.jsonl", "programs.jsonl", "verifier.json"):
        (args.out / name).unlink(missing_ok=True)
    # AppArmor's audit messages go to the kernel log; printed on the lab's emulated serial
    # console they would cost far more than on a real host. Keep them in the ring buffer only.
    Path("/proc/sys/kernel/printk").write_text("1\n")

    work = Path(tempfile.mkdtemp(prefix="lsmguard-bench-"))
    # A file system of its own, as on a host: the lab guest's /tmp is an overlay, on which every
    # open and setattr runs the hooks twice (the overlay's file, then its real file).
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "lsmguard-bench", str(work)], check=True)
    objects = Objects(work / "file", work / "static-true", PORT, work / "names")
    objects.file.write_text("")
    objects.names.mkdir()
    objects.moved.write_text("")
    shutil.copy(BUILD / "static-true", objects.binary)
    driver = work / "driver"      # profiles attach by path: a copy of our own
    shutil.copy(BUILD / "driver", driver)
    bench = Bench(objects, SIZES[args.size], args.out, driver)

    counts = SMOKE_RULE_COUNTS if args.size == "smoke" else RULE_COUNTS
    compiled = {f"lsmguard-{n}": compile_policies(nonmatching(n)) for n in counts}
    # the same rules on the driver's file system: where a host's rules share the file's device
    compiled[f"lsmguard-{APPARMOR_RULES}-same-fs"] = compile_policies(nonmatching(APPARMOR_RULES, work))
    compiled["lsmguard-drift"] = compile_policies(drift_in_force())
    eventful = {name: compile_policies(audit_matching(objects) if "match" in name else audit_mode_default_deny())
                for name in EVENTFUL}
    outside: list[tuple[str, Callable[[], AbstractContextManager[None]]]] = [
        ("none", nullcontext),
        (f"apparmor-{APPARMOR_RULES}", lambda: apparmor(bench)),
        ("apparmor-audit-match", lambda: apparmor(bench, audit=True)),
        ("apparmor-complain", lambda: apparmor(bench, complain=True)),
    ]
    lsmguard = [*compiled.items(), *eventful.items()]
    for round_ in range(args.rounds):
        for name, context in rotate(outside, round_):
            with context():
                bench.run_ops(round_, name)
        engine = load_engine(bench)
        try:
            for name, policy_set in rotate(lsmguard, round_):
                engine.apply(policy_set)
                with eventful_context(engine, name):
                    bench.run_ops(round_, name)
        finally:
            engine.close()
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    engine = load_engine(bench)
    try:
        with bpf_stats():
            for name, policy_set in lsmguard:
                engine.apply(policy_set)
                with eventful_context(engine, name):
                    bench.profile_ops(name, engine)
    finally:
        engine.close()
    print("per-program statistics done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
