/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Per-CPU working memory too large for the 512-byte stack.
 *
 * LSM programs run with migration disabled but can be preempted (preempt=full,
 * PREEMPT_RT), so another task may run a program on this CPU meanwhile and
 * overwrite the scratch. Every user bumps `seq` first; a user that finds it
 * changed after its work knows its data may be torn and treats the access as
 * unresolved rather than trusting it.
 */
#ifndef LSMGUARD_SCRATCH_BPF_H
#define LSMGUARD_SCRATCH_BPF_H

struct lg_scratch {
	__u64 seq;
	struct lg_path_buf path;    /* the object being decided on */
	struct lg_path_buf alt;     /* a second identity of the same object (an overlay's real file) */
	struct lg_path_buf cgroup;  /* the task's cgroup path, for subjects */
	char name[LG_NAME_BUF_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lg_scratch);
} lg_scratch SEC(".maps");

static __always_inline struct lg_scratch *lg_scratch_take(__u64 *seq)
{
	__u32 zero = 0;
	struct lg_scratch *s = bpf_map_lookup_elem(&lg_scratch, &zero);

	if (s)
		*seq = ++s->seq;
	return s;
}

/* False if a preempting program used the scratch since lg_scratch_take. */
static __always_inline bool lg_scratch_intact(const struct lg_scratch *s, __u64 seq)
{
	if (s->seq == seq)
		return true;
	lg_stat_inc(LG_STAT_SCRATCH_RACES);
	return false;
}

/*
 * An inode entry: exact deny and audit rules bound to the file itself when
 * the set was applied, so another name of it (a hard link made earlier, a
 * directory above it renamed) does not walk around them. Added to what the
 * name says; allow rules are never bound, so an inode number reused after
 * the file is gone can only be refused, never let through.
 */
static __always_inline void lg_add_bound(const struct lg_path *path, __u32 generation, __u8 slot,
					 struct lg_masks *found)
{
	struct lg_path_entry_key key = {
		.hash = path->ino, .len = path->dev, .slot = slot, .match = LG_MATCH_INODE, .generation = generation,
	};
	struct lg_masks *bound;

	if (slot > LG_SLOT_CHMOD)
		return; /* only the file slots (exec, open, chmod) have inode entries: not unix, not subjects */
	bound = bpf_map_lookup_elem(&lg_path_entries, &key);
	if (!bound)
		return;
	/* the name's own rule, if it has one, is the one reported */
	if (!found->deny)
		found->deny_rule = bound->deny_rule;
	if (!found->audit)
		found->audit_rule = bound->audit_rule;
	found->deny |= bound->deny;
	found->audit |= bound->audit;
}

/*
 * Look `path` up in up to two slots into found[0..nslots), and with
 * `by_inode` the file's inode entries too. The state lives on the stack:
 * bpf_loop takes only a stack pointer as context on 6.1.
 */
static __always_inline void lg_lookup_in(const struct lg_config *config, const struct lg_path *path,
					 __u32 generation, __u8 slot_a, __u8 slot_b, __u32 nslots, bool by_inode,
					 struct lg_masks found[LG_LOOKUP_SLOTS])
{
	struct lg_lookup l = {
		.nslots = nslots, .slots = { slot_a, slot_b }, .generation = generation,
	};

	if (path->kind == LG_NAME_FILELESS) { /* rules name fileless files by one key: the empty name */
		lg_name_hash_init(&l.state, config, path);
		lg_lookup_entry(&l, lg_siphash_final(&l.state), 0, LG_MATCH_EXACT);
	} else {
		lg_lookup_path(config, path, &l);
	}
	found[0] = l.found[0];
	found[1] = l.found[1];
	if (!by_inode || !path->ino)
		return;
	lg_add_bound(path, generation, slot_a, &found[0]);
	if (nslots > 1)
		lg_add_bound(path, generation, slot_b, &found[1]);
}

#endif /* LSMGUARD_SCRATCH_BPF_H */
