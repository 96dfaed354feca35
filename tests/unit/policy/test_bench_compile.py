"""Keeps the compile benchmark runnable: a small size, checked for what it reports."""
from tests.bench.bench_compile import measure


def test_benchmark_compiles_every_rule_into_entries() -> None:
    result = measure(1200)
    assert result["rules"] == 1200
    # each rule names one object; a CIDR rule's interval is one entry more than its network
    assert result["entries"] >= 1200
