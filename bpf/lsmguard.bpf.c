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
#include "scratch.bpf.h"
#include "events.bpf.h"
#include "subjects.bpf.h"
#include "decide.bpf.h"
#include "inet.bpf.h"

/* include/linux/fs.h: FMODE_* are macros, so not in vmlinux.h */
#define LG_FMODE_READ 0x1
#define LG_FMODE_WRITE 0x2
#define LG_FMODE_EXEC 0x20 /* FMODE_EXEC, and __FMODE_EXEC in f_flags */
#define LG_UNIX_NAME_MASK 0x7f /* a power of two above LG_UNIX_NAME_MAX, to bound the copy */

char LICENSE[] SEC("license") = "GPL";

/*
 * Decide an operation on a resolved path in s->path, looked up in `nslots`
 * slots (open: the read and write slots its file mode asks for). Returns the
 * exe ids of the path when `slot_b` is LG_SLOT_SUBJECT_EXE (exec), via `exe_ids`.
 */
static __always_inline int lg_judge_path(__u32 op, struct lg_scratch *s, __u64 seq, const struct lg_config *config,
					 const struct lg_policy_set *set, __u32 generation, struct lg_path *path,
					 __u8 slot_a, __u8 slot_b, __u32 nslots, __u32 detail, __u64 *exe_ids)
{
	struct lg_access a = { .slots = { slot_a, slot_b }, .nslots = nslots };
	struct lg_outcome out = {};

	lg_lookup_in(config, path, generation, slot_a, slot_b, nslots, a.found);
	if (slot_b == LG_SLOT_SUBJECT_EXE) { /* not a rule slot: only tells which executable this is */
		*exe_ids = a.found[1].allow;
		a.nslots = 1;
	}
	if (!lg_scratch_intact(s, seq))
		path->flags |= LG_PATH_RACED;
	if (path->flags) {
		lg_stat_inc(LG_STAT_PATHS_UNRESOLVED);
		a.unresolved = true;
	}
	lg_decide(s, config, set, generation, &a, &out);

	if (out.audit)
		lg_emit_path_event(op, LG_DECISION_AUDIT, generation, out.audit_policy_id, out.audit_rule_id, path, detail);
	if (out.decision == LG_DECISION_ALLOW)
		return 0;
	lg_emit_path_event(op, out.decision, generation, out.policy_id, out.rule_id, path, detail);
	return out.decision == LG_DECISION_DENY ? -EPERM : 0;
}

static __always_inline int lg_check_path(__u32 op, struct dentry *dentry, struct vfsmount *mnt,
					 __u8 slot_a, __u8 slot_b, __u32 nslots, __u32 detail, __u64 *exe_ids)
{
	struct lg_policy_set *set;
	struct lg_config *config;
	struct lg_scratch *s;
	struct lg_path path;
	__u32 generation;
	__u64 seq;

	set = lg_policy_set_in_force(&config, &generation);
	if (!set)
		return 0; /* nothing applied: no path walk at all */
	s = lg_scratch_take(&seq);
	if (!s)
		return 0;
	lg_resolve_path(dentry, mnt, &s->path, &path);
	return lg_judge_path(op, s, seq, config, set, generation, &path, slot_a, slot_b, nslots, detail, exe_ids);
}

/* The unix socket `other` that a connect or send reaches: its bound path, or its @abstract name. */
static __always_inline int lg_check_unix_peer(struct sock *other)
{
	struct unix_sock *peer = (void *)other;
	struct unix_address *addr;
	struct lg_policy_set *set;
	struct lg_config *config;
	struct lg_scratch *s;
	struct lg_path path = {};
	struct dentry *dentry;
	__u32 generation, name_len;
	char *sun_path;
	__u64 seq, unused;
	int addr_len;

	dentry = BPF_CORE_READ(peer, path.dentry);
	if (dentry)
		return lg_check_path(LG_OP_CONNECT, dentry, BPF_CORE_READ(peer, path.mnt), LG_SLOT_UNIX, 0, 1, 0,
				     &unused);
	addr = BPF_CORE_READ(peer, addr);
	if (!addr)
		return 0; /* unnamed (socketpair): nothing a rule names */
	set = lg_policy_set_in_force(&config, &generation);
	if (!set)
		return 0;
	s = lg_scratch_take(&seq);
	if (!s)
		return 0;
	/* addr->name is a struct sockaddr_un of addr->len bytes: family, then NUL and the abstract name */
	addr_len = BPF_CORE_READ(addr, len);
	sun_path = (void *)addr + bpf_core_field_offset(struct unix_address, name) +
		   bpf_core_field_offset(struct sockaddr_un, sun_path);
	name_len = addr_len - bpf_core_field_offset(struct sockaddr_un, sun_path) - 1;
	if (addr_len <= (int)bpf_core_field_offset(struct sockaddr_un, sun_path) + 1 ||
	    name_len >= LG_UNIX_NAME_MAX)
		return 0; /* autobind names are abstract too and always at least 5 bytes; nothing else gets here */
	/* "@name" at the start of the buffer: constant offsets, nothing for the verifier to bound */
	path.start = 0;
	s->path.data[0] = '@';
	barrier_var(name_len); /* keep the mask below: it is what bounds the copy for the verifier */
	name_len &= LG_UNIX_NAME_MASK;
	bpf_probe_read_kernel(&s->path.data[1], name_len, sun_path + 1);
	path.buf = &s->path;
	path.len = name_len + 1;
	return lg_judge_path(LG_OP_CONNECT, s, seq, config, set, generation, &path, LG_SLOT_UNIX, 0, 1, 0,
			     &unused);
}

SEC("lsm/bprm_creds_for_exec")
int BPF_PROG(lg_bprm_creds_for_exec, struct linux_binprm *bprm, int ret)
{
	struct lg_task_subject *subject;

	/* A new execve starts: forget what an earlier one that failed had matched. */
	subject = bpf_task_storage_get(&lg_task_subjects, bpf_get_current_task_btf(), 0, 0);
	if (subject)
		subject->pending = 0;
	return ret;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(lg_bprm_check_security, struct linux_binprm *bprm, int ret)
{
	struct file *file = BPF_CORE_READ(bprm, file);
	struct lg_task_subject *subject;
	__u64 exe_ids = 0;
	int verdict;

	if (ret)
		return ret;
	/* Called once per image: a script, then its interpreter. Both count as executables run. */
	verdict = lg_check_path(LG_OP_EXEC, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt),
				LG_SLOT_EXEC, LG_SLOT_SUBJECT_EXE, 2, 0, &exe_ids);
	if (exe_ids) {
		subject = bpf_task_storage_get(&lg_task_subjects, bpf_get_current_task_btf(), 0,
					       BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (subject)
			subject->pending |= exe_ids;
	}
	return verdict;
}

SEC("lsm/bprm_committed_creds")
int BPF_PROG(lg_bprm_committed_creds, struct linux_binprm *bprm)
{
	struct lg_task_subject *subject;

	/* The exec can no longer fail: what it ran is now part of the task's lineage. */
	subject = bpf_task_storage_get(&lg_task_subjects, bpf_get_current_task_btf(), 0, 0);
	if (subject) {
		subject->exe_ids |= subject->pending;
		subject->pending = 0;
	}
	return 0;
}

SEC("lsm/task_alloc")
int BPF_PROG(lg_task_alloc, struct task_struct *task, unsigned long clone_flags, int ret)
{
	struct lg_task_subject *child;
	__u64 ids;

	if (ret)
		return ret;
	/* Descendants and threads carry what their creator ran. */
	ids = lg_task_exe_ids(bpf_get_current_task_btf());
	if (!ids)
		return 0;
	child = bpf_task_storage_get(&lg_task_subjects, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (child)
		child->exe_ids = ids;
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(lg_file_open, struct file *file, int ret)
{
	__u32 fmode = BPF_CORE_READ(file, f_mode);
	__u32 fflags = BPF_CORE_READ(file, f_flags);
	bool reads = fmode & LG_FMODE_READ, writes = fmode & LG_FMODE_WRITE;
	__u64 unused;

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
	/* overlayfs opening its layer's file for an open decided on the overlay path (newer kernels) */
	if (lg_mount_is_private_clone(BPF_CORE_READ(file, f_path.mnt)))
		return 0;
	return lg_check_path(LG_OP_OPEN, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt),
			     reads ? LG_SLOT_OPEN_READ : LG_SLOT_OPEN_WRITE, LG_SLOT_OPEN_WRITE,
			     reads && writes ? 2 : 1, fmode & (LG_FMODE_READ | LG_FMODE_WRITE), &unused);
}

SEC("lsm/path_chmod")
int BPF_PROG(lg_path_chmod, const struct path *path, umode_t mode, int ret)
{
	__u64 unused;

	if (ret)
		return ret;
	return lg_check_path(LG_OP_CHMOD, BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt),
			     LG_SLOT_CHMOD, 0, 1, mode, &unused);
}

SEC("lsm/socket_connect")
int BPF_PROG(lg_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return lg_check_inet_connect(sock, address, addrlen);
}

/*
 * Unix sockets are decided on the socket actually reached, not on the
 * address the caller wrote: the kernel has already resolved relative paths
 * and symlinks. A stream or seqpacket connect, and every datagram sent
 * (connected or not), pass here.
 */
SEC("lsm/unix_stream_connect")
int BPF_PROG(lg_unix_stream_connect, struct sock *sock, struct sock *other, struct sock *newsk, int ret)
{
	if (ret)
		return ret;
	return lg_check_unix_peer(other);
}

SEC("lsm/unix_may_send")
int BPF_PROG(lg_unix_may_send, struct socket *sock, struct socket *other, int ret)
{
	if (ret)
		return ret;
	return lg_check_unix_peer(BPF_CORE_READ(other, sk));
}
