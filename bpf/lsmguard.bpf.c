// SPDX-License-Identifier: GPL-2.0
/* lsmguard's kernel side: one CO-RE object, one program per LSM hook. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "lsmguard/abi.h"
#include "lsmguard/siphash.h"
#include "maps.bpf.h"
#include "path.bpf.h"
#include "events.bpf.h"
#include "decide.bpf.h"

/* include/linux/fs.h: FMODE_* are macros, so not in vmlinux.h */
#define LG_FMODE_READ 0x1
#define LG_FMODE_WRITE 0x2
#define LG_FMODE_EXEC 0x20 /* FMODE_EXEC, and __FMODE_EXEC in f_flags */

char LICENSE[] SEC("license") = "GPL";

SEC("lsm/bprm_check_security")
int BPF_PROG(lg_bprm_check_security, struct linux_binprm *bprm, int ret)
{
	struct file *file = BPF_CORE_READ(bprm, file);

	if (ret)
		return ret;
	return lg_check_path(LG_OP_EXEC, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt),
			     LG_SLOT_EXEC, 0, 1, 0);
}

SEC("lsm/file_open")
int BPF_PROG(lg_file_open, struct file *file, int ret)
{
	__u32 fmode = BPF_CORE_READ(file, f_mode);
	__u32 fflags = BPF_CORE_READ(file, f_flags);
	bool reads = fmode & LG_FMODE_READ, writes = fmode & LG_FMODE_WRITE;

	if (ret)
		return ret;
	/*
	 * The kernel opening a program for execve: exec rules govern that
	 * (bprm_check_security). 6.1 marks it in f_flags (__FMODE_EXEC) only;
	 * newer kernels also in f_mode.
	 */
	if ((fmode & LG_FMODE_EXEC) || (fflags & LG_FMODE_EXEC))
		return 0;
	if (!reads && !writes)
		return 0;
	return lg_check_path(LG_OP_OPEN, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt),
			     reads ? LG_SLOT_OPEN_READ : LG_SLOT_OPEN_WRITE, LG_SLOT_OPEN_WRITE,
			     reads && writes ? 2 : 1, fmode & (LG_FMODE_READ | LG_FMODE_WRITE));
}

SEC("lsm/path_chmod")
int BPF_PROG(lg_path_chmod, const struct path *path, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return lg_check_path(LG_OP_CHMOD, BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt),
			     LG_SLOT_CHMOD, 0, 1, mode);
}
