// SPDX-License-Identifier: GPL-2.0
/*
 * Lock mode: lsmguard guarding itself. Attached only while locked; until the
 * owner (the daemon that locked) unlocks or the host reboots, no other
 * process may write lsmguard's maps, take fds of its links, unlink or rename
 * its pins, signal or trace the daemon, or load a program that could
 * override a hook's return. Each refusal is counted and reported.
 *
 * No program reads the hook's `ret`: an LSM program runs only while every
 * earlier one returned 0 (the trampoline stops at the first refusal), and
 * the `bpf` hook gained an argument in 6.15, which would move it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "lsmguard/abi.h"

#define EPERM 1
#define LG_BPF_FS_MAGIC 0xcafe4a11 /* include/uapi/linux/magic.h */
#define LG_MAY_WRITE 0x2           /* include/linux/fs.h */
#define LG_MAY_READ 0x4
#define LG_PTRACE_MODE_ATTACH 0x02 /* include/linux/ptrace.h */
#define LG_LOCK_EVENTS_BYTES (256 * 1024)
#define LG_LOCK_IDS_MAX 256
#define LG_LOCK_INODES_MAX 256

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lg_lock_owner);
} lg_lock_owner SEC(".maps");

/* Ids of the maps and links to protect (value unused). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LG_LOCK_IDS_MAX);
	__type(key, __u32);
	__type(value, __u32);
} lg_lock_maps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LG_LOCK_IDS_MAX);
	__type(key, __u32);
	__type(value, __u32);
} lg_lock_links SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LG_LOCK_INODES_MAX);
	__type(key, struct lg_lock_inode_key);
	__type(value, __u32); /* enum lg_lock_guard bits */
} lg_lock_inodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LG_LOCK_REFUSAL_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} lg_lock_refusals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LG_LOCK_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} lg_lock_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, LG_LOCK_EVENTS_BYTES);
} lg_lock_events SEC(".maps");

static __always_inline bool lg_is_owner(struct task_struct *task)
{
	struct lg_lock_owner *owner;
	__u32 zero = 0;
	__u64 start;

	owner = bpf_map_lookup_elem(&lg_lock_owner, &zero);
	if (!owner || !owner->ns_per_tick)
		return false;
	if (BPF_CORE_READ(task, tgid) != owner->tgid)
		return false;
	/* a later process given the owner's pid started later */
	start = BPF_CORE_READ(task, group_leader, start_boottime);
	return start / owner->ns_per_tick == owner->start_ticks;
}

/* Count and report a refused attempt by the current task; returns the hook's verdict. */
static __always_inline int lg_refuse(__u32 refusal, __u32 detail)
{
	__u32 lost_index = LG_LOCK_STAT_EVENTS_LOST;
	struct lg_lock_event *event;
	__u64 *count;

	count = bpf_map_lookup_elem(&lg_lock_refusals, &refusal);
	if (count)
		*count += 1;
	event = bpf_ringbuf_reserve(&lg_lock_events, sizeof(*event), 0);
	if (!event) { /* a flood of attempts outran the daemon: counted, reported as lost */
		count = bpf_map_lookup_elem(&lg_lock_stats, &lost_index);
		if (count)
			*count += 1;
	} else {
		event->ktime_ns = bpf_ktime_get_ns();
		event->refusal = refusal;
		event->pid = bpf_get_current_pid_tgid() >> 32;
		event->uid = (__u32)bpf_get_current_uid_gid();
		event->detail = detail;
		bpf_get_current_comm(event->comm, sizeof(event->comm));
		bpf_ringbuf_submit(event, 0);
	}
	return -EPERM;
}

static __always_inline bool lg_protected_id(void *ids, __u32 id)
{
	return bpf_map_lookup_elem(ids, &id) != NULL;
}

static __always_inline __u32 lg_inode_guards(struct inode *inode)
{
	struct lg_lock_inode_key key = {};
	__u32 *guards;

	if (!inode || BPF_CORE_READ(inode, i_sb, s_magic) != LG_BPF_FS_MAGIC)
		return 0;
	key.ino = BPF_CORE_READ(inode, i_ino);
	key.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	guards = bpf_map_lookup_elem(&lg_lock_inodes, &key);
	return guards ? *guards : 0;
}

/* The bpf() syscall: link fds by id, and programs that could override a hook's return. */
SEC("lsm/bpf")
int BPF_PROG(lg_lock_bpf, int cmd, union bpf_attr *attr, unsigned int size)
{
	if (cmd == BPF_LINK_GET_FD_BY_ID) {
		__u32 id = BPF_CORE_READ(attr, link_id);

		if (lg_protected_id(&lg_lock_links, id) && !lg_is_owner(bpf_get_current_task_btf()))
			return lg_refuse(LG_LOCK_LINK, id);
		return 0;
	}
	if (cmd == BPF_PROG_LOAD) {
		__u32 type = BPF_CORE_READ(attr, prog_type);
		__u32 attach = BPF_CORE_READ(attr, expected_attach_type);

		/* fmod_ret may rewrite any security_*() result; freplace may replace our functions */
		if ((type == BPF_PROG_TYPE_EXT || (type == BPF_PROG_TYPE_TRACING && attach == BPF_MODIFY_RETURN)) &&
		    !lg_is_owner(bpf_get_current_task_btf()))
			return lg_refuse(LG_LOCK_PROG_LOAD, type);
	}
	return 0;
}

/*
 * A new fd of a map, by id or from its pin: only for the owner, even
 * read-only. A read-only fd is enough to load a program that uses the map,
 * and a program's helpers write the map whatever mode its fd had.
 */
SEC("lsm/bpf_map")
int BPF_PROG(lg_lock_bpf_map, struct bpf_map *map, fmode_t fmode)
{
	__u32 id = BPF_CORE_READ(map, id);

	if (lg_protected_id(&lg_lock_maps, id) && !lg_is_owner(bpf_get_current_task_btf()))
		return lg_refuse(LG_LOCK_MAP, id);
	return 0;
}

/* BPF_OBJ_GET checks the pin's permission: a link's pin yields an fd that can detach it. */
SEC("lsm/inode_permission")
int BPF_PROG(lg_lock_inode_permission, struct inode *inode, int mask)
{
	if (!(mask & (LG_MAY_READ | LG_MAY_WRITE)))
		return 0; /* directory traversal, the common case: nothing read from the inode */
	if ((lg_inode_guards(inode) & LG_LOCK_GUARD_OPEN) && !lg_is_owner(bpf_get_current_task_btf()))
		return lg_refuse(LG_LOCK_PIN_OPEN, 0);
	return 0;
}

/* Removing a pin or a pin directory, or giving it (or its name) to another. */
static __always_inline int lg_guard_name(struct dentry *dentry)
{
	if ((lg_inode_guards(BPF_CORE_READ(dentry, d_inode)) & LG_LOCK_GUARD_NAME) &&
	    !lg_is_owner(bpf_get_current_task_btf()))
		return lg_refuse(LG_LOCK_PIN_NAME, 0);
	return 0;
}

SEC("lsm/inode_unlink")
int BPF_PROG(lg_lock_inode_unlink, struct inode *dir, struct dentry *dentry)
{
	return lg_guard_name(dentry);
}

SEC("lsm/inode_rmdir")
int BPF_PROG(lg_lock_inode_rmdir, struct inode *dir, struct dentry *dentry)
{
	return lg_guard_name(dentry);
}

/* Moving a pin or pin directory, or replacing one by a rename over it. */
SEC("lsm/inode_rename")
int BPF_PROG(lg_lock_inode_rename, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir,
	     struct dentry *new_dentry)
{
	int verdict = lg_guard_name(old_dentry);

	return verdict ? verdict : lg_guard_name(new_dentry);
}

/* Signals from processes (kill, tgkill, sigqueue) to the daemon; 0 only probes it. */
SEC("lsm/task_kill")
int BPF_PROG(lg_lock_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig,
	     const struct cred *cred)
{
	if (sig && lg_is_owner(p) && !lg_is_owner(bpf_get_current_task_btf()))
		return lg_refuse(LG_LOCK_SIGNAL, sig);
	return 0;
}

/*
 * ptrace attach, /proc/<pid>/mem, process_vm_readv/writev and pidfd_getfd of
 * the daemon. Read-mode checks (ps reading /proc/<pid>/stat or exe) pass.
 */
SEC("lsm/ptrace_access_check")
int BPF_PROG(lg_lock_ptrace_access_check, struct task_struct *child, unsigned int mode)
{
	if ((mode & LG_PTRACE_MODE_ATTACH) && lg_is_owner(child) && !lg_is_owner(bpf_get_current_task_btf()))
		return lg_refuse(LG_LOCK_PTRACE, mode);
	return 0;
}
