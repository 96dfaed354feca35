"""What lsmguard keeps on the host beside the kernel: the policy files, the sets in
force (by generation), the rules added from the command line, and the one transaction
that changes the files and the kernel together."""
