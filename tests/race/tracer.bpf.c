// SPDX-License-Identifier: GPL-2.0
/*
 * A syscall-entry tracer of the kind the Phantom attack defeats: it reads
 * openat's path and connect's address from user memory at sys_enter, and,
 * when the page is not present there (a BPF program cannot fault it in),
 * again at sys_exit, as such tools do. What it read is what it reports.
 * It exists only to measure the contrast with lsmguard's LSM hooks.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "race.h"

char LICENSE[] SEC("license") = "GPL";

struct race_pending {
	__u64 user_arg;    /* the caller's pointer */
	__u32 syscall;
	__u32 len;         /* connect: addrlen; openat: 0, read as a string */
	struct race_seen seen;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct race_config);
} race_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);      /* thread id */
	__type(value, struct race_pending);
} race_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RACE_SEEN_MAX);
	__type(key, __u32);
	__type(value, struct race_seen);
} race_seen SEC(".maps");

/* One counter: how many calls finished; the first RACE_SEEN_MAX are in race_seen. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} race_count SEC(".maps");

static __always_inline bool race_traced(void)
{
	struct race_config *config;
	__u32 zero = 0;

	/* the process's main thread: the attacker's system calls, not its fault handler's */
	config = bpf_map_lookup_elem(&race_config, &zero);
	return config && bpf_get_current_pid_tgid() == ((__u64)config->tgid << 32 | config->tgid);
}

static __always_inline bool race_read(struct race_pending *p)
{
	long got;

	if (p->syscall == RACE_OPENAT)
		got = bpf_probe_read_user_str(p->seen.arg, sizeof(p->seen.arg), (void *)p->user_arg);
	else
		got = bpf_probe_read_user(p->seen.arg, p->len < RACE_ARG_MAX ? p->len & (RACE_ARG_MAX - 1) : RACE_ARG_MAX,
					  (void *)p->user_arg);
	return got >= 0;
}

static __always_inline int race_enter(__u32 syscall, __u64 user_arg, __u32 len)
{
	struct race_pending p = { .user_arg = user_arg, .syscall = syscall, .len = len };
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (!race_traced())
		return 0;
	p.seen.syscall = syscall;
	p.seen.when = race_read(&p) ? RACE_READ_AT_ENTER : RACE_READ_NEVER;
	bpf_map_update_elem(&race_pending, &tid, &p, BPF_ANY);
	return 0;
}

static __always_inline int race_exit(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), zero = 0, index;
	struct race_pending *p;
	__u32 *count;

	p = bpf_map_lookup_elem(&race_pending, &tid);
	if (!p)
		return 0;
	if (p->seen.when == RACE_READ_NEVER && race_read(p))
		p->seen.when = RACE_READ_AT_EXIT;
	count = bpf_map_lookup_elem(&race_count, &zero);
	if (count) {
		index = __sync_fetch_and_add(count, 1);
		if (index < RACE_SEEN_MAX)
			bpf_map_update_elem(&race_seen, &index, &p->seen, BPF_ANY);
	}
	bpf_map_delete_elem(&race_pending, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int race_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return race_enter(RACE_OPENAT, ctx->args[1], 0);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int race_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return race_exit();
}

SEC("tracepoint/syscalls/sys_enter_connect")
int race_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	return race_enter(RACE_CONNECT, ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int race_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	return race_exit();
}
