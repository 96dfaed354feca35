// SPDX-License-Identifier: GPL-2.0
/*
 * `lsmguard doctor`'s proof that this host runs BPF LSM programs: the smallest
 * one, loaded and attached for a moment, then detached. It decides nothing.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("lsm/task_alloc")
int BPF_PROG(lg_probe_task_alloc, struct task_struct *task, unsigned long clone_flags, int ret)
{
	return ret;
}
