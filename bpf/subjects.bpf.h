/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Subjects: which policies apply to the current task.
 *
 * Executables are tracked per task in task storage: an exec adds the ids of
 * the executables it ran (the program and, for a script, its interpreter),
 * and a new task inherits its creator's ids. Ids are stable across policy
 * generations, so a replacement never forgets what a task ran. Cgroups match
 * by path, so a restarted unit's new cgroup is covered too; uids and gids by the
 * effective ones.
 */
#ifndef LSMGUARD_SUBJECTS_BPF_H
#define LSMGUARD_SUBJECTS_BPF_H

/* The exe ids of `task`, with its thread group leader's (threads share what the process ran). */
static __always_inline __u64 lg_task_exe_ids(struct task_struct *task)
{
	struct lg_task_subject *mine, *leader;
	__u64 ids = 0;

	mine = bpf_task_storage_get(&lg_task_subjects, task, 0, 0);
	if (mine)
		ids |= mine->exe_ids;
	leader = bpf_task_storage_get(&lg_task_subjects, task->group_leader, 0, 0);
	if (leader)
		ids |= leader->exe_ids;
	return ids;
}

/*
 * All ones if `bit` is 1, else 0. The loops below choose with masks, not with
 * branches: BPF has no conditional set, a comparison is a jump, and every
 * jump of an unrolled loop is another state for the verifier to walk (the
 * 64 ids' branches alone were a tenth of a path program's verification).
 * barrier_var keeps the compiler from turning the mask back into a jump.
 */
static __always_inline __u64 lg_mask_of(__u64 bit)
{
	__u64 mask = 0 - (bit & 1);

	barrier_var(mask);
	return mask;
}

/* 1 if a < b, for 32-bit values, without a jump: the 64-bit difference is negative. */
static __always_inline __u64 lg_below(__u32 a, __u32 b)
{
	__u64 difference = (__u64)a - b;

	barrier_var(difference);
	return difference >> 63;
}

static __always_inline __u64 lg_exe_policies(const __u64 by_id[LG_EXE_IDS], __u64 ids)
{
	__u64 policies = 0;
	__u32 i;

	for (i = 0; i < LG_EXE_IDS; i++)
		policies |= by_id[i] & lg_mask_of(ids >> i);
	return policies;
}

/*
 * The policies whose subjects name the task's cgroup (`*including`), and those whose except
 * does (`*excluding`). A cgroup deeper than the walk, or a scratch not intact since the
 * decision took it (`seq`; never, when it had to share one), lets every cgroup subject apply
 * and excepts nothing: the choice that governs rather than exempts.
 */
static __always_inline void lg_cgroup_policies(struct lg_scratch *s, __u64 seq, const struct lg_config *config,
					       __u32 generation, __u64 *including, __u64 *excluding)
{
	struct lg_path cgroup;

	lg_resolve_cgroup(&s->cgroup, s->name, &cgroup);
	lg_lookup_one(s, config, &cgroup, generation, LG_SLOT_SUBJECT_CGROUP, s->spare);
	/* read before the intact check: a preempting program may rewrite the scratch after it */
	*including = s->spare[0].allow;
	*excluding = s->spare[0].deny;
	if (cgroup.flags || !lg_scratch_intact(s, seq)) {
		*including = ~0ULL;
		*excluding = 0;
	}
}

/* The policies naming an id of a kind (the task's effective uid or gid), and those excepting it:
 * exactly (one lookup), or in one of `count` ranges. */
static __always_inline struct lg_uid_policies lg_id_policies(__u32 id, __u16 kind,
							     const struct lg_uid_range ranges[LG_UID_RANGES], __u32 count,
							     __u32 generation)
{
	struct lg_uid_key key = { .id = id, .generation = generation, .kind = kind };
	struct lg_uid_policies *found = bpf_map_lookup_elem(&lg_subject_uids, &key);
	struct lg_uid_policies out = {};
	__u32 i;

	if (found)
		out = *found;
	for (i = 0; i < LG_UID_RANGES; i++) {
		const struct lg_uid_range *range = &ranges[i];
		/* in use, low <= id and id <= high: each a 0 or 1, and no jump (lg_mask_of) */
		__u64 within = lg_mask_of(lg_below(i, count) & (lg_below(id, range->low) ^ 1) &
					  (lg_below(range->high, id) ^ 1));

		out.including |= range->including & within;
		out.excluding |= range->excluding & within;
	}
	return out;
}

/*
 * The policies applying to the current task: those without subjects, and those whose
 * subjects match (each kind they name) and whose except does not (any entry of it).
 * `s` NULL: a decision whose scratch is torn, where the cgroup's walk could not be
 * trusted either: every cgroup subject applies and none excepts (lg_cgroup_policies).
 */
static __always_inline __u64 lg_applying_policies(struct lg_scratch *s, __u64 seq, const struct lg_config *config,
						  const struct lg_policy_set *set, __u32 generation)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 with = set->with_subjects, matched = with, excluded = 0;
	__u64 exe_ids = lg_task_exe_ids(task);
	__u64 cgroup_including = 0, cgroup_excluding = 0;
	struct lg_uid_policies uid = {}, gid = {};

	matched &= set->unconstrained_exe | lg_exe_policies(set->exe_policies, exe_ids);
	if (!s)
		cgroup_including = ~0ULL;
	else if ((matched & ~set->unconstrained_cgroup) || (matched & set->excluding_cgroup))
		lg_cgroup_policies(s, seq, config, generation, &cgroup_including, &cgroup_excluding);
	if (matched & ~set->unconstrained_cgroup)
		matched &= set->unconstrained_cgroup | cgroup_including;
	if ((matched & ~set->unconstrained_uid) || (matched & set->excluding_uid))
		uid = lg_id_policies(BPF_CORE_READ(task, cred, euid.val), LG_ID_UID, set->uid_ranges,
				     set->uid_range_count, generation);
	if (matched & ~set->unconstrained_uid)
		matched &= set->unconstrained_uid | uid.including;
	if ((matched & ~set->unconstrained_gid) || (matched & set->excluding_gid))
		gid = lg_id_policies(BPF_CORE_READ(task, cred, egid.val), LG_ID_GID, set->gid_ranges,
				     set->gid_range_count, generation);
	if (matched & ~set->unconstrained_gid)
		matched &= set->unconstrained_gid | gid.including;
	if (matched & set->excluding) {
		/* a lineage with a torn exec lookup holds every id: it exempts by none */
		if (!((exe_ids >> LG_EXE_ID_TORN) & 1))
			excluded = lg_exe_policies(set->exe_excluding, exe_ids);
		excluded |= cgroup_excluding | uid.excluding | gid.excluding;
		matched &= ~(excluded & set->excluding);
	}
	return (set->policies & ~with) | matched;
}

/* The executables an exec in progress matched: they join the task's lineage when it commits. */
static __always_inline void lg_add_pending_exe_ids(__u64 exe_ids)
{
	struct lg_task_subject *subject;

	if (!exe_ids)
		return;
	subject = bpf_task_storage_get(&lg_task_subjects, bpf_get_current_task_btf(), 0,
				       BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (subject)
		subject->pending |= exe_ids;
}

#endif /* LSMGUARD_SUBJECTS_BPF_H */
