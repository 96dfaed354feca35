/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Resolving a (dentry, vfsmount) to an absolute path, and hashing it.
 *
 * bpf_d_path is refused in path_* hooks on 6.1, so the path is built by a
 * bounded walk up the dentry tree, crossing mounts, in the style of d_path:
 * components are written right to left into a per-CPU buffer. The path is
 * relative to the root of the task's mount namespace (not its chroot), so a
 * chroot cannot rename what a rule protects.
 */
#ifndef LSMGUARD_PATH_BPF_H
#define LSMGUARD_PATH_BPF_H

#define LG_NAME_MAX 255
#define LG_PATH_MASK (LG_PATH_MAX - 1)
/* Twice LG_PATH_MAX so that a masked offset plus a name never leaves the buffer. */
#define LG_PATH_BUF_SIZE (2 * LG_PATH_MAX)
/* Every component costs at least two bytes ("/x"); mount crossings cost a step each. */
#define LG_WALK_MAX_STEPS (LG_PATH_MAX / 2 + 64)

struct lg_path_buf {
	char data[LG_PATH_BUF_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lg_path_buf);
} lg_path_scratch SEC(".maps");

/* A resolved path: buf->data[start, start + len), not NUL-terminated. */
struct lg_path {
	struct lg_path_buf *buf;
	__u32 start;
	__u32 len;
	__u32 flags; /* enum lg_path_flags */
};

struct lg_walk {
	struct dentry *dentry;
	struct mount *mnt;
	struct dentry *mnt_root;
	struct lg_path_buf *buf;
	__u32 pos; /* the path so far is data[pos, LG_PATH_MAX) */
	__u32 flags;
	bool reached_root;
};

static __always_inline struct mount *lg_real_mount(struct vfsmount *vfsmnt)
{
	return (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
}

static long lg_walk_step(__u32 index, void *ctx)
{
	struct lg_walk *w = ctx;
	struct dentry *dentry = w->dentry;
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	const unsigned char *name;
	__u32 len;

	if (dentry == w->mnt_root || dentry == parent) {
		struct mount *mnt = w->mnt;
		struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);

		if (mnt == mnt_parent) {
			w->reached_root = true;
			return 1;
		}
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mnt_parent;
		w->mnt_root = BPF_CORE_READ(mnt_parent, mnt.mnt_root);
		return 0;
	}

	len = BPF_CORE_READ(dentry, d_name.len);
	name = BPF_CORE_READ(dentry, d_name.name);
	if (len > LG_NAME_MAX || w->pos < len + 1) {
		w->flags |= LG_PATH_TRUNCATED;
		return 1;
	}
	w->pos -= len;
	bpf_probe_read_kernel(&w->buf->data[w->pos & LG_PATH_MASK], len & LG_NAME_MAX, name);
	w->pos -= 1;
	w->buf->data[w->pos & LG_PATH_MASK] = '/';
	w->dentry = parent;
	return 0;
}

/* Resolve `dentry` on `vfsmnt`; returns false only if the scratch buffer is missing. */
static __always_inline bool lg_resolve_path(struct dentry *dentry, struct vfsmount *vfsmnt,
					    struct lg_path *out)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 zero = 0;
	struct lg_walk w = {
		.dentry = dentry,
		.mnt = lg_real_mount(vfsmnt),
		.mnt_root = BPF_CORE_READ(vfsmnt, mnt_root),
		.pos = LG_PATH_MAX,
	};

	w.buf = bpf_map_lookup_elem(&lg_path_scratch, &zero);
	if (!w.buf)
		return false;

	bpf_loop(LG_WALK_MAX_STEPS, lg_walk_step, &w, 0);

	if (!w.reached_root && !(w.flags & LG_PATH_TRUNCATED))
		w.flags |= LG_PATH_WALK_LIMIT;
	if (w.reached_root && w.mnt != BPF_CORE_READ(task, nsproxy, mnt_ns, root))
		w.flags |= LG_PATH_DETACHED;
	if (w.pos == LG_PATH_MAX) {
		w.pos -= 1;
		w.buf->data[w.pos & LG_PATH_MASK] = '/';
	}

	out->buf = w.buf;
	out->start = w.pos;
	out->len = LG_PATH_MAX - w.pos;
	out->flags = w.flags;
	return true;
}

#define LG_LOOKUP_SLOTS 2 /* open looks up read and write at once */

/* Looking a resolved path up in up to two slots of the path entries. */
struct lg_lookup {
	struct lg_siphash state;
	struct lg_path_buf *buf;
	__u32 start;
	__u32 len;
	__u32 nslots;
	__u8 slots[LG_LOOKUP_SLOTS];
	__u8 generation;
	__u8 reserved;
	/* per slot: the exact entry, else the deepest prefix entry, else zeros */
	struct lg_masks found[LG_LOOKUP_SLOTS];
};

static __always_inline void lg_lookup_entry(struct lg_lookup *l, __u64 hash, __u32 len, __u8 match)
{
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
			l->found[i] = *masks;
	}
}

static long lg_lookup_step(__u32 index, void *ctx)
{
	struct lg_lookup *l = ctx;
	char byte = l->buf->data[(l->start + index) & LG_PATH_MASK];

	/* A '/' after the first byte ends a directory prefix: /a of /a/b. */
	if (byte == '/' && index > 0)
		lg_lookup_entry(l, lg_siphash_final(&l->state), index, LG_MATCH_PREFIX);

	/* Position from the index: see lg_siphash_byte's caveat in the 6.1 verifier. */
	l->state.len = index;
	lg_siphash_byte(&l->state, byte);

	if (index == 0)  /* the root, "/" */
		lg_lookup_entry(l, lg_siphash_final(&l->state), 1, LG_MATCH_PREFIX);
	if (index + 1 == l->len) {
		__u64 full = lg_siphash_final(&l->state);

		if (index > 0)
			lg_lookup_entry(l, full, l->len, LG_MATCH_PREFIX);
		lg_lookup_entry(l, full, l->len, LG_MATCH_EXACT);
	}
	return 0;
}

/*
 * Fill l->found for the resolved path: a fixed number of hash lookups per
 * path component, whatever the number of rules. Returns false without config.
 */
static __always_inline bool lg_lookup_path(const struct lg_path *path, struct lg_lookup *l)
{
	__u32 zero = 0;
	struct lg_config *config = bpf_map_lookup_elem(&lg_config, &zero);

	if (!config)
		return false;
	lg_siphash_init(&l->state, config->path_hash_key[0], config->path_hash_key[1]);
	l->buf = path->buf;
	l->start = path->start;
	l->len = path->len;
	bpf_loop(path->len, lg_lookup_step, l, 0);
	return true;
}

#endif /* LSMGUARD_PATH_BPF_H */
