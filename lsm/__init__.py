"""lsmguard: Linux security policy enforced by BPF LSM programs."""

__version__ = "0.1.0"
