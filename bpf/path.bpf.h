/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Naming a file, and hashing the name.
 *
 * A rule names a file, not one view of it, so decisions are made on the
 * file's identity: the device of its file system and its path from that file
 * system's root, whatever mount, bind mount, mount namespace or chroot it was
 * reached through. Userspace translates each rule's path into identities
 * with the host's mount table when a set is applied (lsmguard.mounts).
 *
 * Both names are built by a bounded walk up the dentry tree in the style of
 * d_path (bpf_d_path is refused in path_* hooks on 6.1): components are
 * written right to left into a per-CPU buffer. The identity walk stops at its
 * file system's root; the other one (lg_resolve_path) crosses mounts up to
 * the task's mount namespace root, and names what a process ran or where it
 * worked, for events.
 */
#ifndef LSMGUARD_PATH_BPF_H
#define LSMGUARD_PATH_BPF_H

#define LG_NAME_MAX 255
#define LG_PATH_MASK (LG_PATH_MAX - 1)
/* Twice LG_PATH_MAX so that a masked offset plus a name never leaves the buffer. */
#define LG_PATH_BUF_SIZE (2 * LG_PATH_MAX)
/* Every component costs at least two bytes ("/x"); mount crossings cost a step each. */
#define LG_WALK_MAX_STEPS (LG_PATH_MAX / 2 + 64)

#define LG_MNT_INTERNAL 0x4000 /* include/linux/mount.h: kern_mount()s of pipes, sockets, memfd */
#define LG_SB_KERNMOUNT (1 << 22) /* include/linux/fs.h: a super block kern_mount()ed (pipes, sockets, memfd, shm) */
/* fs/mount.h: the mnt_ns of kern_mount()s and of clone_private_mount()s (overlayfs layers) */
#define LG_MNT_NS_INTERNAL ((struct mnt_namespace *)-22L)

struct lg_path_buf {
	char data[LG_PATH_BUF_SIZE];
	__u32 start;  /* a walk's result, stored and read back: see lg_finish_path */
	__u32 flags;
};

/* A resolved name: buf->data[start, start + len), not NUL-terminated. */
struct lg_path {
	struct lg_path_buf *buf;
	__u32 start;
	__u32 len;
	__u32 flags; /* enum lg_path_flags */
	__u32 kind;  /* enum lg_name: a file's identity (hashed after its device), or another kind of name */
	__u32 dev;   /* LG_NAME_FILE: the file system's device (the kernel's encoding) */
	__u64 ino;   /* the file's inode number, for inode entries; 0: none (a name not yet made) */
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

/* A kern_mount() of the kernel's own: pipes, sockets, memfd. */
static __always_inline bool lg_mount_is_kern_mount(struct mount *mnt)
{
	return BPF_CORE_READ(mnt, mnt.mnt_flags) & LG_MNT_INTERNAL;
}

/* A mount that no namespace holds: a kern_mount() or a private clone. */
static __always_inline bool lg_mount_is_unowned(struct mount *mnt)
{
	return BPF_CORE_READ(mnt, mnt_ns) == LG_MNT_NS_INTERNAL;
}

static __always_inline bool lg_mount_is_internal(struct mount *mnt)
{
	return lg_mount_is_kern_mount(mnt) || lg_mount_is_unowned(mnt);
}

/*
 * A private clone of a mount that no namespace holds: a stacking filesystem's
 * view of its layers. Opening a file on one is the filesystem's own work for
 * an open already decided on the user's path (overlayfs's backing files).
 */
static __always_inline bool lg_mount_is_private_clone(struct vfsmount *vfsmnt)
{
	struct mount *mnt = lg_real_mount(vfsmnt);

	return lg_mount_is_unowned(mnt) && !lg_mount_is_kern_mount(mnt);
}

/*
 * What a walk reads of each dentry: its parent and its name. struct dentry
 * keeps d_parent and then d_name (the qstr: hash, len, name) side by side on
 * every kernel lsmguard supports, so one probe read fetches all three where
 * the running kernel's BTF says they still are; elsewhere three reads do.
 * Each probe read is a helper call, most of a walk step's cost.
 */
struct lg_dentry_link {
	struct dentry *parent;
	__u32 hash;
	__u32 len;
	const unsigned char *name;
};

static __always_inline bool lg_dentry_link_adjacent(void)
{
	__u32 parent = bpf_core_field_offset(struct dentry, d_parent);

	return bpf_core_field_offset(struct dentry, d_name.len) == parent + offsetof(struct lg_dentry_link, len) &&
	       bpf_core_field_offset(struct dentry, d_name.name) == parent + offsetof(struct lg_dentry_link, name) &&
	       bpf_core_field_size(struct dentry, d_name.len) == sizeof(__u32);
}

static __always_inline void lg_read_dentry_link(struct dentry *dentry, struct lg_dentry_link *link)
{
	if (lg_dentry_link_adjacent()) {
		bpf_probe_read_kernel(link, sizeof(*link), (void *)dentry + bpf_core_field_offset(struct dentry, d_parent));
		return;
	}
	link->parent = BPF_CORE_READ(dentry, d_parent);
	link->len = BPF_CORE_READ(dentry, d_name.len);
	link->name = BPF_CORE_READ(dentry, d_name.name);
}

/*
 * Prepend "/name" to the path built backwards in `buf` from `*pos`; 1 (and the path
 * flagged truncated) when it does not fit. Both walks end each step with it.
 */
static __always_inline int lg_prepend_name(struct lg_path_buf *buf, __u32 *pos, __u32 *flags,
					   const unsigned char *name, __u32 len)
{
	if (len > LG_NAME_MAX || *pos < len + 1) {
		*flags |= LG_PATH_TRUNCATED;
		return 1;
	}
	*pos -= len;
	bpf_probe_read_kernel(&buf->data[*pos & LG_PATH_MASK], len & LG_NAME_MAX, name);
	*pos -= 1;
	buf->data[*pos & LG_PATH_MASK] = '/';
	return 0;
}

static long lg_walk_step(__u32 index, void *ctx)
{
	struct lg_walk *w = ctx;
	struct dentry *dentry = w->dentry;
	struct lg_dentry_link link;

	lg_read_dentry_link(dentry, &link);
	if (dentry == w->mnt_root || dentry == link.parent) {
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

	if (lg_prepend_name(w->buf, &w->pos, &w->flags, link.name, link.len))
		return 1;
	w->dentry = link.parent;
	return 0;
}

/*
 * An empty walk is the root, "/".
 *
 * The walk's exits differ in what the verifier knows of `pos` (each iteration
 * narrows its range), and newer verifiers carry every distinct exit state
 * through the rest of the program. Storing the result in the map value and
 * reading it back (volatile, so the compiler keeps the round trip) leaves one
 * state: a value the verifier knows only by its mask.
 */
static __always_inline void lg_finish_path(struct lg_path_buf *buf, __u32 pos, __u32 flags, struct lg_path *out)
{
	if (pos >= LG_PATH_MAX) {
		pos = LG_PATH_MAX - 1;
		buf->data[pos & LG_PATH_MASK] = '/';
	}
	buf->start = pos;
	buf->flags = flags;
	out->buf = buf;
	out->start = *(volatile __u32 *)&buf->start & LG_PATH_MASK;
	out->len = LG_PATH_MAX - out->start;
	out->flags = *(volatile __u32 *)&buf->flags;
	out->kind = LG_NAME_PATH;
	out->dev = 0;
	out->ino = 0;
}

/*
 * A file on a kern_mount() (memfd_create, SysV shm, pipes, sockets) belongs
 * to no filesystem a path could name: "fileless" code, when it is executed.
 */
static __always_inline bool lg_is_fileless(struct vfsmount *vfsmnt)
{
	return lg_mount_is_kern_mount(lg_real_mount(vfsmnt));
}

/* A fileless file's name for events: its dentry's, as "memfd:NAME" (chosen by its creator). */
static __always_inline void lg_name_fileless(struct dentry *dentry, struct lg_path_buf *buf, struct lg_path *out)
{
	__u32 len = BPF_CORE_READ(dentry, d_name.len), pos;

	if (len > LG_NAME_MAX)
		len = LG_NAME_MAX;
	pos = LG_PATH_MAX - len;
	bpf_probe_read_kernel(&buf->data[pos & LG_PATH_MASK], len & LG_NAME_MAX, BPF_CORE_READ(dentry, d_name.name));
	lg_finish_path(buf, pos, 0, out);
	out->kind = LG_NAME_FILELESS;
}

/*
 * The path of `dentry` on `vfsmnt` as the task sees it, up to its mount
 * namespace's root: what events say a process ran or where it worked.
 * A fileless file is named by its dentry alone.
 */
static __always_inline void lg_resolve_path(struct dentry *dentry, struct vfsmount *vfsmnt,
					    struct lg_path_buf *buf, struct lg_path *out)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct lg_walk w = {
		.dentry = dentry,
		.mnt = lg_real_mount(vfsmnt),
		.mnt_root = BPF_CORE_READ(vfsmnt, mnt_root),
		.buf = buf,
		.pos = LG_PATH_MAX,
	};
	struct mount *last;

	if (lg_is_fileless(vfsmnt)) {
		lg_name_fileless(dentry, buf, out);
		return;
	}
	bpf_loop(LG_WALK_MAX_STEPS, lg_walk_step, &w, 0);

	if (!w.reached_root && !(w.flags & LG_PATH_TRUNCATED))
		w.flags |= LG_PATH_WALK_LIMIT;
	/*
	 * Ending on a mount that is not the namespace's root: a lazily unmounted
	 * tree, or another namespace's file. Internal mounts (pipes, sockets,
	 * memfd) are detached by nature and name nothing a rule could match.
	 */
	last = w.mnt;
	if (w.reached_root && last != BPF_CORE_READ(task, nsproxy, mnt_ns, root) && !lg_mount_is_internal(last))
		w.flags |= LG_PATH_DETACHED;
	lg_finish_path(buf, w.pos, w.flags, out);
}

struct lg_identity_walk {
	struct dentry *dentry;
	struct lg_path_buf *buf;
	__u32 pos; /* the path so far is data[pos, LG_PATH_MAX) */
	__u32 flags;
	bool reached_root;
};

/* One component of a walk that stays in the file's file system: no mount is crossed. */
static long lg_identity_step(__u32 index, void *ctx)
{
	struct lg_identity_walk *w = ctx;
	struct dentry *dentry = w->dentry;
	struct lg_dentry_link link;

	lg_read_dentry_link(dentry, &link);
	if (dentry == link.parent) {
		w->reached_root = true;
		return 1;
	}
	if (lg_prepend_name(w->buf, &w->pos, &w->flags, link.name, link.len))
		return 1;
	w->dentry = link.parent;
	return 0;
}

/*
 * Is `dentry` a file of no file system tree: a pseudo dentry (its own parent,
 * not its super block's root) on a super block of the kernel's internal
 * mounts (kern_mount: memfd, SysV shm, pipes, sockets, namespaces)? Such a
 * file is fileless, named by its dentry. A file system that the kernel
 * mounts for itself and users mount too (mqueue, securityfs, debugfs,
 * tracefs, selinuxfs, configfs) shares one super block with SB_KERNMOUNT
 * set, but its files are in its tree: named by their path, as any other.
 */
static __always_inline bool lg_fileless_dentry(struct dentry *dentry, struct super_block *sb)
{
	if (!(BPF_CORE_READ(sb, s_flags) & LG_SB_KERNMOUNT))
		return false;
	return BPF_CORE_READ(dentry, d_parent) == dentry && dentry != BPF_CORE_READ(sb, s_root);
}

/*
 * The identity of the file (or the name not yet made) `dentry`: its path from
 * its file system's root, and that file system's device. Mounts, bind mounts,
 * namespaces and chroots change how a file is reached, not this. A file of
 * no file system tree (memfd, SysV shm: lg_fileless_dentry) is fileless:
 * named by its dentry. A dentry cut off from its file system's root (a file handle's
 * disconnected dentry) is flagged: its path is not known in full.
 */
static __always_inline void lg_resolve_identity(struct dentry *dentry, struct lg_path_buf *buf,
						struct lg_path *out)
{
	struct super_block *sb = BPF_CORE_READ(dentry, d_sb);
	struct lg_identity_walk w = { .dentry = dentry, .buf = buf, .pos = LG_PATH_MAX };

	if (lg_fileless_dentry(dentry, sb)) {
		lg_name_fileless(dentry, buf, out);
		return;
	}
	bpf_loop(LG_WALK_MAX_STEPS, lg_identity_step, &w, 0);
	if (!w.reached_root && !(w.flags & LG_PATH_TRUNCATED))
		w.flags |= LG_PATH_WALK_LIMIT;
	if (w.reached_root && w.dentry != BPF_CORE_READ(sb, s_root))
		w.flags |= LG_PATH_DETACHED;
	lg_finish_path(buf, w.pos, w.flags, out);
	out->kind = LG_NAME_FILE;
	out->dev = BPF_CORE_READ(sb, s_dev);
	/* The file itself, whatever it is called: rules bound to it at apply time find it by these. */
	out->ino = BPF_CORE_READ(dentry, d_inode, i_ino);
}

/*
 * The device lg_resolve_identity names `dentry`'s file by, without the walk:
 * its file system's, or 0 for a fileless one (named by its dentry).
 */
static __always_inline __u32 lg_identity_dev(struct dentry *dentry)
{
	struct super_block *sb = BPF_CORE_READ(dentry, d_sb);

	return lg_fileless_dentry(dentry, sb) ? 0 : BPF_CORE_READ(sb, s_dev);
}

/* kernfs_node's parent pointer was renamed in 6.15. */
struct kernfs_node___pre615 {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

struct kernfs_node___615 {
	struct kernfs_node *__parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *lg_kernfs_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(struct kernfs_node___615, __parent))
		return BPF_CORE_READ((struct kernfs_node___615 *)kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___pre615 *)kn, parent);
}

#define LG_NAME_BUF_SIZE (LG_NAME_MAX + 1)

struct lg_cgroup_walk {
	struct kernfs_node *kn;
	struct lg_path_buf *buf;
	char *name;        /* LG_NAME_BUF_SIZE bytes of scratch */
	__u32 pos;
	__u32 flags;
	bool reached_root;
};

static long lg_cgroup_step(__u32 index, void *ctx)
{
	struct lg_cgroup_walk *w = ctx;
	struct kernfs_node *kn = w->kn;
	struct kernfs_node *parent = lg_kernfs_parent(kn);
	long copied;
	__u32 len;

	if (!parent) {
		w->reached_root = true;
		return 1;
	}
	copied = bpf_probe_read_kernel_str(w->name, LG_NAME_BUF_SIZE, BPF_CORE_READ(kn, name));
	if (copied <= 1) { /* unreadable, or an empty name: refuse to guess */
		w->flags |= LG_PATH_TRUNCATED;
		return 1;
	}
	len = copied - 1;
	if (len > LG_NAME_MAX || w->pos < len + 1) {
		w->flags |= LG_PATH_TRUNCATED;
		return 1;
	}
	w->pos -= len;
	bpf_probe_read_kernel(&w->buf->data[w->pos & LG_PATH_MASK], len & LG_NAME_MAX, w->name);
	w->pos -= 1;
	w->buf->data[w->pos & LG_PATH_MASK] = '/';
	w->kn = parent;
	return 0;
}

/* The current task's cgroup v2 path from the hierarchy's root (not its cgroup namespace's). */
static __always_inline void lg_resolve_cgroup(struct lg_path_buf *buf, char *name_buf, struct lg_path *out)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct lg_cgroup_walk w = {
		.kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn),  /* the task's cgroup v2 node */
		.buf = buf,
		.name = name_buf,
		.pos = LG_PATH_MAX,
	};

	if (w.kn)
		bpf_loop(LG_CGROUP_DEPTH_MAX, lg_cgroup_step, &w, 0);
	if (!w.reached_root && !(w.flags & LG_PATH_TRUNCATED))
		w.flags |= LG_PATH_WALK_LIMIT;
	lg_finish_path(buf, w.pos, w.flags, out);
}

#define LG_LOOKUP_SLOTS 2 /* open looks up read and write at once */

/*
 * Looking a resolved path up in up to two slots of the path entries. The
 * state lives in the per-CPU scratch: a decision's call chain cannot spare
 * its stack (lg_scratch_intact vouches for it afterwards).
 */
struct lg_lookup {
	struct lg_siphash state;  /* the name's whole words hashed so far; the last one's rest in `pending` */
	__u32 start;
	__u32 len;
	__u32 nslots;
	__u8 slots[LG_LOOKUP_SLOTS];
	__u8 ancestors;           /* the name is looked up as an ancestor too (lg_lookup_ancestor) */
	__u8 ancestor_wanted;     /* ... and its ancestor entry can exist: full_hash was taken */
	__u8 exact_wanted;        /* lg_lookup_whole's exact lookups (bit per slot) */
	__u32 generation;
	__u32 slashes;            /* '/' bytes after the first one among those hashed so far */
	__u64 full_hash;          /* the whole name's hash, if a lookup needed it (else 0) */
	struct lg_slot_summary want[LG_LOOKUP_SLOTS]; /* which lookups of each slot can hit (zeros: none) */
	struct lg_match_summary want_ancestor;
	struct lg_path_entry_key key;  /* the key being looked up */
	__u64 word;               /* the word being hashed (lg_lookup_ends) */
	__u64 marks;              /* ... 0x80 in its bytes that are '/' (but the name's first) */
	__u64 ends;               /* ... 0x80 in its bytes before which a directory ends */
	__u32 at;                 /* ... its offset in the name */
	__u32 reserved;
};

/* What the steps of a lookup reach: on the stack, where bpf_loop wants its context on 6.1. */
struct lg_lookup_ctx {
	struct lg_lookup *l;
	const struct lg_path_buf *buf;
	/* per slot: the exact entry, else the deepest prefix entry, else zeros */
	struct lg_masks *found;
};

/*
 * Look up the slots whose bit is set in `wanted`. Later hits replace
 * earlier ones: deeper prefixes come later and already include their
 * ancestors, and the exact lookup, which includes every covering prefix,
 * comes last. No branch here depends on what earlier iterations stored (the
 * 6.1 verifier would prune it).
 */
static __always_inline void lg_lookup_entry(const struct lg_lookup_ctx *c, __u64 hash, __u32 len, __u8 match,
					    __u32 wanted)
{
	struct lg_lookup *l = c->l;
	struct lg_masks *masks;
	__u32 i;

	/* the key in the scratch, not on the stack: a map value can be a key */
	l->key.hash = hash;
	l->key.len = len;
	l->key.match = match;
	l->key.generation = l->generation;
	l->key.reserved = 0;
	for (i = 0; i < LG_LOOKUP_SLOTS; i++) {
		if (!((wanted >> i) & 1))
			continue;
		l->key.slot = l->slots[i];
		masks = bpf_map_lookup_elem(&lg_path_entries, &l->key);
		if (masks)
			c->found[i] = *masks;
	}
}

/*
 * lg_siphash_final_at as a global function: a name's directories are hashed at up to
 * nine places of a lookup (lg_lookup_ends unrolled, lg_lookup_whole), and the verifier
 * then checks the finalisation once per program instead of at each.
 */
__noinline __u64 lg_name_hash_at(const struct lg_siphash *s, __u64 pending, __u64 len)
{
	if (!s)
		return 0;
	return lg_siphash_final_at(s, pending, len);
}

/* Bytes hashed ahead of every name: the device word (0 for names of no file system). */
#define LG_NAME_HASH_PREFIX 8

/* The depth of a name `len` bytes long with `slashes` '/' after its first byte, as lg_path_summary counts it. */
static __always_inline __u32 lg_name_depth(__u32 len, __u32 slashes)
{
	__u32 depth = len > 1 ? slashes + 1 : 0;

	return depth < LG_SUMMARY_DEPTH_MAX ? depth : LG_SUMMARY_DEPTH_MAX;
}

/* 1 if the entries summed up in `m` can hold a name of `depth` (at most 63) and `len`. */
static __always_inline __u32 lg_summary_admits(const struct lg_match_summary *m, __u32 depth, __u32 len)
{
	return (m->depths >> depth) & (m->lens >> (len & 63)) & 1;
}

/* Bit i: slot i can have a prefix (else exact) entry for a name of `depth` and `len`. */
static __always_inline __u32 lg_lookup_wanted(const struct lg_lookup *l, bool prefix, __u32 depth, __u32 len)
{
	if (prefix)
		return lg_summary_admits(&l->want[0].prefix, depth, len) |
		       lg_summary_admits(&l->want[1].prefix, depth, len) << 1;
	return lg_summary_admits(&l->want[0].exact, depth, len) | lg_summary_admits(&l->want[1].exact, depth, len) << 1;
}

/* 0x80 in each byte of `word` that is `byte`, 0 in the others. */
static __always_inline __u64 lg_bytes_equal(__u64 word, __u8 byte)
{
	const __u64 low7 = 0x7f7f7f7f7f7f7f7fULL;
	__u64 x = word ^ (0x0101010101010101ULL * byte);

	return ~(((x & low7) + low7) | x | low7);
}

/* How many bytes lg_bytes_equal marked in `marks`. */
static __always_inline __u32 lg_bytes_marked(__u64 marks)
{
	return ((marks >> 7) * 0x0101010101010101ULL) >> 56;
}

/* The bytes of a word before its byte `j` (0 to 7). */
static __always_inline __u64 lg_bytes_before(__u32 j)
{
	return ((__u64)1 << ((j & 7) * 8)) - 1;
}

/*
 * The prefix lookups of the directories that end in the word being hashed
 * (l->word, name[l->at, l->at + 8)), l->ends marking them, where the
 * summary lets them hit: each hashed from the words before and the bytes
 * of this one before it. The loop's state is in the scratch, not in
 * registers a lookup would make it spill to the stack.
 */
static __always_inline void lg_lookup_ends(const struct lg_lookup_ctx *c)
{
	struct lg_lookup *l = c->l;
	__u32 j;

#pragma unroll
	for (j = 0; j < 8; j++) {
		__u64 before = lg_bytes_before(j);
		__u32 len, wanted;

		if (!((l->ends >> (j * 8 + 7)) & 1))
			continue;
		len = l->at + j;
		wanted = lg_lookup_wanted(l, true, lg_name_depth(len, l->slashes + lg_bytes_marked(l->marks & before)),
					  len);
		if (wanted)
			lg_lookup_entry(c, lg_name_hash_at(&l->state, l->word & before, LG_NAME_HASH_PREFIX + len),
					len, LG_MATCH_PREFIX, wanted);
	}
}

/*
 * The whole name, hashed: its prefix and exact lookups where the summary
 * lets them hit, and its hash kept where an ancestor entry can be.
 */
static __always_inline void lg_lookup_whole(const struct lg_lookup_ctx *c)
{
	struct lg_lookup *l = c->l;
	__u32 depth = lg_name_depth(l->len, l->slashes);
	__u32 prefix = lg_lookup_wanted(l, true, depth, l->len);
	__u32 exact = lg_lookup_wanted(l, false, depth, l->len);
	__u32 ancestor = l->ancestors ? lg_summary_admits(&l->want_ancestor, depth, l->len) : 0;

	if (!(prefix | exact | ancestor))
		return;
	l->full_hash = lg_name_hash_at(&l->state, l->state.pending, LG_NAME_HASH_PREFIX + l->len);
	l->ancestor_wanted = ancestor;
	l->exact_wanted = exact;
	lg_lookup_entry(c, l->full_hash, l->len, LG_MATCH_PREFIX, prefix);
	lg_lookup_entry(c, l->full_hash, l->len, LG_MATCH_EXACT, l->exact_wanted);
}

/*
 * One word of the name, name[8 * index, 8 * index + 8): the prefix lookups
 * of the directories that end in it (/a of /a/b: a '/' after the first byte;
 * the root: after the first byte), then the word hashed. The name's hash
 * starts word-aligned (after the device word), so a whole word is one
 * SipHash compression; the last word's bytes are left pending.
 */
static long lg_lookup_word(__u32 index, void *ctx)
{
	const struct lg_lookup_ctx *c = ctx;
	struct lg_lookup *l = c->l;
	__u32 at = index * 8, rest = l->len - at;
	/* unaligned: the x86 and arm64 kernels let programs load map values at any alignment */
	__u64 word = *(const __u64 *)__builtin_assume_aligned(&c->buf->data[(l->start + at) & LG_PATH_MASK], 8);
	__u64 marks, ends;

	if (rest < 8)
		word &= lg_bytes_before(rest);
	marks = lg_bytes_equal(word, '/');
	if (index == 0)
		marks &= ~0x80ULL;       /* the first byte's '/' ends no directory: it is the root's */
	ends = marks;
	if (index == 0 && rest > 1)
		ends |= 0x8000;          /* the root ends after the first byte */
	if (ends && (l->want[0].prefix.depths | l->want[1].prefix.depths)) {
		l->at = at;
		l->word = word;
		l->marks = marks;
		l->ends = ends;
		lg_lookup_ends(c);
		word = l->word;
		rest = l->len - l->at;
		marks = l->marks;
	}
	l->slashes += lg_bytes_marked(marks);
	if (rest > 8) {
		lg_siphash_compress(&l->state, word);
		return 0;
	}
	/* the last word */
	if (rest == 8) {
		lg_siphash_compress(&l->state, word);
		word = 0;
	}
	l->state.pending = word;
	lg_lookup_whole(c);
	return 1;
}

/*
 * Start hashing a name: keyed, then its device word (a file's file system;
 * 0 for other names), so that one path on two file systems is two keys.
 */
static __always_inline void lg_name_hash_init(struct lg_siphash *state, const struct lg_config *config,
					      const struct lg_path *path)
{
	lg_siphash_init(state, config->path_hash_key[0], config->path_hash_key[1]);
	lg_siphash_compress(state, path->dev);
	state->len = LG_NAME_HASH_PREFIX;
}

/*
 * Fill c->found for the resolved path: per slot, the prefix lookups of the
 * path's directories and itself, then the exact lookup, each only where the
 * generation's summary says an entry can be (lg_path_summary): what no rule
 * can match costs no lookup, and a slot with no entries not even the
 * hashing. A fileless file is looked up by one name, the empty one. c->found
 * must start zeroed.
 */
static __always_inline void lg_lookup_path(const struct lg_config *config, const struct lg_path *path,
					   struct lg_lookup_ctx *c)
{
	struct lg_lookup *l = c->l;
	bool fileless = path->kind == LG_NAME_FILELESS;

	if (!path->len && !fileless)
		return;
	if (!(l->want[0].exact.depths | l->want[0].prefix.depths | l->want[1].exact.depths |
	      l->want[1].prefix.depths | (l->ancestors ? l->want_ancestor.depths : 0)))
		return;
	lg_name_hash_init(&l->state, config, path);
	l->start = path->start;
	l->len = fileless ? 0 : path->len;
	l->slashes = 0;
	bpf_loop(fileless ? 1 : (path->len + 7) / 8, lg_lookup_word, c, 0);
}

/*
 * What write deny rules say of the names below the directory just looked
 * up with `ancestors` (lg_lookup_in_above), `len` bytes long; zeros: none
 * protected.
 */
static __always_inline void lg_lookup_ancestor(const struct lg_lookup *l, __u32 generation, struct lg_masks *out)
{
	struct lg_path_entry_key key = {
		.hash = l->full_hash, .len = l->len, .slot = LG_SLOT_OPEN_WRITE, .match = LG_MATCH_ANCESTOR,
		.generation = generation,
	};
	struct lg_masks *masks = NULL;

	if (l->ancestor_wanted)
		masks = bpf_map_lookup_elem(&lg_path_entries, &key);
	if (masks) {
		*out = *masks;
	} else {
		__builtin_memset(out, 0, sizeof(*out));
		out->deny_rule = out->audit_rule = LG_NO_RULE;
	}
}

#endif /* LSMGUARD_PATH_BPF_H */
