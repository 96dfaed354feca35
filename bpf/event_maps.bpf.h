/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where events go: the ring buffer the daemon reads, and the counters of what
 * could not go there. Shared by the lsmguard object and the pipeline bench's
 * producer (tests/bench/producer.bpf.c), so both have the same ring.
 */
#ifndef LSMGUARD_EVENT_MAPS_BPF_H
#define LSMGUARD_EVENT_MAPS_BPF_H

#define LG_EVENTS_RINGBUF_BYTES (16 * 1024 * 1024)

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

	if (counter) /* atomic: a program preempted on this CPU by another must not lose a count */
		__sync_fetch_and_add(counter, 1);
}

/* The bytes of its path a path event's record carries (abi.h: the size class of a path `len` long). */
static __always_inline __u32 lg_path_event_room(__u32 len)
{
	if (len <= LG_PATH_EVENT_SHORT)
		return LG_PATH_EVENT_SHORT;
	if (len <= LG_PATH_EVENT_MEDIUM)
		return LG_PATH_EVENT_MEDIUM;
	return len <= LG_PATH_EVENT_LONG ? LG_PATH_EVENT_LONG : LG_PATH_MAX;
}

#endif /* LSMGUARD_EVENT_MAPS_BPF_H */
