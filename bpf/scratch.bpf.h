/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Per-CPU working memory too large for the 512-byte stack.
 *
 * LSM programs run with migration disabled but can be preempted (preempt=full
 * or lazy, PREEMPT_RT), so another task may run a program on this CPU
 * meanwhile. Each CPU has LG_SCRATCH_SLOTS scratches: a program holds one,
 * claimed with an atomic compare-and-swap (preemption-safe on its CPU), from
 * lg_scratch_take to lg_scratch_give, and a preempting program claims
 * another. Only when every slot is held (that many programs preempted
 * mid-decision on one CPU) is the first one shared: every user bumps `seq`
 * first, and a user that finds it changed after its work knows its data may
 * be torn and treats the access as unresolved rather than trusting it.
 * (With one shared scratch, a preempted decision on a 7.3 kernel was torn
 * about once a minute under the lab's load, and an unrelated process such as
 * journald was refused by a policy it was no subject of.)
 */
#ifndef LSMGUARD_SCRATCH_BPF_H
#define LSMGUARD_SCRATCH_BPF_H

/*
 * What one object's entries say: one entry per rule slot looked up (nslots
 * of them), then the drift pseudo-slot, which is zeros but for code (exec,
 * executable mappings). A fixed shape whatever the access, so the verifier
 * walks one decision, not one per kind of access.
 */
#define LG_DRIFT_ENTRY LG_LOOKUP_SLOTS
#define LG_ACCESS_ENTRIES (LG_LOOKUP_SLOTS + 1)

struct lg_access {
	struct lg_masks found[LG_ACCESS_ENTRIES];
	__u8 slots[LG_LOOKUP_SLOTS];
	__u32 nslots;
	bool unresolved;  /* the object could not be fully named: refuse where a rule could */
	bool rules_only;  /* only rules decide, not a policy's default (executable mappings, new names) */
	bool everyone;    /* policies decide whatever their subjects (a file's names serve every process) */
	__u64 writer;     /* address of a code file's write mark (0: none), copied into events */
};

/* A resolved name as the scratch keeps it for the report (struct lg_path, its buffer being the scratch's path). */
struct lg_path_meta {
	__u32 start;
	__u32 len;
	__u32 flags;
	__u32 kind;
	__u32 dev;
	__u32 reserved;
	__u64 ino;
};

#define LG_SCRATCH_SLOTS 4
#define LG_SCRATCH_CLAIMING (~0ULL) /* `held` while its claimer has yet to write its sequence */
/*
 * Set in the sequence a shared take gets: never in a slot's (which counts up from 1), so
 * nothing read from a shared scratch is ever trusted (a sharer cannot tell whether the
 * holder, or another sharer, resumed and wrote it), and it is never given back. Below
 * bit 61: a ticket shifts it left by 3.
 */
#define LG_SCRATCH_SHARED_BIT (1ULL << 59)

struct lg_scratch {
	__u64 held;                 /* the holder's `seq`; 0: free */
	__u64 seq;
	__u32 slot;                 /* its index: a ticket names it (lg_conclude) */
	__u32 reserved;
	struct lg_path_meta named;  /* the name reported (in `path`) */
	struct lg_access access;    /* the access being decided */
	struct lg_masks spare[LG_LOOKUP_SLOTS]; /* a second lookup's: another identity, names below, a subject */
	struct lg_lookup lookup;    /* a lookup's hashing state */
	struct lg_path_buf path;    /* the object being decided on */
	struct lg_path_buf cgroup;  /* the task's cgroup path, for subjects */
	char name[LG_NAME_BUF_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LG_SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, struct lg_scratch);
} lg_scratch SEC(".maps");

/* Slot `slot` of this CPU's scratch, if no program holds it: then held by this one, with `*seq`. */
static __always_inline struct lg_scratch *lg_scratch_claim(__u32 slot, __u64 *seq)
{
	struct lg_scratch *s = bpf_map_lookup_elem(&lg_scratch, &slot);

	if (!s || __sync_val_compare_and_swap(&s->held, 0, LG_SCRATCH_CLAIMING) != 0)
		return NULL;
	/* atomic: a sharer may bump it meanwhile, and neither bump may be lost */
	*seq = __sync_add_and_fetch(&s->seq, 1);
	s->slot = slot;
	s->held = *seq;
	return s;
}

/*
 * A scratch for one decision, and its sequence: a slot of its own while one
 * is free, else the first, shared (counted), whose user takes what it finds
 * there as torn (LG_SCRATCH_SHARED_BIT) and whose bump tells the slot's
 * holder that its own may be. Every take is matched by an lg_scratch_give.
 */
static __always_inline struct lg_scratch *lg_scratch_take(__u64 *seq)
{
	struct lg_scratch *s;
	__u32 slot, first = 0;

#pragma unroll
	for (slot = 0; slot < LG_SCRATCH_SLOTS; slot++) {
		s = lg_scratch_claim(slot, seq);
		if (s)
			return s;
	}
	lg_stat_inc(LG_STAT_SCRATCH_SHARED);
	s = bpf_map_lookup_elem(&lg_scratch, &first);
	if (s)
		*seq = __sync_add_and_fetch(&s->seq, 1) | LG_SCRATCH_SHARED_BIT;
	return s;
}

/* The end of a decision's use of its scratch: the slot is free again if it held it (not if shared). */
static __always_inline void lg_scratch_give(struct lg_scratch *s, __u64 seq)
{
	barrier(); /* the decision's reads of the scratch come before its release */
	if (s->held == seq)
		s->held = 0;
}

/* False if a preempting program used the scratch since lg_scratch_take. */
static __always_inline bool lg_scratch_intact(const struct lg_scratch *s, __u64 seq)
{
	barrier(); /* the reads this check vouches for come before it */
	if (s->seq == seq)
		return true;
	lg_stat_inc(LG_STAT_SCRATCH_RACES);
	return false;
}

/* Keep `path` (resolved into s->path) for the report. */
static __always_inline void lg_path_keep(const struct lg_path *path, struct lg_path_meta *named)
{
	named->start = path->start;
	named->len = path->len;
	named->flags = path->flags;
	named->kind = path->kind;
	named->dev = path->dev;
	named->ino = path->ino;
}

/* The name kept by lg_path_keep. */
static __always_inline void lg_path_named(struct lg_scratch *s, struct lg_path *path)
{
	path->buf = &s->path;
	path->start = s->named.start;
	path->len = s->named.len;
	path->flags = s->named.flags;
	path->kind = s->named.kind;
	path->dev = s->named.dev;
	path->ino = s->named.ino;
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

/* What a device's summary says of slot `slot`'s entries; zeros (no lookup can hit) without one. */
static __always_inline void lg_summary_of(const struct lg_path_summary *summary, __u8 slot,
					  struct lg_slot_summary *out)
{
	if (summary)
		*out = summary->slots[slot & (LG_SUMMARY_SLOTS - 1)];
	else
		__builtin_memset(out, 0, sizeof(*out));
}

/*
 * The summary of device `dev`'s entries in `generation` (NULL: it has none):
 * only the entries of a name's own device can hit, as their keys hash its
 * device word.
 */
static __always_inline const struct lg_path_summary *lg_device_summary(__u32 generation, __u32 dev)
{
	struct lg_device_summary_key key = { .generation = generation, .dev = dev };

	return bpf_map_lookup_elem(&lg_device_summaries, &key);
}

/* Which lookups of the slots `summary` (the name's device's; NULL: none) lets hit, into `l`. */
static __always_inline void lg_lookup_want(struct lg_lookup *l, const struct lg_path_summary *summary, __u8 slot_a,
					   __u8 slot_b, __u32 nslots)
{
	lg_summary_of(summary, slot_a, &l->want[0]);
	if (nslots > 1)
		lg_summary_of(summary, slot_b, &l->want[1]);
	else
		__builtin_memset(&l->want[1], 0, sizeof(l->want[1]));
	if (summary)
		l->want_ancestor = summary->slots[LG_SUMMARY_ANCESTORS].exact;
	else
		__builtin_memset(&l->want_ancestor, 0, sizeof(l->want_ancestor));
}

/*
 * Look `path` up in up to two slots into found[0..nslots), and with
 * `by_inode` the file's inode entries too; `l`: the scratch's lookup state,
 * its `want` already filled (lg_lookup_want). A function of its own (not
 * inlined): its frame is then not in the frame of a decision, whose call
 * chain must keep to 512 bytes of stack. With `ancestors`, the name's own
 * ancestor entry can be looked up after (lg_lookup_ancestor).
 */
static __noinline int lg_lookup_packed(const struct lg_config *config, const struct lg_path *path, __u64 what,
				       struct lg_masks found[LG_LOOKUP_SLOTS], struct lg_lookup *l)
{
	__u8 slot_a = what & 0xff, slot_b = (what >> 8) & 0xff;
	__u32 nslots = (what >> 16) & 0xff, generation = (what >> 32) & 1;
	bool by_inode = (what >> 24) & 1;
	struct lg_lookup_ctx c = { .l = l, .buf = path->buf, .found = found };

	__builtin_memset(found, 0, sizeof(struct lg_masks) * LG_LOOKUP_SLOTS);
	l->nslots = nslots;
	l->slots[0] = slot_a;
	l->slots[1] = slot_b;
	l->generation = generation;
	l->ancestors = (what >> 25) & 1;
	l->ancestor_wanted = 0;
	l->full_hash = 0;
	lg_lookup_path(config, path, &c);
	if (by_inode && path->ino) {
		lg_add_bound(path, generation, slot_a, &found[0]);
		if (nslots > 1)
			lg_add_bound(path, generation, slot_b, &found[1]);
	}
	return 0;
}

static __always_inline __u64 lg_pack_lookup(__u32 generation, __u8 slot_a, __u8 slot_b, __u32 nslots, bool by_inode,
					    bool ancestors)
{
	return (__u64)slot_a | (__u64)slot_b << 8 | (__u64)(nslots & 0xff) << 16 | (__u64)by_inode << 24 |
	       (__u64)ancestors << 25 | (__u64)(generation & 1) << 32;
}

/*
 * lg_lookup_packed's arguments, packed: a BPF call takes five. `summary`:
 * the summary of the name's device (lg_device_summary), which the caller
 * may already hold from deciding whether the name was needed at all.
 */
static __always_inline void lg_lookup_in(struct lg_scratch *s, const struct lg_config *config,
					 const struct lg_path *path, const struct lg_path_summary *summary,
					 __u32 generation, __u8 slot_a, __u8 slot_b, __u32 nslots, bool by_inode,
					 struct lg_masks found[LG_LOOKUP_SLOTS])
{
	lg_lookup_want(&s->lookup, summary, slot_a, slot_b, nslots);
	lg_lookup_packed(config, path, lg_pack_lookup(generation, slot_a, slot_b, nslots, by_inode, false), found,
			 &s->lookup);
}

/* lg_lookup_in, for a name whose own ancestor entry is looked up next (lg_lookup_ancestor). */
static __always_inline void lg_lookup_in_above(struct lg_scratch *s, const struct lg_config *config,
					       const struct lg_path *path, const struct lg_path_summary *summary,
					       __u32 generation, __u8 slot_a, __u8 slot_b, __u32 nslots,
					       bool by_inode, struct lg_masks found[LG_LOOKUP_SLOTS])
{
	lg_lookup_want(&s->lookup, summary, slot_a, slot_b, nslots);
	lg_lookup_packed(config, path, lg_pack_lookup(generation, slot_a, slot_b, nslots, by_inode, true), found,
			 &s->lookup);
}

/* lg_lookup_in of one slot, without inode entries, by the summary of the name's device (0: of no file system). */
static __always_inline void lg_lookup_one(struct lg_scratch *s, const struct lg_config *config,
					  const struct lg_path *path, __u32 generation, __u8 slot,
					  struct lg_masks found[LG_LOOKUP_SLOTS])
{
	lg_lookup_in(s, config, path, lg_device_summary(generation, path->dev), generation, slot, 0, 1, false, found);
}

#endif /* LSMGUARD_SCRATCH_BPF_H */
