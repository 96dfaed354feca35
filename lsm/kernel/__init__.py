"""The kernel side as Python drives it: the engine (load, adopt, pin, apply atomically),
the map entries a compiled set becomes, rule hits, files bound by inode, executable
lineage, and the host's mount table that rule paths are translated with."""
