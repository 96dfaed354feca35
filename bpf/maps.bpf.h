/* SPDX-License-Identifier: GPL-2.0 */
/* Every map of the lsmguard object. Layouts of keys and values: abi.h. */
#ifndef LSMGUARD_MAPS_BPF_H
#define LSMGUARD_MAPS_BPF_H

#define LG_EVENTS_RINGBUF_BYTES (8 * 1024 * 1024)
/* Two generations of up to 131072 path entries each, for atomic replacement. */
#define LG_PATH_ENTRIES_MAX (2 * 131072)
#define LG_GENERATIONS 2

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lg_config);
} lg_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LG_GENERATIONS);
	__type(key, __u32);
	__type(value, struct lg_policy_set);
} lg_policy_sets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LG_PATH_ENTRIES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lg_path_entry_key);
	__type(value, struct lg_masks);
} lg_path_entries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LG_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} lg_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, LG_EVENTS_RINGBUF_BYTES);
} lg_events SEC(".maps");

static __always_inline void lg_stat_inc(__u32 index)
{
	__u64 *counter = bpf_map_lookup_elem(&lg_stats, &index);

	if (counter)
		*counter += 1;
}

#endif /* LSMGUARD_MAPS_BPF_H */
