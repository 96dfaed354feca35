/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One access against the policy set in force: deny wins, enforce-mode
 * refusals return -EPERM, audit-mode refusals and audit rules only report.
 * The hooks find the masks of their object; this file turns them into an
 * outcome, the same way for paths and addresses.
 */
#ifndef LSMGUARD_DECIDE_BPF_H
#define LSMGUARD_DECIDE_BPF_H

#define EPERM 1

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

/* The index of rule reference `rule` if it belongs to `policy_id`; else userspace must attribute. */
static __always_inline __u32 lg_rule_of(__u32 rule, __u32 policy_id)
{
	if (rule == LG_NO_RULE || rule >> LG_RULE_POLICY_SHIFT != policy_id)
		return LG_RULE_UNATTRIBUTED;
	return rule & LG_RULE_INDEX_MASK;
}

/* The policy set in force and its generation; NULL when nothing is applied. */
static __always_inline struct lg_policy_set *lg_policy_set_in_force(struct lg_config **config,
								     __u32 *generation)
{
	struct lg_policy_set *set;
	__u32 zero = 0;

	*config = bpf_map_lookup_elem(&lg_config, &zero);
	if (!*config)
		return NULL;
	*generation = (*config)->generation & 1;
	set = bpf_map_lookup_elem(&lg_policy_sets, generation);
	if (!set || !set->policies)
		return NULL;
	return set;
}

/* Is a policy set with policies in force? (Two map lookups: what a hook asks before any other work.) */
static __always_inline bool lg_policy_applied(void)
{
	struct lg_config *config;
	__u32 generation;

	return lg_policy_set_in_force(&config, &generation) != NULL;
}

#define LG_SLOT_INDEX_MASK 0xf /* a power of two above every slot, LG_SLOT_DRIFT included */

/* What a hook asks of the policy set about one object. */
struct lg_question {
	__u8 op;                           /* enum lg_op, for events */
	__u8 slots[LG_LOOKUP_SLOTS];       /* the slots looked up (open: read and write) */
	__u8 nslots;
	__u8 flags;                        /* enum lg_question_flags */
	__u32 detail;                      /* the event's mode (24 bits) */
	__u64 code;                        /* LG_Q_CODE: the inode (address) drift decides on */
	__u64 mark;                        /* LG_Q_CODE: its write mark (address; 0: none) */
};

enum lg_question_flags {
	LG_Q_RULES_ONLY = 1,               /* a policy's default does not refuse (executable mappings, real files) */
	LG_Q_CODE = 2,                     /* exec and executable mappings: drift decides too, on `code` */
	LG_Q_ANCESTORS = 4,                /* a name above others: write deny rules of names below it refuse */
	LG_Q_OWN_DENIALS_DECIDED = 8,      /* the name's own deny rules were decided already (lg_check_new_name) */
	LG_Q_REFUSALS_ONLY = 16,           /* report only a refusal: what else is said, the open that follows reports */
	LG_Q_EVERYONE = 32,                /* policies decide whatever their subjects (a file's names serve all) */
	LG_Q_NAME_DENIALS = 64,            /* a new name for a file: the deny rules of every path slot decide */
};

/* A question in one scalar, for the global functions that decide (a BPF call takes five). */
static __always_inline __u64 lg_pack_question(const struct lg_question *q)
{
	return (__u64)(q->op & 0xff) | (__u64)q->slots[0] << 8 | (__u64)q->slots[1] << 16 |
	       (__u64)(q->nslots & 0xff) << 24 | (__u64)(q->flags & 0xff) << 32 | (__u64)(q->detail & 0xffffff) << 40;
}

static __always_inline void lg_unpack_question(__u64 packed, struct lg_question *q)
{
	q->op = packed & 0xff;
	q->slots[0] = (packed >> 8) & 0xff;
	q->slots[1] = (packed >> 16) & 0xff;
	q->nslots = (packed >> 24) & 0xff;
	q->flags = (packed >> 32) & 0xff;
	q->detail = (packed >> 40) & 0xffffff;
}

struct lg_verdict {
	__u64 deny;
	__u64 missing;    /* default-deny policies without an allow */
	__u64 audit;
	__u32 deny_rule;
	__u32 audit_rule;
};

static __always_inline void lg_weigh_masks(const struct lg_masks *m, __u64 applies, struct lg_verdict *v)
{
	if ((m->deny & applies) && v->deny_rule == LG_NO_RULE)
		v->deny_rule = m->deny_rule;
	if ((m->audit & applies) && v->audit_rule == LG_NO_RULE)
		v->audit_rule = m->audit_rule;
	v->deny |= m->deny & applies;
	v->audit |= m->audit & applies;
}

/*
 * What the rules, the defaults and drift say for the policies in `applies`.
 * The options are masks, not branches (a branch would have the verifier walk
 * the rest of the decision once per way through it).
 */
static __always_inline void lg_weigh(const struct lg_policy_set *set, const struct lg_access *a, __u64 applies,
				     struct lg_verdict *v)
{
	__u64 defaults = (__u64)a->rules_only - 1;     /* rules only: 0; else every bit */
	__u64 unresolved = -(__u64)a->unresolved;      /* unresolved: every bit; else 0 */
	__u32 i;

	v->deny = v->missing = v->audit = 0;
	v->deny_rule = v->audit_rule = LG_NO_RULE;
	for (i = 0; i < LG_LOOKUP_SLOTS; i++) {
		const struct lg_masks *m = &a->found[i];
		/* masked: what indexes the policy set's arrays stays inside them for the verifier, whatever
		 * register copy it follows (the check below is the one that decides) */
		__u64 slot = a->slots[i] & LG_SLOT_INDEX_MASK;
		__u64 default_deny;

		if (i >= a->nslots)
			break;
		lg_weigh_masks(m, applies, v);
		if (slot >= LG_SLOT_COUNT)
			continue;
		default_deny = set->default_deny[slot];
		v->missing |= default_deny & ~m->allow & defaults & applies;
		/* unresolved: refuse where a rule could have matched (and, unless rules only, a default) */
		v->missing |= set->unresolved_refuse[slot] & ~(default_deny & ~defaults) & unresolved & applies;
	}
	lg_weigh_masks(&a->found[LG_DRIFT_ENTRY], applies, v);   /* what drift options say: no default */
}

/*
 * True when lg_weigh finds nothing for every policy of the set: no deny,
 * default or audit, nothing unresolved, no drift. lg_decide weighs the same
 * first, and the policies that apply are among them, so it would allow with
 * nothing to report: the finder can say so without the call that decides
 * (lg_conclude), most accesses' case under deny rules.
 */
static __always_inline bool lg_nothing_to_weigh(const struct lg_policy_set *set, const struct lg_access *a)
{
	struct lg_verdict v;

	lg_weigh(set, a, set->policies, &v);
	return !(v.deny | v.missing | v.audit);
}

/*
 * The policies that refuse an object not fully named in `slots`: where a
 * rule could have matched (and, unless rules only, a default), as lg_weigh.
 */
static __always_inline __u64 lg_unresolved_refusal(const struct lg_policy_set *set, const __u8 slots[LG_LOOKUP_SLOTS],
						   __u32 nslots, bool rules_only)
{
	__u64 defaults = (__u64)rules_only - 1, refusal = 0;
	__u32 i;

	for (i = 0; i < LG_LOOKUP_SLOTS; i++) {
		__u64 slot = slots[i] & LG_SLOT_INDEX_MASK;

		if (i >= nslots)
			break;
		if (slot < LG_SLOT_COUNT)
			refusal |= set->unresolved_refuse[slot] & ~(set->default_deny[slot] & ~defaults);
	}
	return refusal;
}

/* The path slots whose deny rules protect a file's name: every path operation's. */
static const __u8 lg_name_slots[] = { LG_SLOT_EXEC, LG_SLOT_CHMOD, LG_SLOT_OPEN_READ, LG_SLOT_OPEN_WRITE };

/* The policies whose deny rules in those slots could match a name not resolved. */
static __always_inline __u64 lg_name_refusal(const struct lg_policy_set *set)
{
	__u64 refusal = 0;
	__u32 i;

	for (i = 0; i < sizeof(lg_name_slots); i++)
		refusal |= set->unresolved_refuse[lg_name_slots[i]] & ~set->default_deny[lg_name_slots[i]];
	return refusal;
}

/* The policies that refuse what question `q` asks about, when the object could not be named. */
static __always_inline __u64 lg_torn_refusal(const struct lg_policy_set *set, const struct lg_question *q)
{
	if (q->flags & LG_Q_NAME_DENIALS)
		return lg_name_refusal(set);
	return lg_unresolved_refusal(set, q->slots, q->nslots, q->flags & LG_Q_RULES_ONLY);
}

/* What to report and return. */
struct lg_outcome {
	__u32 decision;      /* ALLOW, DENY or WOULD_DENY */
	__u32 policy_id;
	__u32 rule_id;       /* index, LG_NO_RULE or LG_RULE_UNATTRIBUTED */
	bool audit;
	__u32 audit_policy_id;
	__u32 audit_rule_id;
};

static __always_inline void lg_count_outcome_hit(__u32 policy_id, __u32 rule_id, __u32 generation)
{
	__u32 index = rule_id == LG_NO_RULE ? LG_RULE_INDEX_DEFAULT :
		      rule_id == LG_RULE_UNATTRIBUTED ? LG_RULE_INDEX_UNATTRIBUTED : rule_id;

	lg_count_hit(policy_id << LG_RULE_POLICY_SHIFT | (index & LG_RULE_INDEX_MASK), generation);
}

/*
 * Decide one access. Subjects are evaluated only when a policy with subjects
 * has something to say about this object, so most accesses never pay for them.
 */
static __always_inline void lg_decide(struct lg_scratch *s, __u64 seq, const struct lg_config *config,
				      const struct lg_policy_set *set, __u32 generation,
				      const struct lg_access *a, struct lg_outcome *out)
{
	struct lg_verdict v;
	__u64 refusing, enforced;

	lg_weigh(set, a, set->policies, &v);
	if (!a->everyone && ((v.deny | v.missing | v.audit) & set->with_subjects))
		lg_weigh(set, a, lg_applying_policies(s, seq, config, set, generation), &v);

	out->audit = v.audit != 0;
	if (out->audit) {
		out->audit_policy_id = lg_lowest_bit(v.audit);
		out->audit_rule_id = lg_rule_of(v.audit_rule, out->audit_policy_id);
		lg_count_outcome_hit(out->audit_policy_id, out->audit_rule_id, generation);
	}
	refusing = v.deny | v.missing;
	if (!refusing) {
		out->decision = LG_DECISION_ALLOW;
		return;
	}
	enforced = refusing & set->enforce;
	out->policy_id = lg_lowest_bit(enforced ? enforced : refusing);
	out->rule_id = (v.deny >> out->policy_id) & 1 ? lg_rule_of(v.deny_rule, out->policy_id) : LG_NO_RULE;
	out->decision = enforced ? LG_DECISION_DENY : LG_DECISION_WOULD_DENY;
	lg_count_outcome_hit(out->policy_id, out->rule_id, generation);
	if (enforced)
		lg_stat_inc(LG_STAT_DENIED);
}

/*
 * The outcome when a preempting program tore the scratch during the decision:
 * what the policies in `refusal` say of an object not named (the decision's
 * inputs cannot be trusted, the question can; the caller keeps those that
 * apply to the task).
 */
static __always_inline void lg_decide_torn(const struct lg_policy_set *set, __u64 refusal, struct lg_outcome *out)
{
	__u64 refusing = refusal & set->policies, enforced = refusing & set->enforce;

	out->audit = false;
	if (!refusing) {
		out->decision = LG_DECISION_ALLOW;
		return;
	}
	out->policy_id = lg_lowest_bit(enforced ? enforced : refusing);
	out->rule_id = LG_NO_RULE;
	out->decision = enforced ? LG_DECISION_DENY : LG_DECISION_WOULD_DENY;
	if (enforced)
		lg_stat_inc(LG_STAT_DENIED);
}

#endif /* LSMGUARD_DECIDE_BPF_H */
