/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One access against the policy set in force: deny wins, enforce-mode
 * refusals return -EPERM, audit-mode refusals and audit rules only report.
 */
#ifndef LSMGUARD_DECIDE_BPF_H
#define LSMGUARD_DECIDE_BPF_H

#define EPERM 1
#define LG_RULE_POLICY_SHIFT 16
#define LG_RULE_INDEX_MASK 0xffff

/* De Bruijn sequence for the index of the lowest set bit in constant time. */
#define LG_DEBRUIJN64 0x03f79d71b4cb0a89ULL
static const __u8 lg_debruijn64_index[64] = {
	0, 1, 48, 2, 57, 49, 28, 3, 61, 58, 50, 42, 38, 29, 17, 4,
	62, 55, 59, 36, 53, 51, 43, 22, 45, 39, 33, 30, 24, 18, 12, 5,
	63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23, 11,
	46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9, 13, 8, 7, 6,
};

static __always_inline __u32 lg_lowest_bit(__u64 bits)
{
	return lg_debruijn64_index[((bits & -bits) * LG_DEBRUIJN64) >> 58];
}

/* The rule index of `rule` if it belongs to policy `policy_id`, else LG_NO_RULE. */
static __always_inline __u32 lg_rule_of(__u32 rule, __u32 policy_id)
{
	if (rule == LG_NO_RULE || rule >> LG_RULE_POLICY_SHIFT != policy_id)
		return LG_NO_RULE;
	return rule & LG_RULE_INDEX_MASK;
}

/*
 * Decide an operation on a path, looked up in `nslots` slots (open: the read
 * and write slots its file mode asks for). `detail` goes into the event.
 */
static __always_inline int lg_check_path(__u32 op, struct dentry *dentry, struct vfsmount *mnt,
					 __u8 slot_a, __u8 slot_b, __u32 nslots, __u32 detail)
{
	struct lg_lookup lookup = { .nslots = nslots, .slots = { slot_a, slot_b } };
	struct lg_policy_set *set;
	struct lg_config *config;
	struct lg_path path;
	__u64 applies, deny = 0, missing = 0, audit = 0, refusing, enforced;
	__u32 deny_rule = LG_NO_RULE, audit_rule = LG_NO_RULE, zero = 0, generation, i, policy_id;

	config = bpf_map_lookup_elem(&lg_config, &zero);
	if (!config)
		return 0;
	generation = config->generation & 1;
	set = bpf_map_lookup_elem(&lg_policy_sets, &generation);
	if (!set || !set->policies)
		return 0; /* nothing applied: no path walk at all */
	if (!lg_resolve_path(dentry, mnt, &path))
		return 0;
	if (path.flags)
		lg_stat_inc(LG_STAT_PATHS_UNRESOLVED);
	lookup.generation = generation;
	if (!lg_lookup_path(&path, &lookup))
		return 0;

	applies = set->policies; /* subjects narrow this per task (engine work to come) */
	for (i = 0; i < LG_LOOKUP_SLOTS; i++) {
		struct lg_masks *m = &lookup.found[i];
		__u8 slot = lookup.slots[i];

		if (i >= nslots)
			break;
		if ((m->deny & applies) && deny_rule == LG_NO_RULE)
			deny_rule = m->deny_rule;
		if ((m->audit & applies) && audit_rule == LG_NO_RULE)
			audit_rule = m->audit_rule;
		deny |= m->deny & applies;
		audit |= m->audit & applies;
		if (slot < LG_SLOT_COUNT)
			missing |= set->default_deny[slot] & ~m->allow & applies;
	}

	if (audit) {
		policy_id = lg_lowest_bit(audit);
		lg_emit_path_event(op, LG_DECISION_AUDIT, policy_id, lg_rule_of(audit_rule, policy_id), &path, detail);
	}
	refusing = deny | missing;
	if (!refusing)
		return 0;
	enforced = refusing & set->enforce;
	policy_id = lg_lowest_bit(enforced ? enforced : refusing);
	lg_emit_path_event(op, enforced ? LG_DECISION_DENY : LG_DECISION_WOULD_DENY, policy_id,
			   (deny >> policy_id) & 1 ? lg_rule_of(deny_rule, policy_id) : LG_NO_RULE, &path, detail);
	if (!enforced)
		return 0;
	lg_stat_inc(LG_STAT_DENIED);
	return -EPERM;
}

#endif /* LSMGUARD_DECIDE_BPF_H */
