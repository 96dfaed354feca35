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

/* Fold what the rules say of other names (those below a directory) into what they say of the name. */
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

/* The access `q` asks about, in the scratch, its rule slots not yet looked up. */
static __always_inline struct lg_access *lg_access_of(const struct lg_question *q, struct lg_scratch *s)
{
	struct lg_access *a = &s->access;

	__builtin_memset(&a->found[LG_DRIFT_ENTRY], 0, sizeof(a->found[LG_DRIFT_ENTRY]));
	a->slots[0] = q->slots[0];
	a->slots[1] = q->slots[1];
	a->nslots = q->nslots;
	a->unresolved = false;
	a->rules_only = q->flags & LG_Q_RULES_ONLY;
	a->everyone = q->flags & LG_Q_EVERYONE;
	return a;
}

/*
 * A decision comes in two global functions, called one after the other by
 * the hook: one finds what the entries say of the object (into the scratch),
 * the other decides and reports. Split, the lookups of the first and the
 * subjects of the second each have the whole stack, not what is left of it.
 * The first hands the second a ticket: the scratch's slot and sequence
 * number, and the generation it looked up; 0: nothing is applied (and the
 * scratch, if it was taken, is given back). The second gives it back.
 */
#define LG_TICKET_SLOT_SHIFT 1
#define LG_TICKET_SEQ_SHIFT 3   /* above the slot: LG_SCRATCH_SLOTS is 4 */

static __always_inline __u64 lg_ticket(const struct lg_scratch *s, __u64 seq, __u32 generation)
{
	return seq << LG_TICKET_SEQ_SHIFT | (__u64)(s->slot & (LG_SCRATCH_SLOTS - 1)) << LG_TICKET_SLOT_SHIFT |
	       (generation & 1);
}

/*
 * Finish finding: what drift says of code, whether the name could be
 * resolved, and the name reported. Drift is read only for code (an inode to
 * look at) while a policy has a drift option; otherwise its masks stay the
 * zeros lg_access_of wrote, what lg_drift_of finds of no drift: its three
 * probe reads and its scan ran in every decision. The branch's two ends
 * differ only in the scratch (map memory the verifier does not track), so
 * it walks the rest of the function once.
 */
static __always_inline __u64 lg_found(const struct lg_question *q, struct lg_scratch *s, __u64 seq,
				      const struct lg_policy_set *set, __u32 generation, struct lg_access *a,
				      struct lg_path *path)
{
	if (q->code && (set->drift_deny | set->drift_audit))
		lg_drift_of(set, generation, q->code, q->mark, &a->found[LG_DRIFT_ENTRY]);
	a->unresolved = lg_path_unresolved(s, seq, path);
	lg_path_keep(path, &s->named);
	return lg_ticket(s, seq, generation);
}

/* Decode a global decision's question; NULL: nothing applied (no walk at all). */
static __always_inline struct lg_policy_set *lg_question_begin(__u64 question, __u64 code, __u64 mark,
							       struct lg_question *q, struct lg_config **config,
							       __u32 *generation, struct lg_scratch **s, __u64 *seq)
{
	q->code = code;
	q->mark = mark;
	lg_unpack_question(question, q);
	return lg_begin(config, generation, s, seq);
}

/*
 * The global functions below find and decide: the verifier checks each once
 * per program, with its arguments unknown, rather than once per call site
 * and path into it, which multiplied what it walked tenfold. Their arguments
 * are scalars (6.1 lets a global function take no kernel pointer): addresses,
 * read through probe reads as every read here is (lg_address). Each keeps
 * to one shape: what varies is data, not branches.
 */

/*
 * Does a default of slot `slot` of `set` refuse (not for a question decided by
 * rules only)? Its allow entries then decide, whatever file system they are on.
 */
static __always_inline bool lg_default_refuses(const struct lg_policy_set *set, __u8 slot, bool rules_only)
{
	__u32 i = slot & LG_SLOT_INDEX_MASK;     /* masked for the verifier; the check below decides */

	if (slot >= LG_SLOT_COUNT || i >= LG_SLOT_COUNT)
		return true;
	return !rules_only && set->default_deny[i];
}

/* Whether `summary` (NULL: none) has entries in the question's slots. */
static __always_inline bool lg_summary_has(const struct lg_path_summary *summary, const struct lg_question *q)
{
	const struct lg_slot_summary *a, *b;

	if (!summary)
		return false;
	a = &summary->slots[q->slots[0] & (LG_SUMMARY_SLOTS - 1)];
	b = &summary->slots[q->slots[1] & (LG_SUMMARY_SLOTS - 1)];
	return (a->exact.depths | a->prefix.depths) ||
	       (q->nslots > 1 && (b->exact.depths | b->prefix.depths));
}

/* The summary of the entries on `dentry`'s file system in `generation` (NULL: it has none). */
static __always_inline const struct lg_path_summary *lg_device_summary_of(__u32 generation, struct dentry *dentry)
{
	return lg_device_summary(generation, lg_identity_dev(dentry));
}

/*
 * True when some name could change what the set decides of this access:
 * an entry in its slots on the file's file system (the summaries; inode
 * entries mark their device's), a default that refuses there, or drift to
 * decide on code. When none can, the access is allowed with nothing to
 * report, and the file's name is not walked. That holds for a name the walk
 * could not have finished too (lg_weigh's unresolved refusal): no entry of
 * the file's file system, no rule could have matched it, whatever its name.
 * The generation's summary of every device is asked first: where it has no
 * entry, the device's is not read. When the name is needed, `*device` is
 * the device's summary, for the lookups.
 */
static __always_inline bool lg_name_needed(const struct lg_policy_set *set, __u32 generation,
					   const struct lg_question *q, struct dentry *dentry,
					   const struct lg_path_summary **device)
{
	const struct lg_path_summary *summary = bpf_map_lookup_elem(&lg_path_summaries, &generation);
	bool rules_only = q->flags & LG_Q_RULES_ONLY;
	bool forced = !summary || ((q->flags & LG_Q_CODE) && (set->drift_deny | set->drift_audit)) ||
		      lg_default_refuses(set, q->slots[0], rules_only) ||
		      (q->nslots > 1 && lg_default_refuses(set, q->slots[1], rules_only));

	if (!forced && !lg_summary_has(summary, q))
		return false;
	*device = lg_device_summary_of(generation, dentry);
	return forced || lg_summary_has(*device, q);
}

/* Find what the entries say of the file (or the name not yet made) at `dentry`. */
__noinline __u64 lg_find_file(__u64 question, __u64 dentry, __u64 code, __u64 mark)
{
	const struct lg_path_summary *device;
	struct lg_policy_set *set;
	struct lg_access *a;
	struct lg_question q;
	struct lg_config *config;
	struct lg_scratch *s;
	struct lg_path path;
	__u32 generation;
	__u64 seq, ticket;
	bool nothing;

	q.code = code;
	q.mark = mark;
	lg_unpack_question(question, &q);
	/* asked before the scratch is taken: an access that needs no name tears no other's decision */
	set = lg_policy_set_in_force(&config, &generation);
	if (!set || !lg_name_needed(set, generation, &q, (struct dentry *)dentry, &device))
		return 0;
	s = lg_scratch_take(&seq);
	if (!s)
		return 0;
	a = lg_access_of(&q, s);
	lg_resolve_identity((struct dentry *)dentry, &s->path, &path);
	lg_lookup_in(s, config, &path, device, generation, q.slots[0], q.slots[1], q.nslots, set->bound_inodes != 0,
		     a->found);
	ticket = lg_found(&q, s, seq, set, generation, a, &path);
	/*
	 * Nothing found that could refuse or report: allowed here, without the
	 * decision's call. Only if no program tore the scratch since the lookups
	 * (their masks are read from it); a torn one goes to lg_conclude, which
	 * decides and counts it.
	 */
	nothing = lg_nothing_to_weigh(set, a);
	barrier(); /* the masks are read before the sequence that vouches for them */
	if (nothing && s->seq == seq) {
		lg_scratch_give(s, seq);
		return 0;
	}
	return ticket;
}

/*
 * Find what the entries say of writing a name whose change moves the names
 * below it (a rename's names, a mount point): the write rules of the name,
 * and the write deny rules of names below it. LG_Q_OWN_DENIALS_DECIDED: the
 * name's own deny rules were decided (and reported) as a new name for the
 * file already.
 */
__noinline __u64 lg_find_name_change(__u64 question, __u64 dentry)
{
	const struct lg_path_summary *device;
	struct lg_policy_set *set;
	struct lg_access *a;
	struct lg_question q;
	struct lg_config *config;
	struct lg_scratch *s;
	struct lg_path path;
	__u32 generation;
	__u64 seq, keep;

	set = lg_question_begin(question, 0, 0, &q, &config, &generation, &s, &seq);
	if (!set)
		return 0;
	/* no entry on its file system: only a default that refuses writing could say anything */
	device = lg_device_summary_of(generation, (struct dentry *)dentry);
	if (!device && !lg_default_refuses(set, q.slots[0], q.flags & LG_Q_RULES_ONLY)) {
		lg_scratch_give(s, seq);
		return 0;
	}
	a = lg_access_of(&q, s);
	lg_resolve_identity((struct dentry *)dentry, &s->path, &path);
	lg_lookup_in_above(s, config, &path, device, generation, q.slots[0], q.slots[1], q.nslots,
			   set->bound_inodes != 0, a->found);
	keep = (__u64)!!(q.flags & LG_Q_OWN_DENIALS_DECIDED) - 1;   /* decided: 0; else every bit */
	a->found[0].deny &= keep;
	lg_lookup_ancestor(&s->lookup, generation, &s->spare[0]);
	lg_merge_masks(&a->found[0], &s->spare[0]);
	return lg_found(&q, s, seq, set, generation, a, &path);
}

/* lg_conclude's decision, on the access found in `s`. */
static __always_inline int lg_decide_found(struct lg_scratch *s, __u64 question, __u64 mark, __u64 seq,
					   __u32 generation)
{
	struct lg_outcome out = {};
	struct lg_policy_set *set;
	struct lg_config *config;
	struct lg_question q;
	struct lg_path path;
	__u32 zero = 0;

	config = bpf_map_lookup_elem(&lg_config, &zero);
	set = bpf_map_lookup_elem(&lg_policy_sets, &generation);
	if (!config || !set)
		return 0;
	lg_unpack_question(question, &q);
	lg_decide(s, seq, config, set, generation, &s->access, &out);
	lg_path_named(s, &path);
	if (!lg_scratch_intact(s, seq)) {
		__u64 refusal = lg_torn_refusal(set, &q);

		/* who the task is can still be told: its programs and ids are its own; its cgroup's
		 * walk would be in the same scratch, so every cgroup subject applies */
		if (!(q.flags & LG_Q_EVERYONE) && (refusal & set->with_subjects))
			refusal &= lg_applying_policies(NULL, seq, config, set, generation);
		lg_decide_torn(set, refusal, &out);
		path.flags |= LG_PATH_RACED;
	}
	if ((q.flags & LG_Q_REFUSALS_ONLY) && out.decision != LG_DECISION_DENY)
		return 0;
	if (out.audit)
		lg_emit_path_event(q.op, LG_DECISION_AUDIT, generation, out.audit_policy_id, out.audit_rule_id, &path,
				   q.detail, mark);
	if (out.decision == LG_DECISION_ALLOW)
		return 0;
	lg_emit_path_event(q.op, out.decision, generation, out.policy_id, out.rule_id, &path, q.detail, mark);
	return out.decision == LG_DECISION_DENY;
}

/*
 * Decide the access found (`ticket`), report what the policies say, and
 * return whether it is refused. The access lives in the scratch: torn by a
 * preempting program since it was found (only when it had to be shared),
 * it is not trusted, and the policies that refuse an object not named
 * decide. The scratch is given back.
 */
__noinline int lg_conclude(__u64 question, __u64 mark, __u64 ticket)
{
	__u32 generation = ticket & 1, slot = (ticket >> LG_TICKET_SLOT_SHIFT) & (LG_SCRATCH_SLOTS - 1);
	__u64 seq = ticket >> LG_TICKET_SEQ_SHIFT;
	struct lg_scratch *s = bpf_map_lookup_elem(&lg_scratch, &slot);
	int refused;

	if (!s)
		return 0;
	refused = lg_decide_found(s, question, mark, seq, generation);
	lg_scratch_give(s, seq);
	return refused;
}

/*
 * An address as a plain number: a global function takes scalars, and the
 * verifier knows a pointer by its register, whatever C casts it to. Copied
 * through a probe read, it is a number.
 */
static __always_inline __u64 lg_address(const void *pointer)
{
	__u64 address = 0;

	bpf_probe_read_kernel(&address, sizeof(address), &pointer);
	return address;
}

/* Conclude what a finding (`ticket`) found for `q`: the hook's verdict. */
static __always_inline int lg_check_found(const struct lg_question *q, __u64 ticket)
{
	/* a global function's result is any number to the verifier: a hook returns 0 or -EPERM */
	return ticket && lg_conclude(lg_pack_question(q), q->mark, ticket) ? -EPERM : 0;
}

/* Decide `q` on the file (or the name not yet made) `dentry`. */
static __always_inline int lg_check_file(const struct lg_question *q, struct dentry *dentry)
{
	if (!lg_policy_applied())   /* before the dentry's address is even read */
		return 0;
	return lg_check_found(q, lg_find_file(lg_pack_question(q), lg_address(dentry), q->code, q->mark));
}

#define LG_EXE_IDS_TORN (~0ULL)

/*
 * Which subject executables the file at `dentry` is (executable id bits), when
 * some policy names executables; a global function, as lg_find_file.
 */
__noinline __u64 lg_exe_ids_of(__u64 dentry)
{
	struct lg_policy_set *set;
	struct lg_config *config;
	struct lg_scratch *s;
	struct lg_path path;
	__u32 generation;
	__u64 seq, ids;

	set = lg_policy_set_in_force(&config, &generation);
	if (!set || !((set->with_subjects & ~set->unconstrained_exe) | set->excluding_exe))
		return 0;
	s = lg_scratch_take(&seq);
	if (!s)
		return 0;
	lg_resolve_identity((struct dentry *)dentry, &s->path, &path);
	lg_lookup_one(s, config, &path, generation, LG_SLOT_SUBJECT_EXE, s->spare);
	/* read before the intact check, which a preempting program's rewrite could follow;
	 * torn: every executable, which lg_exe_ids_asked asks again */
	ids = s->spare[0].allow;
	if (!lg_scratch_intact(s, seq))
		ids = LG_EXE_IDS_TORN;
	lg_scratch_give(s, seq);
	return ids;
}

/*
 * lg_exe_ids_of, asked again if a preempting program tore its scratch; torn
 * twice, the file counts as every executable: every policy naming one applies
 * to it, rather than none, and LG_EXE_ID_TORN among them says that no except
 * naming executables may exempt it. (A file that is truly every executable is
 * only looked up twice.)
 */
static __always_inline __u64 lg_exe_ids_asked(struct dentry *dentry)
{
	__u64 ids = lg_exe_ids_of(lg_address(dentry));

	return ids == LG_EXE_IDS_TORN ? lg_exe_ids_of(lg_address(dentry)) : ids;
}

#endif /* LSMGUARD_FILE_BPF_H */
