/* SPDX-License-Identifier: GPL-2.0 */
/* Building ring-buffer events. A reservation that fails is counted, never silent. */
#ifndef LSMGUARD_EVENTS_BPF_H
#define LSMGUARD_EVENTS_BPF_H

/*
 * The task's ancestors, parent first, as they are now: they may be gone when
 * userspace reads the event. Straight-line code, no branch: it is inlined at
 * every event, and the verifier walks each copy. Above init the chain reaches
 * the idle task (tgid 0), which is its own parent: userspace stops there.
 */
static __always_inline void lg_fill_ancestors(struct task_struct *task, struct lg_process_id *ancestors)
{
	__u32 i;

	for (i = 0; i < LG_ANCESTORS; i++) {
		task = BPF_CORE_READ(task, real_parent);
		ancestors[i].tgid = BPF_CORE_READ(task, tgid);
		ancestors[i].uid = BPF_CORE_READ(task, cred, euid.val);
		ancestors[i].start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
		BPF_CORE_READ_INTO(&ancestors[i].comm, task, group_leader, comm);
	}
}

static __always_inline void lg_fill_header(struct lg_event_header *hdr, __u32 object, __u32 op, __u32 decision,
					   __u32 generation, __u32 policy_id, __u32 rule_id, __u32 flags)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	hdr->ktime_ns = bpf_ktime_get_ns();
	hdr->cgroup_id = bpf_get_current_cgroup_id();
	hdr->op = op;
	hdr->decision = decision;
	hdr->policy_id = policy_id;
	hdr->rule_id = rule_id;
	hdr->pid = (__u32)pid_tgid;
	hdr->tgid = pid_tgid >> 32;
	hdr->ppid = BPF_CORE_READ(task, real_parent, tgid);
	hdr->uid = BPF_CORE_READ(task, cred, euid.val);
	hdr->gid = BPF_CORE_READ(task, cred, egid.val);
	hdr->flags = flags;
	hdr->object = object;
	hdr->generation = generation;
	bpf_get_current_comm(hdr->comm, sizeof(hdr->comm));
	hdr->exec_id = BPF_CORE_READ(task, self_exec_id);
	lg_fill_ancestors(task, hdr->ancestors);
}

/* An event's object kind and its flags, in one argument of lg_fill_header_packed. */
static __always_inline __u64 lg_header_object(__u32 object, __u32 flags)
{
	return (__u64)flags << 32 | object;
}

/*
 * lg_fill_header as a global function: the verifier checks it once per program
 * instead of at each of its call sites (an event is built in five places, and the
 * ancestor walk made up a third to a half of what it walked on 6.1). `what` and
 * `source` as lg_event_what and lg_event_source pack them.
 */
__noinline int lg_fill_header_packed(struct lg_event_header *hdr, __u64 what, __u64 source, __u64 object)
{
	if (!hdr)
		return 0;
	lg_fill_header(hdr, (__u32)object, what & 0xff, (what >> 8) & 0xff, (what >> 16) & 1, (__u32)source,
		       source >> 32, object >> 32);
	return 0;
}

/* What an event is (op, decision, generation) and what decided it (policy, rule), each in one argument. */
static __always_inline __u64 lg_event_what(__u32 op, __u32 decision, __u32 generation)
{
	return (op & 0xff) | (decision & 0xff) << 8 | (generation & 1) << 16;
}

static __always_inline __u64 lg_event_source(__u32 policy_id, __u32 rule_id)
{
	return (__u64)rule_id << 32 | policy_id;
}

#define LG_PATH_EVENT_HEAD __builtin_offsetof(struct lg_path_event, path)

/* The parts of a coalescing key every event has: what happened, by whom, decided by which rule. */
static __always_inline void lg_coalesce_key_head(struct lg_coalesce_key *key, __u64 what, __u64 source,
						 __u32 object_kind)
{
	struct task_struct *task = bpf_get_current_task_btf();

	key->what = what;
	key->policy_id = (__u32)source;
	key->rule_id = source >> 32;
	key->tgid = bpf_get_current_pid_tgid() >> 32;
	key->uid = BPF_CORE_READ(task, cred, euid.val);
	key->object_kind = object_kind;
	key->exec_id = BPF_CORE_READ(task, self_exec_id);
}

/*
 * Whether a path event is to be sent (lg_coalesce_send), `*window_ns` the
 * window it opens. A file is coalesced by its identity (device and inode);
 * a name not yet made has none, and is sent (the daemon coalesces it).
 */
static __always_inline bool lg_path_event_wanted(__u64 what, __u64 source, const struct lg_path *path, __u32 mode,
						 __u64 *window_ns)
{
	struct lg_coalesce_key key = {};

	*window_ns = 0;
	if (!path->ino || !lg_coalescing_on())
		return true;
	lg_coalesce_key_head(&key, what, source, LG_OBJECT_PATH);
	key.detail = mode;
	key.flags = path->flags;
	key.object[0] = path->dev;
	key.object[1] = path->ino;
	return lg_coalesce_send(&key, bpf_ktime_get_ns(), window_ns);
}

/* Everything of a path event but its path and writer. */
static __always_inline void lg_fill_path_event(struct lg_path_event *ev, __u64 what, __u64 source,
					       const struct lg_path *path, __u32 mode, __u32 len, __u64 window_ns)
{
	lg_fill_header_packed(&ev->hdr, what, source, lg_header_object(LG_OBJECT_PATH, path->flags));
	ev->hdr.window_ns = window_ns;
	ev->mode = mode;
	ev->name = path->kind;
	ev->dev = path->dev;
	ev->ino = path->ino;
	ev->path_len = len;
}

/*
 * `value`, at most `bound`: never more where called, but the verifier's bound for a
 * copy into a reservation. In assembly, because the compiler knows the caller's
 * comparison and drops a C one, or compares a copy of the register it then uses.
 */
static __always_inline __u64 lg_at_most(__u64 value, __u64 bound)
{
	asm volatile("if %[value] <= %[bound] goto +1\n\t"
		     "%[value] = %[bound]"
		     : [value] "+r"(value)
		     : [bound] "r"(bound));
	return value;
}

/* A record of the path's size class `room` (a constant: the reservation's size). */
static __always_inline void lg_emit_path_event_sized(__u64 what, __u64 source, const struct lg_path *path,
						     __u32 mode, __u32 len, __u64 window_ns, const __u32 room)
{
	struct lg_path_event *ev = bpf_ringbuf_reserve(&lg_events, LG_PATH_EVENT_HEAD + room, 0);

	if (!ev) {
		lg_stat_inc(LG_STAT_EVENTS_LOST);
		return;
	}
	lg_fill_path_event(ev, what, source, path, mode, len, window_ns);
	bpf_probe_read_kernel(ev->path, lg_at_most(len, room), &path->buf->data[path->start & LG_PATH_MASK]);
	bpf_ringbuf_submit(ev, 0);
}

/*
 * A path event, as long as its path needs (abi.h). A global function: the
 * verifier checks it once per program, not at each call in each state of the
 * caller (as a static function it was half of what a path program cost the
 * 6.1 verifier: its size classes walked some 250 times). So `path` is memory
 * here, its `buf` a number that only probe reads follow. Its arguments
 * packed, as a BPF call takes five: op, decision and generation in `what`;
 * the policy and rule in `source`.
 */
__noinline int lg_emit_path_event_packed(__u64 what, __u64 source, const struct lg_path *path, __u64 mode,
					 __u64 writer)
{
	struct lg_path_event *ev;
	__u64 window_ns;
	__u32 len;

	if (!path)
		return 0;
	len = path->len & LG_PATH_MASK;
	if (!lg_path_event_wanted(what, source, path, mode, &window_ns))
		return 0;
	if (!writer) {
		if (len <= LG_PATH_EVENT_SHORT)
			lg_emit_path_event_sized(what, source, path, mode, len, window_ns, LG_PATH_EVENT_SHORT);
		else if (len <= LG_PATH_EVENT_MEDIUM)
			lg_emit_path_event_sized(what, source, path, mode, len, window_ns, LG_PATH_EVENT_MEDIUM);
		else if (len <= LG_PATH_EVENT_LONG)
			lg_emit_path_event_sized(what, source, path, mode, len, window_ns, LG_PATH_EVENT_LONG);
		else
			lg_emit_path_event_sized(what, source, path, mode, len, window_ns, LG_PATH_MAX);
		return 0;
	}
	ev = bpf_ringbuf_reserve(&lg_events, sizeof(*ev), 0);
	if (!ev) {
		lg_stat_inc(LG_STAT_EVENTS_LOST);
		return 0;
	}
	lg_fill_path_event(ev, what, source, path, mode, len, window_ns);
	bpf_probe_read_kernel(&ev->writer, sizeof(ev->writer), (const void *)writer);
	bpf_probe_read_kernel(ev->path, len, &path->buf->data[path->start & LG_PATH_MASK]);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

static __always_inline void lg_emit_path_event(__u32 op, __u32 decision, __u32 generation, __u32 policy_id,
					       __u32 rule_id, const struct lg_path *path, __u32 mode, __u64 writer)
{
	lg_emit_path_event_packed(lg_event_what(op, decision, generation), lg_event_source(policy_id, rule_id), path,
				  mode, writer);
}

/* An inet access's object, as the events report it: a connect's peer, a bind's or listen's local end. */
struct lg_inet_target {
	__u16 family;
	__u16 port;
	__u16 protocol;
	__u8 addr[LG_ADDR_LEN];
};

/* An inet event; a global function, as lg_emit_path_event_packed, whose packing it shares. */
__noinline int lg_emit_inet_event_packed(__u64 what, __u64 source, const struct lg_inet_target *target)
{
	struct lg_coalesce_key key = {};
	struct lg_inet_event *ev;
	__u64 window_ns = 0;

	if (!target)
		return 0;
	if (!lg_coalescing_on())
		goto send;
	lg_coalesce_key_head(&key, what, source, LG_OBJECT_INET);
	key.detail = target->family | (__u32)target->protocol << 16;
	key.flags = target->port;
	__builtin_memcpy(key.object, target->addr, sizeof(key.object));
	if (!lg_coalesce_send(&key, bpf_ktime_get_ns(), &window_ns))
		return 0;
send:
	ev = bpf_ringbuf_reserve(&lg_events, sizeof(*ev), 0);
	if (!ev) {
		lg_stat_inc(LG_STAT_EVENTS_LOST);
		return 0;
	}
	lg_fill_header_packed(&ev->hdr, what, source, lg_header_object(LG_OBJECT_INET, 0));
	ev->hdr.window_ns = window_ns;
	ev->family = target->family;
	ev->port = target->port;
	ev->protocol = target->protocol;
	ev->reserved = 0;
	__builtin_memcpy(ev->addr, target->addr, sizeof(ev->addr));
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

static __always_inline void lg_emit_inet_event(__u32 op, __u32 decision, __u32 generation, __u32 policy_id,
					       __u32 rule_id, const struct lg_inet_target *target)
{
	lg_emit_inet_event_packed(lg_event_what(op, decision, generation), lg_event_source(policy_id, rule_id), target);
}

#endif /* LSMGUARD_EVENTS_BPF_H */
