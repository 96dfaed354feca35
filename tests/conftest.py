"""Which tests this pytest collects: on the host, the unit tests and the kernel
lab (which runs tests/kernel inside VMs); inside a lab VM, tests/kernel only."""
import os

from hypothesis import settings

IN_GUEST = os.environ.get("LSMGUARD_LAB_GUEST") == "1"

collect_ignore_glob = ["lab/*", "unit/*", "bench/*"] if IN_GUEST else ["kernel/*"]

# CI must be reproducible: the same examples on every run (explore freely by hand).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
