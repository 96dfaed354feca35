/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Names and permissions: what write and chmod rules mean beyond open and chmod.
 *
 * "Write" a path means changing the content of the file it names or what it
 * names: open for writing, truncation, and every operation that makes,
 * removes or replaces the name (unlink, rmdir, rename from or to it, link,
 * mknod, mkdir, symlink to it). Those are decided as an open of the name for
 * writing, defaults included. A directory above a name that write deny rules
 * protect moves that name along when it is renamed, so it is protected too.
 *
 * A new name for a file that deny rules name (a hard link, a rename) would
 * let the file be reached where no rule looks: refused for every process,
 * since names serve every process.
 *
 * "chmod" a path means changing who may do what with the file: its mode,
 * its owner, its POSIX ACLs and its file capabilities.
 */
#ifndef LSMGUARD_NAMES_BPF_H
#define LSMGUARD_NAMES_BPF_H

#define LG_O_TRUNC 01000      /* include/uapi/asm-generic/fcntl.h */
#define LG_S_IFMT 0170000     /* include/uapi/linux/stat.h */
#define LG_S_IFREG 0100000
#define LG_S_IFDIR 0040000
#define LG_S_IFLNK 0120000
#define LG_XATTR_NAME_MAX 32  /* enough for the longest name compared below, and its NUL */

/*
 * Writing the name `dentry`: its content, or what it names (made, removed,
 * replaced). A regular file made is decided, but reported only if refused:
 * open(O_CREAT) makes it, and its open reports it (as created).
 */
static __always_inline int lg_check_write(__u32 op, struct dentry *dentry, __u32 detail)
{
	const struct lg_question q = { .op = op, .slots = { LG_SLOT_OPEN_WRITE }, .nslots = 1, .detail = detail,
				       .flags = op == LG_OP_CREATE && (detail == LG_S_IFREG || !detail) ?
							LG_Q_REFUSALS_ONLY : 0 };

	return lg_check_file(&q, dentry);
}

/*
 * A name removed or replaced by a rename: written, and, for a directory, every
 * protected name below it. A source's own deny rules were decided as a new
 * name for the file (lg_check_new_name).
 */
static __always_inline int lg_check_name_removed(__u32 op, struct dentry *dentry, __u32 detail)
{
	const struct lg_question q = { .op = op, .slots = { LG_SLOT_OPEN_WRITE }, .nslots = 1, .detail = detail,
				       .flags = LG_Q_ANCESTORS |
						(detail == LG_NAME_SOURCE ? LG_Q_OWN_DENIALS_DECIDED : 0) };

	return lg_check_found(&q, lg_find_name_change(lg_pack_question(&q), lg_address(dentry)));
}

/* Fold what the deny rules of two path slots say about a name into `merged` (deny bits, and the first denying rule). */
static __always_inline void lg_merge_name_denials(struct lg_scratch *s, const struct lg_config *config,
						  const struct lg_policy_set *set, __u32 generation,
						  const struct lg_path *path, const struct lg_path_summary *device,
						  __u8 slot_a, __u8 slot_b)
{
	struct lg_masks *merged = &s->access.found[0];
	__u32 i;

	lg_lookup_in(s, config, path, device, generation, slot_a, slot_b, LG_LOOKUP_SLOTS, set->bound_inodes != 0,
		     s->spare);
	for (i = 0; i < LG_LOOKUP_SLOTS; i++) {
		if (s->spare[i].deny && merged->deny_rule == LG_NO_RULE)
			merged->deny_rule = s->spare[i].deny_rule;
		merged->deny |= s->spare[i].deny;
	}
}

/*
 * Find what deny rules say of a new name for the file at `dentry` (a hard
 * link, or the file renamed): refused where they name it, whichever path
 * slot. A global function, as lg_find_file; the question is
 * lg_check_new_name's.
 */
__noinline __u64 lg_find_new_name(__u64 question, __u64 dentry)
{
	const struct lg_path_summary *device;
	struct lg_policy_set *set;
	struct lg_question q;
	struct lg_config *config;
	struct lg_scratch *s;
	struct lg_access *a;
	struct lg_path path;
	__u32 generation;
	__u64 seq;

	set = lg_question_begin(question, 0, 0, &q, &config, &generation, &s, &seq);
	if (!set)
		return 0;
	device = lg_device_summary_of(generation, (struct dentry *)dentry);
	if (!device) {
		lg_scratch_give(s, seq);
		return 0;   /* no entry on its file system: no deny rule names the file */
	}
	a = lg_access_of(&q, s);
	__builtin_memset(a->found, 0, sizeof(a->found[0]) * LG_LOOKUP_SLOTS);
	a->found[0].deny_rule = a->found[0].audit_rule = LG_NO_RULE;
	lg_resolve_identity((struct dentry *)dentry, &s->path, &path);
	lg_merge_name_denials(s, config, set, generation, &path, device, lg_name_slots[0], lg_name_slots[1]);
	lg_merge_name_denials(s, config, set, generation, &path, device, lg_name_slots[2], lg_name_slots[3]);
	if (lg_path_unresolved(s, seq, &path))
		a->found[0].deny |= lg_name_refusal(set); /* a deny rule in any of these slots could have matched */
	lg_path_keep(&path, &s->named);
	return lg_ticket(s, seq, generation);
}

/*
 * A new name for the file at `dentry` (a hard link, or the file renamed):
 * refused for every process where deny rules name the file; never audited.
 */
static __always_inline int lg_check_new_name(__u32 op, struct dentry *dentry)
{
	const struct lg_question q = { .op = op, .slots = { LG_SLOT_EXEC }, .nslots = 1, .detail = LG_NAME_SOURCE,
				       .flags = LG_Q_RULES_ONLY | LG_Q_EVERYONE | LG_Q_NAME_DENIALS };

	return lg_check_found(&q, lg_find_new_name(lg_pack_question(&q), lg_address(dentry)));
}

/*
 * The names compared, as the little-endian words of their bytes and NULs:
 * constants in the instructions rather than strings in .rodata.
 */
#define LG_XATTR_SYSTEM_P 0x702e6d6574737973ULL     /* "system.p" */
#define LG_XATTR_OSIX_ACL 0x6c63615f7869736fULL     /* "osix_acl" */
#define LG_XATTR_ACCESS 0x7373656363615fULL         /* "_access\0" */
#define LG_XATTR_DEFAULT 0x746c75616665645fULL      /* "_default", then a NUL word */
#define LG_XATTR_SECURITY 0x7974697275636573ULL     /* "security" */
#define LG_XATTR_CAPABIL 0x6c6962617061632eULL      /* ".capabil" */
#define LG_XATTR_ITY 0x797469ULL                    /* "ity\0" */

/* Which extended attribute that changes a file's permissions `name` is (enum lg_xattr), or 0. */
static __always_inline __u32 lg_permission_xattr(const char *name)
{
	__u64 w[LG_XATTR_NAME_MAX / sizeof(__u64)] = {};

	if (bpf_probe_read_kernel_str(w, sizeof(w), name) <= 0)
		return 0;
	if (w[0] == LG_XATTR_SYSTEM_P && w[1] == LG_XATTR_OSIX_ACL) {
		if (w[2] == LG_XATTR_ACCESS)
			return LG_XATTR_ACL_ACCESS;
		if (w[2] == LG_XATTR_DEFAULT && !w[3])
			return LG_XATTR_ACL_DEFAULT;
	}
	if (w[0] == LG_XATTR_SECURITY && w[1] == LG_XATTR_CAPABIL && w[2] == LG_XATTR_ITY)
		return LG_XATTR_CAPABILITY;
	return 0;
}

#endif /* LSMGUARD_NAMES_BPF_H */
