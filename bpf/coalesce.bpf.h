/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Coalescing in the kernel (abi.h, struct lg_coalesce_key): whether an event
 * is sent or only counted. Shared by the lsmguard object and the pipeline
 * bench's producer, so the bench measures the kernel's own coalescing.
 */
#ifndef LSMGUARD_COALESCE_BPF_H
#define LSMGUARD_COALESCE_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LG_COALESCE_WINDOWS);
	__type(key, struct lg_coalesce_key);
	__type(value, struct lg_coalesce_window);
} lg_coalesce SEC(".maps");

/* Only the daemon uses it (abi.h): declared here to be made, pinned and guarded with the rest. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * LG_COALESCE_WINDOWS); /* room for entries whose window was evicted, until the daemon sees it */
	__type(key, struct lg_coalesce_key);
	__type(value, struct lg_coalesce_reported);
} lg_coalesce_reported SEC(".maps");

/*
 * Whether an event of kind `key` happening at `now` is to be sent. The first
 * of a window is, and opens it: `*window_ns` is then its start (0 when no
 * window could be made: the event is sent and nothing is counted for it).
 * One within the window is counted and not sent. Concurrent events of one
 * key may both open a window; each is sent, and every repeat is counted in
 * `total` once, whichever window it is attributed to.
 */
static __always_inline bool lg_coalesce_send(const struct lg_coalesce_key *key, __u64 now, __u64 *window_ns)
{
	struct lg_coalesce_window *w = bpf_map_lookup_elem(&lg_coalesce, key);
	struct lg_coalesce_window fresh = {};

	if (w) {
		if (now - w->opened_ns < LG_COALESCE_WINDOW_NS) {
			__sync_fetch_and_add(&w->total, 1);
			lg_stat_inc(LG_STAT_COALESCED);
			return false;
		}
		w->prev_opened_ns = w->opened_ns;
		w->base = w->total;
		w->opened_ns = now;
		*window_ns = now;
		return true;
	}
	fresh.created_ns = now;
	fresh.opened_ns = now;
	*window_ns = bpf_map_update_elem(&lg_coalesce, key, &fresh, BPF_NOEXIST) ? 0 : now;
	return true;
}

#endif /* LSMGUARD_COALESCE_BPF_H */
