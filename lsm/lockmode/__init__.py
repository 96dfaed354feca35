"""Lock mode: the kernel guard over lsmguard's own objects and daemon, and the daemon's
control channel through which `lsmguard lock` and `unlock` reach the process that owns it."""
