/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Drift: a file created or written after a policy's drift baseline is not
 * executed, nor mapped executable, by that policy's subjects.
 *
 * An open for writing marks the inode (inode storage) with when and by whom.
 * A mark lives as long as the inode is in memory, so the inode's change time
 * decides too: it covers a mark lost with an evicted inode, and a write
 * through a descriptor opened before the baseline (which never passes
 * file_open again). The change time cannot be set by users, only by the
 * kernel's clock.
 */
#ifndef LSMGUARD_DRIFT_BPF_H
#define LSMGUARD_DRIFT_BPF_H

#define LG_NSEC_PER_SEC 1000000000ULL
/* 6.13 and later keep a flag in the top bit of i_ctime_nsec (multigrain timestamps) */
#define LG_CTIME_NSEC_MASK 0x3fffffff
/* Not a slot of the policy set: the drift masks of an access, which no default decides on. */
#define LG_SLOT_DRIFT LG_SLOT_COUNT

struct {
	__uint(type, BPF_MAP_TYPE_INODE_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct lg_file_mark);
} lg_file_marks SEC(".maps");

/* struct inode's change time: a timespec64 until 6.5, renamed in 6.6, split in 6.11. */
struct inode___ctime_v61 {
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

struct inode___ctime_v66 {
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

struct inode___ctime_v611 {
	time64_t i_ctime_sec;
	__u32 i_ctime_nsec;
} __attribute__((preserve_access_index));

static __always_inline __u64 lg_inode_ctime_ns(struct inode *inode)
{
	__s64 sec;
	__u32 nsec;

	if (bpf_core_field_exists(struct inode___ctime_v611, i_ctime_sec)) {
		struct inode___ctime_v611 *i = (void *)inode;

		sec = BPF_CORE_READ(i, i_ctime_sec);
		nsec = BPF_CORE_READ(i, i_ctime_nsec);
	} else if (bpf_core_field_exists(struct inode___ctime_v66, __i_ctime)) {
		struct inode___ctime_v66 *i = (void *)inode;

		sec = BPF_CORE_READ(i, __i_ctime.tv_sec);
		nsec = BPF_CORE_READ(i, __i_ctime.tv_nsec);
	} else {
		struct inode___ctime_v61 *i = (void *)inode;

		sec = BPF_CORE_READ(i, i_ctime.tv_sec);
		nsec = BPF_CORE_READ(i, i_ctime.tv_nsec);
	}
	/* no branch (see lg_drift_of); a change time before 1970 wraps to the far future: drift */
	return (__u64)sec * LG_NSEC_PER_SEC + (nsec & LG_CTIME_NSEC_MASK);
}

/* Whether any policy in force has a drift option: only then are writes marked. */
static __always_inline bool lg_drift_in_force(void)
{
	struct lg_config *config;
	struct lg_policy_set *set;
	__u32 generation;

	set = lg_policy_set_in_force(&config, &generation);
	return set && (set->drift_deny | set->drift_audit);
}

#define LG_WRITER_PATH_MASK (LG_WRITER_PATH_MAX - 1)

/*
 * Resolve (dentry, mnt) and keep the end of the path in `out` (NUL-terminated,
 * LG_WRITER_PATH_MAX bytes): the end names a program or directory best.
 * False when it was cut or could not be fully resolved.
 */
static __always_inline bool lg_keep_path(struct dentry *dentry, struct vfsmount *mnt, struct lg_scratch *s,
					 char *out)
{
	struct lg_path path;
	__u32 start, len;

	out[0] = 0;
	if (!dentry || !mnt)
		return false;
	lg_resolve_path(dentry, mnt, &s->path, &path);
	start = path.start;
	len = path.len;
	if (len > LG_WRITER_PATH_MASK) {
		start += len - LG_WRITER_PATH_MASK;
		len = LG_WRITER_PATH_MASK;
	}
	len &= LG_WRITER_PATH_MASK;
	bpf_probe_read_kernel(out, len, &path.buf->data[start & LG_PATH_MASK]);
	out[len] = 0;
	return !path.flags && path.len <= LG_WRITER_PATH_MASK;
}

/* Remember who opened `inode` for writing, and when: the writer may be gone when the file runs. */
static __always_inline void lg_mark_written(struct inode *inode)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct lg_file_mark *mark;
	struct lg_scratch *s;
	struct file *exe;
	__u64 seq;

	mark = bpf_inode_storage_get(&lg_file_marks, inode, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!mark) {
		lg_stat_inc(LG_STAT_MARKS_LOST);
		return;
	}
	mark->written_ns = bpf_ktime_get_ns();
	mark->writer_tgid = bpf_get_current_pid_tgid() >> 32;
	mark->writer_ppid = BPF_CORE_READ(task, real_parent, tgid);
	mark->writer_uid = BPF_CORE_READ(task, cred, euid.val);
	mark->writer_start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	bpf_get_current_comm(mark->writer_comm, sizeof(mark->writer_comm));
	mark->flags = LG_WRITER_EXE_PARTIAL | LG_WRITER_CWD_PARTIAL;
	s = lg_scratch_take(&seq);
	if (!s)
		return;
	exe = BPF_CORE_READ(task, mm, exe_file);
	if (lg_keep_path(BPF_CORE_READ(exe, f_path.dentry), BPF_CORE_READ(exe, f_path.mnt), s, mark->writer_exe))
		mark->flags &= ~LG_WRITER_EXE_PARTIAL;
	if (lg_keep_path(BPF_CORE_READ(task, fs, pwd.dentry), BPF_CORE_READ(task, fs, pwd.mnt), s, mark->writer_cwd))
		mark->flags &= ~LG_WRITER_CWD_PARTIAL;
	if (!lg_scratch_intact(s, seq))
		mark->flags |= LG_WRITER_EXE_PARTIAL | LG_WRITER_CWD_PARTIAL;
	lg_scratch_give(s, seq);
}

struct lg_drift_scan {
	__u64 policies;     /* policies with a drift option */
	__u64 ctime_ns;     /* the inode's change time */
	__u64 written_ns;   /* its write mark's time; 0: no mark */
	__u64 drifted;      /* out: the policies whose baseline it postdates */
	__u32 generation;
};

/* One policy of the scan: a bpf_loop step, so that 64 policies cost the verifier one pass. */
static long lg_drift_step(__u32 i, void *ctx)
{
	struct lg_drift_scan *scan = ctx;
	const struct lg_drift_baseline *since;
	struct lg_policy_set *set;

	if (i >= LG_MAX_POLICIES || !(scan->policies >> i))
		return 1; /* no policy with drift from here on (none at all: one step) */
	if (!((scan->policies >> i) & 1))
		return 0;
	set = bpf_map_lookup_elem(&lg_policy_sets, &scan->generation);
	if (!set)
		return 1;
	since = &set->drift_since[i];
	if (scan->ctime_ns >= since->realtime_ns || (scan->written_ns && scan->written_ns >= since->monotonic_ns))
		scan->drifted |= 1ULL << i;
	return 0;
}

/*
 * The address of `inode`'s write mark (0: none), as a plain number: the hook
 * looks it up (inode storage needs its inode pointer), decisions read it.
 */
static __always_inline __u64 lg_mark_of(struct inode *inode)
{
	struct lg_file_mark *mark = bpf_inode_storage_get(&lg_file_marks, inode, 0, 0);
	__u64 address = 0;

	bpf_probe_read_kernel(&address, sizeof(address), &mark);
	return address;
}

/*
 * What drift options say of code in the inode at `inode` (0: none), with its
 * write mark at `mark` (0: none), as the masks of a pseudo-slot (deny:
 * refusing policies, audit: auditing ones). Branch-free on purpose: a branch
 * here would double what the verifier walks after it. A missing mark reads
 * as zero (probe reads fill zeros). Called for code only (lg_found).
 */
static __always_inline void lg_drift_of(const struct lg_policy_set *set, __u32 generation, __u64 inode,
					__u64 mark, struct lg_masks *found)
{
	struct lg_drift_scan scan = { .policies = set->drift_deny | set->drift_audit, .generation = generation };
	__u64 deny_chosen, audit_chosen;

	bpf_probe_read_kernel(&scan.written_ns, sizeof(scan.written_ns), (const void *)mark);
	scan.ctime_ns = lg_inode_ctime_ns((struct inode *)inode);
	bpf_loop(LG_MAX_POLICIES, lg_drift_step, &scan, 0);
	found->deny = scan.drifted & set->drift_deny;
	found->audit = scan.drifted & set->drift_audit;
	found->allow = 0;
	/* reported as the lowest enforce-mode policy's drift, as for rules (lg_rule_of checks the policy);
	 * with no bit set the rule is never read */
	deny_chosen = found->deny & set->enforce ? found->deny & set->enforce : found->deny;
	audit_chosen = found->audit & set->enforce ? found->audit & set->enforce : found->audit;
	found->deny_rule = lg_lowest_bit(deny_chosen) << LG_RULE_POLICY_SHIFT | LG_RULE_INDEX_DRIFT;
	found->audit_rule = lg_lowest_bit(audit_chosen) << LG_RULE_POLICY_SHIFT | LG_RULE_INDEX_DRIFT;
}

#endif /* LSMGUARD_DRIFT_BPF_H */
