"""Build hooks pyproject.toml cannot express: the cffi extension and the BPF object."""
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithBpf(build_py):
    """Compile bpf/ with `make bpf`; ship the object and the policy schema inside the package."""

    def run(self) -> None:
        super().run()
        subprocess.run(["make", "-C", str(ROOT), "bpf"], check=True)
        target = Path(self.build_lib) / "lsmguard" / "data"
        target.mkdir(parents=True, exist_ok=True)
        for name in ("lsmguard.bpf.o", "lsmguard-lock.bpf.o", "lsmguard-probe.bpf.o"):
            shutil.copy2(ROOT / "build" / name, target / name)
        shutil.copy2(ROOT / "policies" / "lsmguard.schema.json", target / "lsmguard.schema.json")


setup(
    cffi_modules=["loader/_ffi_build.py:ffibuilder"],
    cmdclass={"build_py": BuildPyWithBpf},
)
