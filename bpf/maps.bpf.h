/* SPDX-License-Identifier: GPL-2.0 */
/* Every map of the lsmguard object. Layouts of keys and values: abi.h. */
#ifndef LSMGUARD_MAPS_BPF_H
#define LSMGUARD_MAPS_BPF_H

/* Two generations of up to 131072 path entries each, for atomic replacement. */
#define LG_PATH_ENTRIES_MAX (2 * 131072)
#define LG_GENERATIONS 2
/* Two generations of up to 65536 networks and of 131072 port intervals each. */
#define LG_INET_NETWORKS_MAX (2 * 65536)
#define LG_PORT_INTERVALS_MAX (2 * 131072)
#define LG_SUBJECT_UIDS_MAX (2 * 65536)
/* Two generations of up to 65536 file systems with path entries each. */
#define LG_DEVICE_SUMMARIES_MAX (2 * 65536)
/* Rule hit counters of both generations (a rule that never hits has none). */
#define LG_RULE_HITS_MAX (2 * 65536)
/* Every rule of both generations, plus each policy's default and unattributed refusals. */
#define LG_RULE_IDENTITIES_MAX (2 * (262144 + 2 * LG_MAX_POLICIES))

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lg_config);
} lg_config SEC(".maps");

/* The build whose programs are attached (abi.h, struct lg_build): user space only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lg_build);
} lg_build SEC(".maps");

/*
 * Whether the kernel coalesces events (coalesce.bpf.h): the daemon turns it on
 * when it starts, as it is the one that reads the windows' counts; a table
 * driven without it (the CLI alone, or a test reading the ring) sees one event
 * per access. Its own map, so that no read-modify-write of lg_config races an
 * apply's switch of generation.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} lg_coalescing SEC(".maps");

static __always_inline bool lg_coalescing_on(void)
{
	__u32 zero = 0, *on = bpf_map_lookup_elem(&lg_coalescing, &zero);

	return on && *on;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LG_GENERATIONS);
	__type(key, __u32);
	__type(value, struct lg_policy_set);
} lg_policy_sets SEC(".maps");

/* Per generation: which path-entry lookups can hit (abi.h); written with the generation's entries. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LG_GENERATIONS);
	__type(key, __u32);
	__type(value, struct lg_path_summary);
} lg_path_summaries SEC(".maps");

/* Per generation and device: which of that device's path-entry lookups can hit (abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LG_DEVICE_SUMMARIES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);   /* a host's devices with rules are few: memory as used */
	__type(key, struct lg_device_summary_key);
	__type(value, struct lg_path_summary);
} lg_device_summaries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LG_PATH_ENTRIES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lg_path_entry_key);
	__type(value, struct lg_masks);
} lg_path_entries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LG_INET_NETWORKS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lg_inet_key);
	__type(value, struct lg_inet_value);
} lg_inet_networks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LG_PORT_INTERVALS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lg_port_interval_key);
	__type(value, struct lg_port_interval);
} lg_port_intervals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LG_SUBJECT_UIDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lg_uid_key);
	__type(value, struct lg_uid_policies);
} lg_subject_uids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct lg_task_subject);
} lg_task_subjects SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LG_EXE_IDS);
	__type(key, __u32);
	__type(value, struct lg_exe_id);
} lg_exe_ids SEC(".maps");

/* Rule reference of a generation -> its identity, keyed SipHash of "policy\0rule"; userspace only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LG_RULE_IDENTITIES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lg_rule_hit_key);
	__type(value, __u64);
} lg_rule_identities SEC(".maps");

/* Hits of rules of generations already replaced, by rule identity; userspace only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LG_RULE_HITS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);   /* keyed SipHash of "policy\0rule" */
	__type(value, __u64);
} lg_rule_hits_carried SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, LG_RULE_HITS_MAX);
	__type(key, struct lg_rule_hit_key);
	__type(value, __u64);
} lg_rule_hits SEC(".maps");

#include "event_maps.bpf.h"

#define LG_EEXIST 17

/* Count one hit of rule reference `rule` (see LG_RULE_POLICY_SHIFT) in `generation`. */
static __always_inline void lg_count_hit(__u32 rule, __u32 generation)
{
	struct lg_rule_hit_key key = { .rule = rule, .generation = generation };
	__u64 one = 1, *hits;
	long err;

	/* atomic, as lg_stat_inc: a program preempted on this CPU by another must not lose a hit */
	hits = bpf_map_lookup_elem(&lg_rule_hits, &key);
	if (hits) {
		__sync_fetch_and_add(hits, 1);
		return;
	}
	err = bpf_map_update_elem(&lg_rule_hits, &key, &one, BPF_NOEXIST);
	if (err == -LG_EEXIST) { /* another CPU created it meanwhile */
		hits = bpf_map_lookup_elem(&lg_rule_hits, &key);
		if (hits)
			__sync_fetch_and_add(hits, 1);
	} else if (err) {
		lg_stat_inc(LG_STAT_HITS_UNCOUNTED);
	}
}

#endif /* LSMGUARD_MAPS_BPF_H */
