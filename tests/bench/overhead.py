"""Guest side of `make bench`: the driver's cost per operation under each
configuration, interleaved in rounds within one boot, so that every ratio is
measured side by side.

    python -m tests.bench.overhead OUT_DIR [--rounds N] [--size ci|full]

Writes OUT_DIR/overhead.jsonl, one line per (round, configuration, operation).
Absolute times under software emulation mean nothing; the ratios do."""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from lsmguard.kernel.engine import Engine
from lsmguard.policy.compile import compile_policies
from tests.bench.rulesets import Objects, apparmor_profile, audit_matching, audit_mode_default_deny, nonmatching

BUILD = Path(__file__).resolve().parents[2] / "build" / "bench"
RULE_COUNTS = (0, 10, 1_000, 100_000)
APPARMOR_RULES = 10
PORT = 40123
SIZES = {   # iterations per driver run, by operation
    "smoke": dict(open=200, chmod=200, exec=4, connect=30, create=100, rename=100),   # CI: runs, measures nothing
    "ci": dict(open=2_000, chmod=2_000, exec=40, connect=300, create=1_000, rename=1_000),
    "full": dict(open=20_000, chmod=20_000, exec=400, connect=3_000, create=10_000, rename=10_000),
}
SMOKE_RULE_COUNTS = (0, 10, 1_000)   # compiling 100,000 rules under emulation is the smoke run's longest step


@dataclass
class Bench:
    objects: Objects
    iterations: dict[str, int]
    out: Path
    driver: Path

    def run_ops(self, round_: int, config: str) -> None:
        for op, target in (("open", self.objects.file), ("chmod", self.objects.file),
                           ("exec", self.objects.binary), ("connect", self.objects.port),
                           ("create", self.objects.made), ("rename", self.objects.moved)):
            proc = subprocess.run([str(self.driver), op, str(target), str(self.iterations[op])],
                                  capture_output=True, text=True, check=True)
            result = json.loads(proc.stdout)
            if result["failures"]:
                raise RuntimeError(f"{config}: {op} failed {result['failures']} times; nothing here may be denied")
            with (self.out / "overhead.jsonl").open("a") as f:
                f.write(json.dumps({"round": round_, "config": config, **result}) + "\n")


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
def consuming_events(engine: Engine) -> Iterator[None]:
    """Read the ring buffer as the daemon would, so that event cost is measured with a
    reader (a full ring buffer would make every event a cheap failed reservation)."""
    stop = threading.Event()
    reader = engine.event_reader(lambda event: None)

    def pump() -> None:
        while not stop.is_set():
            reader.poll(50)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        reader.close()


def rotate(items: list, by: int) -> list:
    return items[by % len(items):] + items[:by % len(items)] if items else items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", choices=SIZES, default="ci")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.jsonl").unlink(missing_ok=True)
    # AppArmor's audit messages go to the kernel log; printed on the lab's emulated serial
    # console they would cost far more than on a real host. Keep them in the ring buffer only.
    Path("/proc/sys/kernel/printk").write_text("1\n")

    work = Path(tempfile.mkdtemp(prefix="lsmguard-bench-"))
    objects = Objects(work / "file", work / "static-true", PORT, work / "names")
    objects.file.write_text("")
    objects.names.mkdir()
    objects.moved.write_text("")
    shutil.copy(BUILD / "static-true", objects.binary)
    driver = work / "driver"      # profiles attach by path: a copy of our own
    shutil.copy(BUILD / "driver", driver)
    bench = Bench(objects, SIZES[args.size], args.out, driver)

    counts = SMOKE_RULE_COUNTS if args.size == "smoke" else RULE_COUNTS
    compiled = {f"lsmguard {n} rules": compile_policies(nonmatching(n)) for n in counts}
    eventful = {"lsmguard audit match": compile_policies(audit_matching(objects)),
                "lsmguard audit mode": compile_policies(audit_mode_default_deny())}
    outside: list[tuple[str, Callable[[], AbstractContextManager[None]]]] = [
        ("none", nullcontext),
        (f"apparmor {APPARMOR_RULES} rules", lambda: apparmor(bench)),
        ("apparmor audit match", lambda: apparmor(bench, audit=True)),
        ("apparmor complain mode", lambda: apparmor(bench, complain=True)),
    ]
    for round_ in range(args.rounds):
        for name, context in rotate(outside, round_):
            with context():
                bench.run_ops(round_, name)
        engine = Engine.load()
        try:
            for name, policy_set in rotate([*compiled.items(), *eventful.items()], round_):
                engine.apply(policy_set)
                with consuming_events(engine) if name in eventful else nullcontext():
                    bench.run_ops(round_, name)
        finally:
            engine.close()
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
