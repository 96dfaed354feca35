// SPDX-License-Identifier: GPL-2.0
/*
 * `make bench-pipeline`'s producer: abi.h path events written into a real ring
 * buffer from a socket filter, which this host loads and runs with
 * BPF_PROG_TEST_RUN (it refuses LSM programs). Each run writes one event: a
 * copy of a template that user space filled (a live or a gone process, a path),
 * stamped with the time and, for distinct events, a sequence number in the path
 * (modulo a count of files, for a flood over a set of files).
 * A record the ring has no room for is counted as the kernel's programs count
 * it (lg_stats[LG_STAT_EVENTS_LOST]), so the daemon's books can be checked.
 * Events are coalesced as the kernel's are (coalesce.bpf.h), the file's
 * identity being its template's device and, stamped, the stamp as its inode.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lsmguard/abi.h"
#include "event_maps.bpf.h" /* the same ring and counters as lsmguard's, under the same names */
#include "coalesce.bpf.h"   /* and the same coalescing */

char LICENSE[] SEC("license") = "GPL";

#define LG_BENCH_TEMPLATES 16
#define LG_BENCH_NO_STAMP 0xffffffff

/* What user space sets before a run: how many templates to cycle through, where to stamp the path. */
struct lg_bench_config {
	__u64 seq;        /* events produced so far: the stamp of the next one */
	__u32 templates;  /* templates[0, templates) are used in turn */
	__u32 stamp_at;   /* the path's 8 hex digits start here; LG_BENCH_NO_STAMP: identical events */
	__u32 distinct;   /* stamp seq modulo this many (a set of files); 0: seq itself */
	__u32 ino_base;   /* the inode of an unstamped event; a stamped one's is this plus its stamp plus 1 */
	__u32 discard_every; /* 0, or reserve and discard every this many events' record: a reader must skip them */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lg_bench_config);
} lg_bench_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LG_BENCH_TEMPLATES);
	__type(key, __u32);
	__type(value, struct lg_path_event);
} lg_bench_templates SEC(".maps");

SEC("socket")
int lg_bench_produce(struct __sk_buff *skb)
{
	__u32 zero = 0, index, at, i, stamp = 0;
	struct lg_bench_config *config = bpf_map_lookup_elem(&lg_bench_config, &zero);
	struct lg_coalesce_key key = {};
	struct lg_path_event *event;
	__u64 seq, now;

	if (!config || !config->templates)
		return 0;
	seq = __sync_fetch_and_add(&config->seq, 1);
	index = (__u32)(seq % config->templates);
	event = bpf_map_lookup_elem(&lg_bench_templates, &index);
	if (!event)
		return 0;
	now = bpf_ktime_get_ns();
	event->hdr.ktime_ns = now;
	at = config->stamp_at;
	if (at <= LG_PATH_MAX - 8) {
		stamp = config->distinct ? (__u32)(seq % config->distinct) : (__u32)seq;

		for (i = 0; i < 8; i++) {
			__u8 digit = (stamp >> (28 - 4 * i)) & 0xf;

			event->path[at + i] = digit < 10 ? '0' + digit : 'a' + digit - 10;
		}
	}
	key.what = event->hdr.op | event->hdr.decision << 8 | event->hdr.generation << 16;
	key.policy_id = event->hdr.policy_id;
	key.rule_id = event->hdr.rule_id;
	key.tgid = event->hdr.tgid;
	key.uid = event->hdr.uid;
	key.detail = event->mode;
	key.flags = event->hdr.flags;
	key.object_kind = LG_OBJECT_PATH;
	key.exec_id = (__u32)event->hdr.exec_id;
	key.object[0] = event->dev;
	/* a file of its own per stamp; each scenario's files apart from another's */
	event->ino = config->ino_base + (at <= LG_PATH_MAX - 8 ? (__u64)stamp + 1 : 0);
	key.object[1] = event->ino;
	event->hdr.window_ns = 0;
	if (event->ino && !lg_coalesce_send(&key, now, &event->hdr.window_ns))
		return 0; /* as the kernel's path events: a file without an identity is always sent */
	if (config->discard_every && seq % config->discard_every == 0) {
		struct lg_path_event *discarded = bpf_ringbuf_reserve(&lg_events, sizeof(*discarded), 0);

		if (discarded)
			bpf_ringbuf_discard(discarded, 0);
	}
	/* as long as its path needs, as the kernel's events are (abi.h) */
	if (bpf_ringbuf_output(&lg_events, event,
			       __builtin_offsetof(struct lg_path_event, path) + lg_path_event_room(event->path_len), 0))
		lg_stat_inc(LG_STAT_EVENTS_LOST);
	return 0;
}
