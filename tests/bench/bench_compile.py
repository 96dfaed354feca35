"""Compile N rules: time to load (YAML, schema, checks) and to compile, and the entries produced.

    python -m tests.bench.bench_compile [N ...]      (default 100000)

Rules are spread over 16 policies and all four operations, with exact paths,
recursive paths, CIDRs with port ranges and unix paths, so every table grows.
"""
from __future__ import annotations

import argparse
import json
import time

from lsmguard.policy.compile import compile_policies
from lsmguard.policy.load import load_text

POLICIES = 16


def rule(i: int) -> str:
    kind = i % 6
    if kind == 0:
        return f"{{id: r{i}, action: deny, exec: {{paths: [/opt/app{i}/bin/tool]}}}}"
    if kind == 1:
        return f"{{id: r{i}, action: deny, exec: {{paths: [/srv/drop{i}/**]}}}}"
    if kind == 2:
        return f"{{id: r{i}, action: deny, open: {{paths: [/var/lib/svc{i}/secret], access: [write]}}}}"
    if kind == 3:
        return f"{{id: r{i}, action: deny, chmod: {{paths: [/etc/app{i}/**]}}}}"
    if kind == 4:
        a, b = (i >> 8) & 0xFF, i & 0xFF
        return f"{{id: r{i}, action: deny, connect: {{cidrs: [10.{a}.{b}.0/24], ports: ['{1024 + i % 5000}-{1100 + i % 5000}']}}}}"
    return f"{{id: r{i}, action: audit, connect: {{unix: [/run/svc{i}.sock]}}}}"


def corpus(n: int) -> str:
    docs = []
    for p in range(POLICIES):
        rules = "\n".join(f"    - {rule(i)}" for i in range(p, n, POLICIES))
        docs.append(f"apiVersion: lsmguard.example.org/v1\nkind: Policy\nmetadata: {{name: bench{p}}}\n"
                    f"spec:\n  mode: enforce\n  rules:\n{rules or '    []'}\n")
    return "---\n".join(docs)


def measure(n: int) -> dict[str, float | int]:
    text = corpus(n)
    started = time.perf_counter()
    loaded = load_text(text, "bench.yaml")
    loaded_at = time.perf_counter()
    compiled = compile_policies(loaded.policies)
    done = time.perf_counter()
    return {"rules": sum(len(p.rules) for p in loaded.policies), "load_s": round(loaded_at - started, 3),
            "compile_s": round(done - loaded_at, 3), "entries": compiled.entry_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(n) for n in args.sizes]
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'rules':>8} {'load (s)':>9} {'compile (s)':>12} {'entries':>9}")
    for r in results:
        print(f"{r['rules']:>8} {r['load_s']:>9} {r['compile_s']:>12} {r['entries']:>9}")


if __name__ == "__main__":
    main()
