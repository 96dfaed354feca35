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
#include "drift.bpf.h"
#include "inet.bpf.h"

/* include/uapi/asm-generic/mman-common.h and include/linux/mm.h */
#define LG_PROT_EXEC 0x4
#define LG_VM_EXEC 0x4
#define LG_RENAME_EXCHANGE 0x2 /* include/uapi/linux/fs.h */
/* include/linux/fs.h: FMODE_* are macros, so not in vmlinux.h */
#define LG_FMODE_READ 0x1
#define LG_FMODE_WRITE 0x2
#define LG_FMODE_EXEC 0x20 /* FMODE_EXEC, and __FMODE_EXEC in f_flags */
#define LG_FMODE_CREATED 0x100000
#define LG_UNIX_NAME_MASK 0x7f /* a power of two above LG_UNIX_NAME_MAX, to bound the copy */

char LICENSE[] SEC("license") = "GPL";

/* The policy set in force, and the scratch area for one decision; NULL: nothing to decide. */
static __always_inline struct lg_policy_set *lg_begin(struct lg_config **config, __u32 *generation,
						       struct lg_scratch **s, __u64 *seq)
{
	struct lg_policy_set *set = lg_policy_set_in_force(config, generation);

	if (!set)
		return NULL;
	*s = lg_scratch_take(seq);
	return *s ? set : NULL;
}

/* A path the walk could not finish, or whose scratch a preempting program tore: flagged and counted. */
static __always_inline bool lg_path_unresolved(struct lg_scratch *s, __u64 seq, struct lg_path *path)
{
	if (!lg_scratch_intact(s, seq))
		path->flags |= LG_PATH_RACED;
	if (!path->flags)
		return false;
	lg_stat_inc(LG_STAT_PATHS_UNRESOLVED);
	return true;
}

/* Decide access `a` to `path`, report what the policies say, and return the hook's verdict. */
static __always_inline int lg_conclude_path(__u32 op, struct lg_scratch *s, const struct lg_config *config,
					    const struct lg_policy_set *set, __u32 generation,
					    const struct lg_access *a, const struct lg_path *path, __u32 detail)
{
	struct lg_outcome out = {};

	lg_decide(s, config, set, generation, a, &out);
	if (out.audit)
		lg_emit_path_event(op, LG_DECISION_AUDIT, generation, out.audit_policy_id, out.audit_rule_id, path, detail,
				   a->writer);
	if (out.decision == LG_DECISION_ALLOW)
		return 0;
	lg_emit_path_event(op, out.decision, generation, out.policy_id, out.rule_id, path, detail, a->writer);
	return out.decision == LG_DECISION_DENY ? -EPERM : 0;
}

/*
 * Decide an operation on a resolved path in s->path, looked up in `nslots`
 * slots (open: the read and write slots its file mode asks for). Returns the
 * exe ids of the path when `slot_b` is LG_SLOT_SUBJECT_EXE (exec), via `exe_ids`.
 * With `rules_only`, a policy's default does not refuse (executable mappings).
 * With `is_code` (exec, executable mappings), drift options decide on the
 * file's inode `code` too.
 */
static __always_inline int lg_judge_path(__u32 op, struct lg_scratch *s, __u64 seq, const struct lg_config *config,
					 const struct lg_policy_set *set, __u32 generation, struct lg_path *path,
					 __u8 slot_a, __u8 slot_b, __u32 nslots, __u32 detail, __u64 *exe_ids,
					 bool rules_only, bool is_code, struct inode *code)
{
	struct lg_access a = { .slots = { slot_a, slot_b }, .nslots = nslots, .rules_only = rules_only };

	lg_lookup_in(config, path, generation, slot_a, slot_b, nslots, set->bound_inodes != 0, a.found);
	if (slot_b == LG_SLOT_SUBJECT_EXE) { /* not a rule slot: only tells which executable this is */
		*exe_ids = a.found[1].allow;
		a.nslots = 1;
	}
	/* code looks up one slot: the second holds what drift options say (a constant choice per hook) */
	if (is_code) {
		lg_drift_of(set, generation, code, &a.found[1], &a.writer);
		a.slots[1] = LG_SLOT_DRIFT;
		a.nslots = 2;
	}
	a.unresolved = lg_path_unresolved(s, seq, path);
	return lg_conclude_path(op, s, config, set, generation, &a, path, detail);
}

static __always_inline int lg_check_path(__u32 op, struct dentry *dentry, struct vfsmount *mnt,
					 __u8 slot_a, __u8 slot_b, __u32 nslots, __u32 detail, __u64 *exe_ids,
					 bool rules_only, bool is_code, struct inode *code)
{
	struct lg_policy_set *set;
	struct lg_config *config;
	struct lg_scratch *s;
	struct lg_path path;
	__u32 generation;
	__u64 seq;

	set = lg_begin(&config, &generation, &s, &seq);
	if (!set)
		return 0; /* nothing applied: no path walk at all */
	lg_resolve_path(dentry, mnt, &s->path, &path);
	return lg_judge_path(op, s, seq, config, set, generation, &path, slot_a, slot_b, nslots, detail, exe_ids,
			     rules_only, is_code, code);
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
				     &unused, false, false, NULL);
	addr = BPF_CORE_READ(peer, addr);
	if (!addr)
		return 0; /* unnamed (socketpair): nothing a rule names */
	set = lg_begin(&config, &generation, &s, &seq);
	if (!set)
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
			     &unused, false, false, NULL);
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
				LG_SLOT_EXEC, LG_SLOT_SUBJECT_EXE, 2, 0, &exe_ids, false, true, bprm->file->f_inode);
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

/* What an open event reports of its file mode. */
static __always_inline __u32 lg_open_mode(__u32 fmode)
{
	return (fmode & LG_FMODE_READ ? LG_OPEN_READ : 0) | (fmode & LG_FMODE_WRITE ? LG_OPEN_WRITE : 0) |
	       (fmode & LG_FMODE_CREATED ? LG_OPEN_CREATED : 0);
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
	/* marked before anything below returns: a write is drift whatever the rules say of its open */
	if (writes && lg_drift_in_force())
		lg_mark_written(file->f_inode);
	/*
	 * The kernel opening a program for execve: exec rules govern that
	 * (bprm_check_security). 6.1 marks it in f_flags (__FMODE_EXEC) only;
	 * newer kernels also in f_mode.
	 */
	if ((fmode & LG_FMODE_EXEC) || (fflags & LG_FMODE_EXEC))
		return 0;
	if (!reads && !writes)
		return 0;
	/*
	 * overlayfs opening its layer's file for an open already decided on the
	 * overlay path: on a private clone mount (6.6 and later), or before that
	 * under the overlay's own path but with the layer's inode.
	 */
	if (lg_mount_is_private_clone(BPF_CORE_READ(file, f_path.mnt)) ||
	    BPF_CORE_READ(file, f_inode) != BPF_CORE_READ(file, f_path.dentry, d_inode))
		return 0;
	return lg_check_path(LG_OP_OPEN, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt),
			     reads ? LG_SLOT_OPEN_READ : LG_SLOT_OPEN_WRITE, LG_SLOT_OPEN_WRITE,
			     reads && writes ? 2 : 1, lg_open_mode(fmode), &unused, false, false, NULL);
}

SEC("lsm/path_chmod")
int BPF_PROG(lg_path_chmod, const struct path *path, umode_t mode, int ret)
{
	__u64 unused;

	if (ret)
		return ret;
	return lg_check_path(LG_OP_CHMOD, BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt),
			     LG_SLOT_CHMOD, 0, 1, mode, &unused, false, false, NULL);
}

/*
 * A file mapped executable runs code as surely as an exec does: `ld.so
 * /path/bin` maps the binary itself. Exec rules decide on the file; a
 * policy's default does not, since every process maps the libraries that an
 * exec allow-list never names (that list already decides which loader runs).
 */
static __always_inline int lg_check_exec_mapping(struct file *file, __u32 how)
{
	struct dentry *dentry;
	struct vfsmount *mnt;
	__u64 unused;

	/* The process's own executable: decided when it was executed (execve maps it, once allowed). */
	if (file == BPF_CORE_READ(bpf_get_current_task_btf(), mm, exe_file))
		return 0;
	dentry = BPF_CORE_READ(file, f_path.dentry);
	mnt = BPF_CORE_READ(file, f_path.mnt);

	/*
	 * overlayfs (6.6 and later) maps its layer's file in place of the one the
	 * user opened: a backing file on a private clone mount, which keeps the
	 * user's path right after its struct file (fs/internal.h: struct
	 * backing_file). mprotect then finds the backing file in the mapping.
	 * Older overlayfs gave its layer's file the user's path itself, so no
	 * mapped file is on a private clone there. The layout is computed, not
	 * relocated: a type missing from vmlinux (6.1) would make libbpf search
	 * module BTF, which needs CAP_SYS_ADMIN that the service does not have.
	 */
	if (lg_mount_is_private_clone(mnt)) {
		struct path *user_path = (void *)file + bpf_core_type_size(struct file);

		dentry = BPF_CORE_READ(user_path, dentry);
		mnt = BPF_CORE_READ(user_path, mnt);
	}
	return lg_check_path(LG_OP_MMAP, dentry, mnt, LG_SLOT_EXEC, 0, 1, how, &unused, true, true, file->f_inode);
}

SEC("lsm/mmap_file")
int BPF_PROG(lg_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot, unsigned long flags,
	     int ret)
{
	if (ret)
		return ret;
	if (!file || !(prot & LG_PROT_EXEC))
		return 0;
	return lg_check_exec_mapping(file, LG_MAP_MMAP);
}

SEC("lsm/file_mprotect")
int BPF_PROG(lg_file_mprotect, struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot, int ret)
{
	struct file *file;

	if (ret)
		return ret;
	/* Mapped readable, then made executable: the same decision as mapping it so. */
	if (!(prot & LG_PROT_EXEC) || (BPF_CORE_READ(vma, vm_flags) & LG_VM_EXEC))
		return 0;
	file = vma->vm_file; /* a BTF pointer, which inode storage (drift) needs */
	if (!file)
		return 0;
	return lg_check_exec_mapping(file, LG_MAP_MPROTECT);
}

/*
 * Fold what the deny rules of two path slots say about a name into `merged`
 * (deny bits, and the first denying rule), and note in `could_refuse` the
 * policies whose deny rules in those slots could match a name not resolved.
 */
static __always_inline void lg_merge_name_denials(const struct lg_config *config, const struct lg_policy_set *set,
						  __u32 generation, const struct lg_path *path, __u8 slot_a,
						  __u8 slot_b, struct lg_masks *merged, __u64 *could_refuse)
{
	struct lg_masks found[LG_LOOKUP_SLOTS];
	__u8 slots[LG_LOOKUP_SLOTS] = { slot_a, slot_b };
	__u32 i;

	lg_lookup_in(config, path, generation, slot_a, slot_b, LG_LOOKUP_SLOTS, set->bound_inodes != 0, found);
	for (i = 0; i < LG_LOOKUP_SLOTS; i++) {
		if (found[i].deny && merged->deny_rule == LG_NO_RULE)
			merged->deny_rule = found[i].deny_rule;
		merged->deny |= found[i].deny;
		*could_refuse |= set->unresolved_refuse[slots[i]] & ~set->default_deny[slots[i]];
	}
}

/*
 * A deny rule names a path; a new name for the same file (a hard link, or
 * the file renamed, or moved out of a recursive rule's tree) would walk
 * around it. Refused for every process, since names serve every process:
 * any enforce-mode policy whose deny rules name the file refuses.
 */
static __always_inline int lg_check_new_name(__u32 op, struct dentry *dentry, struct vfsmount *mnt)
{
	struct lg_access a = { .slots = { LG_SLOT_EXEC }, .nslots = 1, .rules_only = true, .everyone = true };
	struct lg_policy_set *set;
	struct lg_config *config;
	struct lg_scratch *s;
	struct lg_path path;
	__u64 seq, could_refuse = 0;
	__u32 generation;

	set = lg_begin(&config, &generation, &s, &seq);
	if (!set)
		return 0;
	lg_resolve_path(dentry, mnt, &s->path, &path);
	a.found[0].deny_rule = LG_NO_RULE;
	/* The path slots whose deny rules protect a file's name: every path operation's. */
	lg_merge_name_denials(config, set, generation, &path, LG_SLOT_EXEC, LG_SLOT_CHMOD, &a.found[0], &could_refuse);
	lg_merge_name_denials(config, set, generation, &path, LG_SLOT_OPEN_READ, LG_SLOT_OPEN_WRITE, &a.found[0],
			      &could_refuse);
	if (lg_path_unresolved(s, seq, &path))
		a.found[0].deny |= could_refuse; /* a deny rule in any of these slots could have matched */
	return lg_conclude_path(op, s, config, set, generation, &a, &path, 0); /* no audit masks: never audits */
}

SEC("lsm/path_link")
int BPF_PROG(lg_path_link, struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry,
	     int ret)
{
	if (ret)
		return ret;
	/* A hard link is made on its target's mount (else EXDEV): new_dir's. */
	return lg_check_new_name(LG_OP_LINK, old_dentry, BPF_CORE_READ(new_dir, mnt));
}

SEC("lsm/path_rename")
int BPF_PROG(lg_path_rename, const struct path *old_dir, struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, unsigned int flags, int ret)
{
	int verdict;

	if (ret)
		return ret;
	verdict = lg_check_new_name(LG_OP_RENAME, old_dentry, BPF_CORE_READ(old_dir, mnt));
	if (verdict || !(flags & LG_RENAME_EXCHANGE))
		return verdict;
	/* An exchange renames the other file too. */
	return lg_check_new_name(LG_OP_RENAME, new_dentry, BPF_CORE_READ(new_dir, mnt));
}

SEC("lsm/socket_connect")
int BPF_PROG(lg_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return lg_check_inet_connect(sock, address, addrlen);
}

SEC("lsm/socket_bind")
int BPF_PROG(lg_socket_bind, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return lg_check_inet_bind(sock, address, addrlen);
}

SEC("lsm/socket_listen")
int BPF_PROG(lg_socket_listen, struct socket *sock, int backlog, int ret)
{
	if (ret)
		return ret;
	return lg_check_inet_listen(sock);
}

/*
 * A datagram sent to an address (sendto, sendmsg, sendmmsg, io_uring) reaches
 * it without a connect, and so does a TCP Fast Open sendto: connect rules
 * decide on that address too. The kernel has copied it in already.
 */
SEC("lsm/socket_sendmsg")
int BPF_PROG(lg_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	struct sockaddr *address;

	if (ret)
		return ret;
	address = BPF_CORE_READ(msg, msg_name);
	if (!address)
		return 0; /* connected: decided at connect */
	return lg_check_inet_connect(sock, address, BPF_CORE_READ(msg, msg_namelen));
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
