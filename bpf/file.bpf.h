/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Deciding an operation on a file by its identity (path.bpf.h), and finding
 * the real file behind a stacking file system's view of it.
 *
 * overlayfs serves its files from the files of its layers: opening an
 * overlay file opens the real file too (file_open runs for both), and the
 * real file is what a mapping ends up holding. A rule names the real file as
 * much as any other view of it, so where the hook sees the overlay's file,
 * the real one is decided too, and where it sees the real one, so is it.
 */
#ifndef LSMGUARD_FILE_BPF_H
#define LSMGUARD_FILE_BPF_H

#define LG_OVERLAYFS_SUPER_MAGIC 0x794c7630 /* include/uapi/linux/magic.h */
/* 6.13 made an overlay file's private_data a struct ovl_file, whose first member is the real file. */
#define LG_OVL_FILE_CONTAINER KERNEL_VERSION(6, 13, 0)

extern int LINUX_KERNEL_VERSION __kconfig;

/* struct dentry's inode alias link: in the union d_u until 7.x made the union anonymous. */
struct dentry___alias_in_d_u {
	union {
		struct hlist_node d_alias;
	} d_u;
} __attribute__((preserve_access_index));

struct dentry___alias_own {
	struct hlist_node d_alias;
} __attribute__((preserve_access_index));

/* A dentry of `inode`: the real file's, where a file's path is not its own (6.1's fake paths). */
static __always_inline struct dentry *lg_inode_alias(struct inode *inode)
{
	struct hlist_node *first = BPF_CORE_READ(inode, i_dentry.first);

	if (!first)
		return NULL;
	if (bpf_core_field_exists(struct dentry___alias_own, d_alias))
		return (void *)first - bpf_core_field_offset(struct dentry___alias_own, d_alias);
	return (void *)first - bpf_core_field_offset(struct dentry___alias_in_d_u, d_u.d_alias);
}

/*
 * The dentry whose identity is `file`'s. An overlay's real file opened on
 * 6.1 to 6.6 carries the overlay's path with the real inode; from 6.7 its
 * path is the real one (on a private clone of the layer's mount).
 */
static __always_inline struct dentry *lg_file_dentry(struct file *file)
{
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct dentry *alias;

	if (inode == BPF_CORE_READ(dentry, d_inode))
		return dentry;
	alias = lg_inode_alias(inode);
	return alias ? alias : dentry;
}

/* Is `file` a stacking file system's real file (opened by overlayfs for one of its own)? */
static __always_inline bool lg_is_real_file(struct file *file)
{
	return lg_mount_is_private_clone(BPF_CORE_READ(file, f_path.mnt)) ||
	       BPF_CORE_READ(file, f_inode) != BPF_CORE_READ(file, f_path.dentry, d_inode);
}

/*
 * The path a real file was opened for (the overlay's): from 6.7 the backing
 * file keeps it right after its struct file (fs/file_table.c: struct
 * backing_file); before, the real file's own f_path is it. NULL: not a real
 * file. The layout is computed, not relocated: a type missing from vmlinux
 * (6.1) would make libbpf search module BTF, which needs CAP_SYS_ADMIN that
 * the service does not have.
 */
static __always_inline struct dentry *lg_user_dentry(struct file *file)
{
	struct path *user_path;

	if (lg_mount_is_private_clone(BPF_CORE_READ(file, f_path.mnt))) {
		user_path = (void *)file + bpf_core_type_size(struct file);
		return BPF_CORE_READ(user_path, dentry);
	}
	if (BPF_CORE_READ(file, f_inode) != BPF_CORE_READ(file, f_path.dentry, d_inode))
		return BPF_CORE_READ(file, f_path.dentry);
	return NULL;
}

/* The real file behind an overlay file (its private data), or NULL for a file of any other file system. */
static __always_inline struct file *lg_overlay_real_file(struct file *file)
{
	void *private = BPF_CORE_READ(file, private_data);
	struct file *real = private;

	if (BPF_CORE_READ(file, f_inode, i_sb, s_magic) != LG_OVERLAYFS_SUPER_MAGIC || !private)
		return NULL;
	if (LINUX_KERNEL_VERSION >= LG_OVL_FILE_CONTAINER)
		bpf_probe_read_kernel(&real, sizeof(real), private);
	return real;
}

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

/* Fold what the rules say of another identity of a file into what they say of the first. */
static __always_inline void lg_merge_masks(struct lg_masks *into, const struct lg_masks *more)
{
	if (!into->deny)
		into->deny_rule = more->deny_rule;
	if (!into->audit)
		into->audit_rule = more->audit_rule;
	into->deny |= more->deny;
	into->allow |= more->allow;
	into->audit |= more->audit;
}

static __always_inline bool lg_masks_name_it(const struct lg_masks found[LG_LOOKUP_SLOTS])
{
	return found[0].deny | found[0].audit | found[1].deny | found[1].audit;
}

/*
 * Decide `q` on a resolved name in `path`; and, when `alt` is not NULL, on
 * that second identity of the same file too (an overlay's real file): what
 * the rules say of either, they say of the file. Sets `exe_ids` to the
 * executable ids of the name when q->slots[1] is LG_SLOT_SUBJECT_EXE (exec).
 */
static __always_inline int lg_judge_path(const struct lg_question *q, struct lg_scratch *s, __u64 seq,
					 const struct lg_config *config, const struct lg_policy_set *set,
					 __u32 generation, struct lg_path *path, struct dentry *alt, __u64 *exe_ids)
{
	struct lg_access a = { .slots = { q->slots[0], q->slots[1] }, .nslots = q->nslots,
			       .rules_only = q->rules_only };
	struct lg_path *reported = path, other;
	struct lg_masks more[LG_LOOKUP_SLOTS];
	bool by_inode = set->bound_inodes != 0;

	lg_lookup_in(config, path, generation, q->slots[0], q->slots[1], q->nslots, by_inode, a.found);
	if (alt) {
		lg_resolve_identity(alt, &s->alt, &other);
		lg_lookup_in(config, &other, generation, q->slots[0], q->slots[1], q->nslots, by_inode, more);
		if (!lg_masks_name_it(a.found) && lg_masks_name_it(more))
			reported = &other;   /* the events name the file by the identity a rule named */
		lg_merge_masks(&a.found[0], &more[0]);
		lg_merge_masks(&a.found[1], &more[1]);
		path->flags |= other.flags;
	}
	if (q->own_denials_decided) {   /* and reported: not twice */
		a.found[0].deny = 0;
		a.found[0].deny_rule = LG_NO_RULE;
	}
	if (q->ancestors) {   /* a directory whose names below it move along */
		lg_lookup_ancestor(config, path, generation, &more[0]);
		lg_merge_masks(&a.found[0], &more[0]);
	}
	if (q->slots[1] == LG_SLOT_SUBJECT_EXE) { /* not a rule slot: only tells which executable this is */
		*exe_ids = a.found[1].allow;
		a.nslots = 1;
	}
	/* code looks up one slot: the second holds what drift options say (a constant choice per hook) */
	if (q->is_code) {
		lg_drift_of(set, generation, q->code, &a.found[1], &a.writer);
		a.slots[1] = LG_SLOT_DRIFT;
		a.nslots = 2;
	}
	a.unresolved = lg_path_unresolved(s, seq, path);
	return lg_conclude_path(q->op, s, config, set, generation, &a, reported, q->detail);
}

/* Decide `q` on the file (or the name not yet made) `dentry`, and on `alt` (see lg_judge_path). */
static __always_inline int lg_check_file(const struct lg_question *q, struct dentry *dentry, struct dentry *alt,
					 __u64 *exe_ids)
{
	struct lg_policy_set *set;
	struct lg_config *config;
	struct lg_scratch *s;
	struct lg_path path;
	__u32 generation;
	__u64 seq;

	set = lg_begin(&config, &generation, &s, &seq);
	if (!set)
		return 0; /* nothing applied: no walk at all */
	lg_resolve_identity(dentry, &s->path, &path);
	return lg_judge_path(q, s, seq, config, set, generation, &path, alt, exe_ids);
}

#endif /* LSMGUARD_FILE_BPF_H */
