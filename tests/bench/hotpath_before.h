/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The path lookup as it was before issue 24 (main at e640d2b: bpf/path.bpf.h
 * and bpf/scratch.bpf.h), verbatim but for the lgb_ names: SipHash fed one
 * byte per bpf_loop callback, a prefix lookup at every '/' of every slot.
 * The hot-path bench (hotpath.bpf.c) runs it beside the current code, in the
 * same object, against the same maps, so that "before" stays measurable.
 * Include after path.bpf.h and scratch.bpf.h.
 */
#ifndef LSMGUARD_HOTPATH_BEFORE_H
#define LSMGUARD_HOTPATH_BEFORE_H

/*
 * Looking a resolved path up in up to two slots of the path entries. The
 * state lives in the per-CPU scratch: a decision's call chain cannot spare
 * its stack (lg_scratch_intact vouches for it afterwards).
 */
struct lgb_lookup {
	struct lg_siphash state;
	__u32 start;
	__u32 len;
	__u32 nslots;
	__u8 slots[LG_LOOKUP_SLOTS];
	__u8 generation;
	__u8 reserved;
	__u64 full_hash;  /* the whole name's hash, for keys of other kinds (lg_lookup_ancestor) */
};

/* What the steps of a lookup reach: on the stack, where bpf_loop wants its context on 6.1. */
struct lgb_lookup_ctx {
	struct lgb_lookup *l;
	const struct lg_path_buf *buf;
	/* per slot: the exact entry, else the deepest prefix entry, else zeros */
	struct lg_masks *found;
};

static __always_inline void lgb_lookup_entry(const struct lgb_lookup_ctx *c, __u64 hash, __u32 len, __u8 match)
{
	struct lgb_lookup *l = c->l;
	struct lg_path_entry_key key = {
		.hash = hash, .len = len, .match = match, .generation = l->generation,
	};
	struct lg_masks *masks;
	__u32 i;

	/*
	 * Later hits replace earlier ones: deeper prefixes come later and already
	 * include their ancestors, and the exact lookup, which includes every
	 * covering prefix, comes last. No branch here depends on what earlier
	 * iterations stored (the 6.1 verifier would prune it).
	 */
	for (i = 0; i < LG_LOOKUP_SLOTS; i++) {
		if (i >= l->nslots)
			break;
		key.slot = l->slots[i];
		masks = bpf_map_lookup_elem(&lg_path_entries, &key);
		if (masks)
			c->found[i] = *masks;
	}
}

static long lgb_lookup_step(__u32 index, void *ctx)
{
	const struct lgb_lookup_ctx *c = ctx;
	struct lgb_lookup *l = c->l;
	char byte = c->buf->data[(l->start + index) & LG_PATH_MASK];

	/* A '/' after the first byte ends a directory prefix: /a of /a/b. */
	if (byte == '/' && index > 0)
		lgb_lookup_entry(c, lg_siphash_final(&l->state), index, LG_MATCH_PREFIX);

	/* Position from the index: see lg_siphash_byte's caveat in the 6.1 verifier. */
	l->state.len = LG_NAME_HASH_PREFIX + index;
	lg_siphash_byte(&l->state, byte);

	if (index == 0)  /* the root, "/" */
		lgb_lookup_entry(c, lg_siphash_final(&l->state), 1, LG_MATCH_PREFIX);
	if (index + 1 == l->len) {
		__u64 full = lg_siphash_final(&l->state);

		l->full_hash = full;
		if (index > 0)
			lgb_lookup_entry(c, full, l->len, LG_MATCH_PREFIX);
		lgb_lookup_entry(c, full, l->len, LG_MATCH_EXACT);
	}
	return 0;
}

/*
 * Start hashing a name: keyed, then its device word (a file's file system;
 * 0 for other names), so that one path on two file systems is two keys.
 */
static __always_inline void lgb_name_hash_init(struct lg_siphash *state, const struct lg_config *config,
					      const struct lg_path *path)
{
	lg_siphash_init(state, config->path_hash_key[0], config->path_hash_key[1]);
	lg_siphash_compress(state, path->dev);
	state->len = LG_NAME_HASH_PREFIX;
}

/*
 * Fill c->found for the resolved path: a fixed number of hash lookups per
 * path component, whatever the number of rules. c->found must start zeroed.
 */
static __always_inline void lgb_lookup_path(const struct lg_config *config, const struct lg_path *path,
					   struct lgb_lookup_ctx *c)
{
	struct lgb_lookup *l = c->l;

	lgb_name_hash_init(&l->state, config, path);
	l->start = path->start;
	l->len = path->len;
	bpf_loop(path->len, lgb_lookup_step, c, 0);
}

/*
 * Look `path` up in up to two slots into found[0..nslots), and with
 * `by_inode` the file's inode entries too; `l`: the scratch's lookup state.
 * A function of its own (not inlined): its frame is then not in the frame
 * of a decision, whose call chain must keep to 512 bytes of stack.
 * Returns the whole name's hash.
 */
static __noinline __u64 lgb_lookup_packed(const struct lg_config *config, const struct lg_path *path, __u64 what,
					 struct lg_masks found[LG_LOOKUP_SLOTS], struct lgb_lookup *l)
{
	__u8 slot_a = what & 0xff, slot_b = (what >> 8) & 0xff;
	__u32 nslots = (what >> 16) & 0xff, generation = (what >> 32) & 1;
	bool by_inode = (what >> 24) & 1;
	struct lgb_lookup_ctx c = { .l = l, .buf = path->buf, .found = found };

	__builtin_memset(found, 0, sizeof(struct lg_masks) * LG_LOOKUP_SLOTS);
	l->nslots = nslots;
	l->slots[0] = slot_a;
	l->slots[1] = slot_b;
	l->generation = generation;
	l->full_hash = 0;
	if (path->kind == LG_NAME_FILELESS) { /* rules name fileless files by one key: the empty name */
		lgb_name_hash_init(&l->state, config, path);
		l->full_hash = lg_siphash_final(&l->state);
		lgb_lookup_entry(&c, l->full_hash, 0, LG_MATCH_EXACT);
	} else {
		lgb_lookup_path(config, path, &c);
	}
	if (by_inode && path->ino) {
		lg_add_bound(path, generation, slot_a, &found[0]);
		if (nslots > 1)
			lg_add_bound(path, generation, slot_b, &found[1]);
	}
	return l->full_hash;
}

#endif /* LSMGUARD_HOTPATH_BEFORE_H */
