/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Subjects: which policies apply to the current task.
 *
 * Executables are tracked per task in task storage: an exec adds the ids of
 * the executables it ran (the program and, for a script, its interpreter),
 * and a new task inherits its creator's ids. Ids are stable across policy
 * generations, so a replacement never forgets what a task ran. Cgroups match
 * by path, so a restarted unit's new cgroup is covered too; uids by the
 * effective uid.
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

static __always_inline __u64 lg_exe_policies(const struct lg_policy_set *set, __u64 ids)
{
	__u64 policies = 0;
	__u32 i;

	for (i = 0; i < LG_EXE_IDS; i++)
		if ((ids >> i) & 1)
			policies |= set->exe_policies[i];
	return policies;
}

static __always_inline __u64 lg_cgroup_policies(struct lg_scratch *s, const struct lg_config *config,
						__u32 generation)
{
	struct lg_path cgroup;
	__u64 seq = s->seq;
	__u64 policies;

	lg_resolve_cgroup(&s->cgroup, s->name, &cgroup);
	lg_lookup_in(s, config, &cgroup, generation, LG_SLOT_SUBJECT_CGROUP, 0, 1, false, s->spare);
	policies = s->spare[0].allow;
	/* deeper than the walk, or torn: let every cgroup subject apply rather than none */
	return cgroup.flags || !lg_scratch_intact(s, seq) ? ~0ULL : policies;
}

static __always_inline __u64 lg_uid_policies(struct task_struct *task, __u32 generation)
{
	struct lg_uid_key key = { .uid = BPF_CORE_READ(task, cred, euid.val), .generation = generation };
	__u64 *policies = bpf_map_lookup_elem(&lg_subject_uids, &key);

	return policies ? *policies : 0;
}

/* The policies applying to the current task: those without subjects, and those whose subjects match. */
static __always_inline __u64 lg_applying_policies(struct lg_scratch *s, const struct lg_config *config,
						  const struct lg_policy_set *set, __u32 generation)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 with = set->with_subjects, matched = with;

	matched &= set->unconstrained_exe | lg_exe_policies(set, lg_task_exe_ids(task));
	if (matched & ~set->unconstrained_cgroup)
		matched &= set->unconstrained_cgroup | lg_cgroup_policies(s, config, generation);
	if (matched & ~set->unconstrained_uid)
		matched &= set->unconstrained_uid | lg_uid_policies(task, generation);
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
