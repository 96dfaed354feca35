// SPDX-License-Identifier: GPL-2.0
/* lsmguard's kernel side: one CO-RE object, one program per LSM hook. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "lsmguard/abi.h"
#include "lsmguard/siphash.h"
#include "maps.bpf.h"
#include "coalesce.bpf.h"
#include "path.bpf.h"
#include "scratch.bpf.h"
#include "events.bpf.h"
#include "subjects.bpf.h"
#include "decide.bpf.h"
#include "drift.bpf.h"
#include "file.bpf.h"
#include "names.bpf.h"
#include "inet.bpf.h"

/* include/uapi/asm-generic/mman-common.h and include/linux/mm.h */
#define LG_PROT_EXEC 0x4
#define LG_VM_EXEC 0x4
#define LG_RENAME_EXCHANGE 0x2 /* include/uapi/linux/fs.h */
#define LG_ATTR_MODE (1 << 0)  /* include/linux/fs.h */
#define LG_ATTR_UID (1 << 1)
#define LG_ATTR_GID (1 << 2)
#define LG_ATTR_SIZE (1 << 3)
/* include/linux/fs.h: FMODE_* are macros, so not in vmlinux.h */
#define LG_FMODE_READ 0x1
#define LG_FMODE_WRITE 0x2
#define LG_FMODE_EXEC 0x20 /* FMODE_EXEC, and __FMODE_EXEC in f_flags */
#define LG_FMODE_CREATED 0x100000
#define LG_UNIX_NAME_MASK 0x7f /* a power of two above LG_UNIX_NAME_MAX, to bound the copy */

char LICENSE[] SEC("license") = "GPL";

/*
 * An abstract unix socket's name, "@name", found as a path of no file
 * system: copied into the scratch and looked up. A global function, as
 * lg_find_file; `sun_path` is the address of the peer's sockaddr_un name.
 */
__noinline __u64 lg_find_abstract(__u64 question, __u64 sun_path, __u64 name_len)
{
	struct lg_policy_set *set;
	struct lg_config *config;
	struct lg_question q;
	struct lg_scratch *s;
	struct lg_path path = {};
	struct lg_access *a;
	__u32 generation, len = name_len;
	__u64 seq;

	set = lg_question_begin(question, 0, 0, &q, &config, &generation, &s, &seq);
	if (!set)
		return 0;
	/* "@name" at the start of the buffer: constant offsets, nothing for the verifier to bound */
	s->path.data[0] = '@';
	barrier_var(len); /* keep the mask below: it is what bounds the copy for the verifier */
	len &= LG_UNIX_NAME_MASK;
	bpf_probe_read_kernel(&s->path.data[1], len, (const void *)(sun_path + 1));
	path.buf = &s->path;
	path.len = len + 1;
	path.kind = LG_NAME_ABSTRACT;
	a = lg_access_of(&q, s);
	lg_lookup_one(s, config, &path, generation, LG_SLOT_UNIX, a->found);
	return lg_found(&q, s, seq, set, generation, a, &path);
}

/* The unix socket `other` that a connect or send reaches: its bound path, or its @abstract name. */
static __always_inline int lg_check_unix_peer(struct sock *other)
{
	const struct lg_question q = { .op = LG_OP_CONNECT, .slots = { LG_SLOT_UNIX }, .nslots = 1 };
	struct unix_sock *peer = (void *)other;
	struct unix_address *addr;
	struct dentry *dentry;
	__u32 name_len;
	char *sun_path;
	int addr_len;

	dentry = BPF_CORE_READ(peer, path.dentry);
	if (dentry)
		return lg_check_file(&q, dentry);
	addr = BPF_CORE_READ(peer, addr);
	if (!addr)
		return 0; /* unnamed (socketpair): nothing a rule names */
	/* addr->name is a struct sockaddr_un of addr->len bytes: family, then NUL and the abstract name */
	addr_len = BPF_CORE_READ(addr, len);
	sun_path = (void *)addr + bpf_core_field_offset(struct unix_address, name) +
		   bpf_core_field_offset(struct sockaddr_un, sun_path);
	name_len = addr_len - bpf_core_field_offset(struct sockaddr_un, sun_path) - 1;
	if (addr_len <= (int)bpf_core_field_offset(struct sockaddr_un, sun_path) + 1 ||
	    name_len >= LG_UNIX_NAME_MAX)
		return 0; /* autobind names are abstract too and always at least 5 bytes; nothing else gets here */
	return lg_check_found(&q, lg_find_abstract(lg_pack_question(&q), lg_address(sun_path), name_len));
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

/* Running the code of `file`, reached as `dentry`: exec rules and drift, with `flags` (LG_Q_*) more. */
static __always_inline int lg_check_exec(struct file *file, struct dentry *dentry, __u32 flags)
{
	struct inode *code = file->f_inode; /* a BTF pointer: inode storage (drift marks) needs it */
	const struct lg_question q = { .op = LG_OP_EXEC, .slots = { LG_SLOT_EXEC }, .nslots = 1,
				       .flags = LG_Q_CODE | flags, .code = lg_address(code), .mark = lg_mark_of(code) };
	int verdict = lg_check_file(&q, dentry);

	/* a subject's executable runs as that executable, whatever view of it was used */
	lg_add_pending_exe_ids(lg_exe_ids_asked(dentry));
	return verdict;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(lg_bprm_check_security, struct linux_binprm *bprm, int ret)
{
	if (ret || !lg_policy_applied())
		return ret;
	/*
	 * Called once per image: a script, then its interpreter. Both count as
	 * executables run. An overlay's file is decided here; its real file when
	 * overlayfs opens it for this exec (lg_file_open).
	 */
	return lg_check_exec(bprm->file, BPF_CORE_READ(bprm, file, f_path.dentry), 0);
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

/* What an open event reports of its file mode and flags. */
static __always_inline __u32 lg_open_mode(__u32 fmode, __u32 fflags, bool no_access)
{
	return (fmode & LG_FMODE_READ ? LG_OPEN_READ : 0) | (fmode & LG_FMODE_WRITE ? LG_OPEN_WRITE : 0) |
	       (fmode & LG_FMODE_CREATED ? LG_OPEN_CREATED : 0) | (no_access ? LG_OPEN_NO_ACCESS : 0) |
	       (fflags & LG_O_TRUNC ? LG_OPEN_TRUNCATE : 0);
}

/*
 * Opening a file for reading, writing, or neither (O_ACCMODE 3, ioctls only:
 * decided as both); O_TRUNC is a write. An overlay's real file, opened by
 * overlayfs for an open of one of its files, is decided by its own identity
 * too, by rules only (the host's allow-lists do not name the layers' files),
 * so that a deny rule naming the real file is not walked around; opened for
 * an exec, it is decided as that exec.
 */
SEC("lsm/file_open")
int BPF_PROG(lg_file_open, struct file *file, int ret)
{
	__u32 fmode, fflags;
	bool no_access, reads, writes, real;

	/* nothing applied: nothing to read (the file's identity costs a dozen reads) */
	if (ret || !lg_policy_applied())
		return ret;
	/* the hook's own argument: a pointer the verifier knows, read with loads on every kernel */
	fmode = file->f_mode;
	fflags = file->f_flags;
	real = lg_is_real_file(file);
	/*
	 * The kernel opening a program for execve: exec rules govern that
	 * (bprm_check_security). It is marked in f_flags (__FMODE_EXEC), never
	 * in f_mode; the overlay's real file of an exec is decided as the exec.
	 */
	if (fflags & LG_FMODE_EXEC)
		return real ? lg_check_exec(file, lg_file_dentry(file), LG_Q_RULES_ONLY) : 0;
	no_access = !(fmode & (LG_FMODE_READ | LG_FMODE_WRITE));
	reads = (fmode & LG_FMODE_READ) || no_access;
	writes = (fmode & LG_FMODE_WRITE) || no_access || (fflags & LG_O_TRUNC);
	{
		const struct lg_question q = {
			.op = LG_OP_OPEN, .slots = { reads ? LG_SLOT_OPEN_READ : LG_SLOT_OPEN_WRITE, LG_SLOT_OPEN_WRITE },
			.nslots = reads && writes ? 2 : 1, .detail = lg_open_mode(fmode, fflags, no_access),
			.flags = real ? LG_Q_RULES_ONLY : 0,
		};

		return lg_check_file(&q, lg_file_dentry(file));
	}
}

/* An open for writing marks the file while a drift option is in force (a program of its own: it decides nothing). */
SEC("lsm/file_open")
int BPF_PROG(lg_file_open_mark, struct file *file, int ret)
{
	if (!ret && (file->f_mode & LG_FMODE_WRITE) && lg_drift_in_force())
		lg_mark_written(file->f_inode);
	return ret;
}

/* Changes of a file's permissions: its mode, its owner, its ACLs and capabilities. All chmod rules. */
static __always_inline int lg_check_permissions(__u32 op, struct dentry *dentry, __u32 detail)
{
	const struct lg_question q = { .op = op, .slots = { LG_SLOT_CHMOD }, .nslots = 1, .detail = detail };

	return lg_check_file(&q, dentry);
}

SEC("lsm/path_chmod")
int BPF_PROG(lg_path_chmod, const struct path *path, umode_t mode, int ret)
{
	if (ret || !lg_policy_applied())
		return ret;
	return lg_check_permissions(LG_OP_CHMOD, BPF_CORE_READ(path, dentry), mode);
}

/* Who owns a file decides whose permission bits apply: chmod rules decide chown too. */
SEC("lsm/path_chown")
int BPF_PROG(lg_path_chown, const struct path *path, __u64 uid, __u64 gid, int ret)
{
	if (ret || !lg_policy_applied())
		return ret;
	return lg_check_permissions(LG_OP_CHOWN, BPF_CORE_READ(path, dentry), 0);
}

/* 6.1 sets and removes POSIX ACLs through the xattr hooks; later kernels through the ACL hooks below. */
SEC("lsm/inode_setxattr")
int BPF_PROG(lg_inode_setxattr, void *idmap, struct dentry *dentry, const char *name, const void *value,
	     size_t size, int flags, int ret)
{
	__u32 kind;

	if (ret || !lg_policy_applied())
		return ret;
	kind = lg_permission_xattr(name);
	return kind ? lg_check_permissions(LG_OP_SETXATTR, dentry, kind) : 0;
}

SEC("lsm/inode_removexattr")
int BPF_PROG(lg_inode_removexattr, void *idmap, struct dentry *dentry, const char *name, int ret)
{
	__u32 kind;

	if (ret || !lg_policy_applied())
		return ret;
	kind = lg_permission_xattr(name);
	return kind ? lg_check_permissions(LG_OP_SETXATTR, dentry, kind | LG_XATTR_REMOVED) : 0;
}

SEC("lsm/inode_set_acl")
int BPF_PROG(lg_inode_set_acl, void *idmap, struct dentry *dentry, const char *acl_name, struct posix_acl *kacl,
	     int ret)
{
	if (ret || !lg_policy_applied())
		return ret;
	return lg_check_permissions(LG_OP_SETXATTR, dentry, lg_permission_xattr(acl_name));
}

SEC("lsm/inode_remove_acl")
int BPF_PROG(lg_inode_remove_acl, void *idmap, struct dentry *dentry, const char *acl_name, int ret)
{
	if (ret || !lg_policy_applied())
		return ret;
	return lg_check_permissions(LG_OP_SETXATTR, dentry, lg_permission_xattr(acl_name) | LG_XATTR_REMOVED);
}

/*
 * A file mapped executable runs code as surely as an exec does: `ld.so
 * /path/bin` maps the binary itself. Exec rules decide on the file; a
 * policy's default does not, since every process maps the libraries that an
 * exec allow-list never names (that list already decides which loader runs).
 * `alt`: the file's other identity (an overlay's real file, or the overlay
 * file a real one serves), decided by its own rules too: by rules only, what
 * either identity's deny rules say, the mapping's does; `inner`: the real
 * file behind a second overlay, the same way. Drift, which reads the inode
 * the identities share, is decided once.
 */
static __always_inline int lg_check_exec_mapping(struct file *file, struct dentry *alt, struct dentry *inner,
						 __u32 how)
{
	struct inode *code = file->f_inode;
	const struct lg_question q = { .op = LG_OP_MMAP, .slots = { LG_SLOT_EXEC }, .nslots = 1, .detail = how,
				       .flags = LG_Q_RULES_ONLY | LG_Q_CODE, .code = lg_address(code),
				       .mark = lg_mark_of(code) };
	const struct lg_question other = { .op = LG_OP_MMAP, .slots = { LG_SLOT_EXEC }, .nslots = 1, .detail = how,
					   .flags = LG_Q_RULES_ONLY };
	int verdict;

	/* The process's own executable: decided when it was executed (execve maps it, once allowed). */
	if (file == BPF_CORE_READ(bpf_get_current_task_btf(), mm, exe_file))
		return 0;
	verdict = lg_check_file(&q, lg_file_dentry(file));
	if (!verdict && alt)
		verdict = lg_check_file(&other, alt);
	if (!verdict && inner)
		verdict = lg_check_file(&other, inner);
	return verdict;
}

SEC("lsm/mmap_file")
int BPF_PROG(lg_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot, unsigned long flags,
	     int ret)
{
	struct file *real, *inner;

	if (ret || !lg_policy_applied())
		return ret;
	if (!file || !(prot & LG_PROT_EXEC))
		return 0;
	/*
	 * The mapping will hold the overlay's real file: decided with it. Overlays
	 * stack two deep (FILESYSTEM_MAX_STACK_DEPTH), and an overlay's mmap hands
	 * the mapping down without this hook: the file behind both is decided too.
	 */
	real = lg_overlay_real_file(file);
	inner = real ? lg_overlay_real_file(real) : NULL;
	return lg_check_exec_mapping(file, real ? lg_file_dentry(real) : NULL, inner ? lg_file_dentry(inner) : NULL,
				     LG_MAP_MMAP);
}

SEC("lsm/file_mprotect")
int BPF_PROG(lg_file_mprotect, struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot, int ret)
{
	struct file *file;

	if (ret || !lg_policy_applied())
		return ret;
	/* Mapped readable, then made executable: the same decision as mapping it so. */
	if (!(prot & LG_PROT_EXEC) || (BPF_CORE_READ(vma, vm_flags) & LG_VM_EXEC))
		return 0;
	file = vma->vm_file; /* a BTF pointer, which inode storage (drift) needs */
	if (!file)
		return 0;
	/* an overlay's mapping holds its real file: decided with the overlay file it serves */
	return lg_check_exec_mapping(file, lg_user_dentry(file), NULL, LG_MAP_MPROTECT);
}

SEC("lsm/path_truncate")
int BPF_PROG(lg_path_truncate, const struct path *path, int ret)
{
	if (ret || !lg_policy_applied())
		return ret;
	return lg_check_write(LG_OP_TRUNCATE, BPF_CORE_READ(path, dentry), 0);
}

/* O_TRUNC and ftruncate(2) from 6.2: truncate(2) still passes path_truncate. */
SEC("lsm/file_truncate")
int BPF_PROG(lg_file_truncate, struct file *file, int ret)
{
	if (ret || !lg_policy_applied())
		return ret;
	return lg_check_write(LG_OP_TRUNCATE, lg_file_dentry(file), 0);
}

SEC("lsm/path_unlink")
int BPF_PROG(lg_path_unlink, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return lg_check_write(LG_OP_UNLINK, dentry, 0);
}

SEC("lsm/path_rmdir")
int BPF_PROG(lg_path_rmdir, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return lg_check_write(LG_OP_UNLINK, dentry, LG_UNLINK_DIR);
}

/* A new name: a device node, FIFO or socket file, and O_CREAT's new file. */
SEC("lsm/path_mknod")
int BPF_PROG(lg_path_mknod, const struct path *dir, struct dentry *dentry, umode_t mode, unsigned int dev, int ret)
{
	if (ret)
		return ret;
	return lg_check_write(LG_OP_CREATE, dentry, mode & LG_S_IFMT);
}

SEC("lsm/path_mkdir")
int BPF_PROG(lg_path_mkdir, const struct path *dir, struct dentry *dentry, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return lg_check_write(LG_OP_CREATE, dentry, LG_S_IFDIR);
}

SEC("lsm/path_symlink")
int BPF_PROG(lg_path_symlink, const struct path *dir, struct dentry *dentry, const char *old_name, int ret)
{
	if (ret)
		return ret;
	return lg_check_write(LG_OP_CREATE, dentry, LG_S_IFLNK);
}

/* A hard link: the file gets another name (which its deny rules follow), and the new name is written. */
SEC("lsm/path_link")
int BPF_PROG(lg_path_link, struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry,
	     int ret)
{
	int verdict;

	if (ret)
		return ret;
	verdict = lg_check_new_name(LG_OP_LINK, old_dentry);
	return verdict ? verdict : lg_check_write(LG_OP_LINK, new_dentry, LG_NAME_TARGET);
}

/*
 * A rename, source side: the file gets another name (its deny rules follow
 * it), and its old name is removed; a directory moved takes every name
 * below it along.
 */
SEC("lsm/path_rename")
int BPF_PROG(lg_path_rename, const struct path *old_dir, struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, unsigned int flags, int ret)
{
	int verdict;

	if (ret)
		return ret;
	verdict = lg_check_new_name(LG_OP_RENAME, old_dentry);
	if (!verdict)
		verdict = lg_check_name_removed(LG_OP_RENAME, old_dentry, LG_NAME_SOURCE);
	if (verdict || !(flags & LG_RENAME_EXCHANGE))
		return verdict;
	/* An exchange renames the other file too. */
	verdict = lg_check_new_name(LG_OP_RENAME, new_dentry);
	return verdict ? verdict : lg_check_name_removed(LG_OP_RENAME, new_dentry, LG_NAME_SOURCE);
}

/* A rename, target side (a second program on the same hook): the name made or replaced is written. */
SEC("lsm/path_rename")
int BPF_PROG(lg_path_rename_target, const struct path *old_dir, struct dentry *old_dentry,
	     const struct path *new_dir, struct dentry *new_dentry, unsigned int flags, int ret)
{
	int verdict;

	if (ret)
		return ret;
	verdict = lg_check_name_removed(LG_OP_RENAME, new_dentry, LG_NAME_TARGET);
	if (verdict || !(flags & LG_RENAME_EXCHANGE))
		return verdict;
	return lg_check_name_removed(LG_OP_RENAME, old_dentry, LG_NAME_TARGET);
}

/*
 * Changes made on another's behalf. overlayfs makes, removes, renames,
 * truncates and re-modes the files of its upper layer itself, after the
 * path hooks above saw only the overlay's own file: it calls the inode hooks
 * alone, with its mounter's credentials in place of the caller's. So do the
 * kernel's file servers (nfsd, ksmbd). A system call made by a task with
 * its own credentials passed a path hook first; only a change made under
 * overridden credentials is decided here, on the real file, as the path
 * hooks decide theirs -- an unprivileged user's overlay whose upper layer is
 * a write-protected directory changes nothing there.
 */
static __always_inline bool lg_on_behalf(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return BPF_CORE_READ(task, cred) != BPF_CORE_READ(task, real_cred);
}

SEC("lsm/inode_create")
int BPF_PROG(lg_inode_create, struct inode *dir, struct dentry *dentry, umode_t mode, int ret)
{
	if (ret || !lg_on_behalf())
		return ret;
	return lg_check_write(LG_OP_CREATE, dentry, mode & LG_S_IFMT);
}

SEC("lsm/inode_mknod")
int BPF_PROG(lg_inode_mknod, struct inode *dir, struct dentry *dentry, umode_t mode, dev_t dev, int ret)
{
	if (ret || !lg_on_behalf())
		return ret;
	return lg_check_write(LG_OP_CREATE, dentry, mode & LG_S_IFMT);
}

SEC("lsm/inode_mkdir")
int BPF_PROG(lg_inode_mkdir, struct inode *dir, struct dentry *dentry, umode_t mode, int ret)
{
	if (ret || !lg_on_behalf())
		return ret;
	return lg_check_write(LG_OP_CREATE, dentry, LG_S_IFDIR);
}

SEC("lsm/inode_symlink")
int BPF_PROG(lg_inode_symlink, struct inode *dir, struct dentry *dentry, const char *old_name, int ret)
{
	if (ret || !lg_on_behalf())
		return ret;
	return lg_check_write(LG_OP_CREATE, dentry, LG_S_IFLNK);
}

SEC("lsm/inode_unlink")
int BPF_PROG(lg_inode_unlink, struct inode *dir, struct dentry *dentry, int ret)
{
	if (ret || !lg_on_behalf())
		return ret;
	return lg_check_write(LG_OP_UNLINK, dentry, 0);
}

SEC("lsm/inode_rmdir")
int BPF_PROG(lg_inode_rmdir, struct inode *dir, struct dentry *dentry, int ret)
{
	if (ret || !lg_on_behalf())
		return ret;
	return lg_check_write(LG_OP_UNLINK, dentry, LG_UNLINK_DIR);
}

SEC("lsm/inode_link")
int BPF_PROG(lg_inode_link, struct dentry *old_dentry, struct inode *dir, struct dentry *new_dentry, int ret)
{
	int verdict;

	if (ret || !lg_on_behalf())
		return ret;
	verdict = lg_check_new_name(LG_OP_LINK, old_dentry);
	return verdict ? verdict : lg_check_write(LG_OP_LINK, new_dentry, LG_NAME_TARGET);
}

/* The kernel calls inode_rename a second time, its sides swapped, for an exchange. */
SEC("lsm/inode_rename")
int BPF_PROG(lg_inode_rename, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir,
	     struct dentry *new_dentry, int ret)
{
	int verdict;

	if (ret || !lg_on_behalf())
		return ret;
	verdict = lg_check_new_name(LG_OP_RENAME, old_dentry);
	return verdict ? verdict : lg_check_name_removed(LG_OP_RENAME, old_dentry, LG_NAME_SOURCE);
}

SEC("lsm/inode_rename")
int BPF_PROG(lg_inode_rename_target, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir,
	     struct dentry *new_dentry, int ret)
{
	if (ret || !lg_on_behalf())
		return ret;
	return lg_check_name_removed(LG_OP_RENAME, new_dentry, LG_NAME_TARGET);
}

/* A change of size is writing the file; of mode or owner, its permissions. */
static __always_inline int lg_check_setattr(struct dentry *dentry, struct iattr *attr)
{
	unsigned int valid;
	int verdict;

	if (!lg_policy_applied() || !lg_on_behalf())
		return 0;
	valid = BPF_CORE_READ(attr, ia_valid);
	if (valid & LG_ATTR_SIZE) {
		verdict = lg_check_write(LG_OP_TRUNCATE, dentry, 0);
		if (verdict)
			return verdict;
	}
	if (valid & LG_ATTR_MODE) {
		verdict = lg_check_permissions(LG_OP_CHMOD, dentry, BPF_CORE_READ(attr, ia_mode));
		if (verdict)
			return verdict;
	}
	return valid & (LG_ATTR_UID | LG_ATTR_GID) ? lg_check_permissions(LG_OP_CHOWN, dentry, 0) : 0;
}

/*
 * inode_setattr gained the mount's id mapping as its first argument (6.8):
 * one program for each form, and the loader keeps the one whose argument
 * count (the _argsN suffix) the running kernel's hook has.
 */
SEC("lsm/inode_setattr")
int BPF_PROG(lg_inode_setattr_args3, void *idmap, struct dentry *dentry, struct iattr *attr, int ret)
{
	return ret ? ret : lg_check_setattr(dentry, attr);
}

SEC("lsm/inode_setattr")
int BPF_PROG(lg_inode_setattr_args2, struct dentry *dentry, struct iattr *attr, int ret)
{
	return ret ? ret : lg_check_setattr(dentry, attr);
}

/*
 * A mount on a name changes what the name names: mounting over a file that
 * nobody may write, or over a directory whose names nobody may write, is
 * writing it -- in the host's mount namespace, where rules read names. A
 * mount in another namespace (a service's sandbox, a container, a user
 * namespace) changes that namespace's view, not the host's files, which are
 * decided by identity whatever view reaches them. Changes of a mount's flags
 * or propagation name nothing new.
 */
#define LG_MS_REMOUNT 32          /* include/uapi/linux/mount.h */
#define LG_MS_PROPAGATION ((1 << 15) | (1 << 17) | (1 << 18) | (1 << 19) | (1 << 20)) /* UNBINDABLE..SHARED, SILENT */

static __always_inline bool lg_in_host_mount_namespace(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct lg_config *config;
	__u32 zero = 0;

	config = bpf_map_lookup_elem(&lg_config, &zero);
	return config && BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum) == config->host_mnt_ns;
}

SEC("lsm/sb_mount")
int BPF_PROG(lg_sb_mount, const char *dev_name, const struct path *path, const char *type, unsigned long flags,
	     void *data, int ret)
{
	if (ret)
		return ret;
	if ((flags & (LG_MS_REMOUNT | LG_MS_PROPAGATION)) || !lg_in_host_mount_namespace())
		return 0;
	return lg_check_name_removed(LG_OP_MOUNT, BPF_CORE_READ(path, dentry), LG_NAME_TARGET);
}

/* The new mount API's way to put a mount on a name (fsmount, open_tree, then move_mount). */
SEC("lsm/move_mount")
int BPF_PROG(lg_move_mount, const struct path *from_path, const struct path *to_path, int ret)
{
	if (ret || !lg_in_host_mount_namespace())
		return ret;
	return lg_check_name_removed(LG_OP_MOUNT, BPF_CORE_READ(to_path, dentry), LG_NAME_TARGET);
}

SEC("lsm/socket_connect")
int BPF_PROG(lg_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret || !lg_policy_applied())
		return ret;
	return lg_check_inet_connect(sock, address, addrlen, false);
}

SEC("lsm/socket_bind")
int BPF_PROG(lg_socket_bind, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret || !lg_policy_applied())
		return ret;
	return lg_check_inet_bind(sock, address, addrlen);
}

SEC("lsm/socket_listen")
int BPF_PROG(lg_socket_listen, struct socket *sock, int backlog, int ret)
{
	if (ret || !lg_policy_applied())
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

	if (ret || !lg_policy_applied())
		return ret;
	address = BPF_CORE_READ(msg, msg_name);
	if (!address)
		return 0; /* connected: decided at connect */
	return lg_check_inet_connect(sock, address, BPF_CORE_READ(msg, msg_namelen), true);
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
	if (ret || !lg_policy_applied())
		return ret;
	return lg_check_unix_peer(other);
}

SEC("lsm/unix_may_send")
int BPF_PROG(lg_unix_may_send, struct socket *sock, struct socket *other, int ret)
{
	if (ret || !lg_policy_applied())
		return ret;
	return lg_check_unix_peer(BPF_CORE_READ(other, sk));
}
