"""Which tests this pytest collects: on the host, the unit tests and the kernel
lab (which runs tests/kernel inside VMs); inside a lab VM, tests/kernel only."""
import os

from hypothesis import settings

IN_GUEST = os.environ.get("LSMGUARD_LAB_GUEST") == "1"

collect_ignore_glob = ["lab/*", "unit/*", "bench/*"] if IN_GUEST else ["kernel/*"]

# No per-example deadline: the host's tests share two cores with the lab's guests, and an
# example descheduled for 200 ms is not a slow example. CI must be reproducible: the same
# examples on every run (explore freely by hand).
settings.register_profile("lsmguard", deadline=None)
settings.register_profile("ci", parent=settings.get_profile("lsmguard"), derandomize=True, database=None)
settings.load_profile("ci" if os.environ.get("CI") else "lsmguard")
