/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The layouts shared by the kernel side and Python: map keys and values,
 * ring-buffer events and counter indexes. This file is the single source of
 * truth: clang compiles it into the BPF object, and the cffi build reads the
 * region between the cffi markers verbatim, so only plain declarations and
 * integer #defines may appear there.
 */
#ifndef LSMGUARD_ABI_H
#define LSMGUARD_ABI_H

/* cffi:begin */
#define LG_PATH_MAX 4096
#define LG_COMM_LEN 16

/* Operations a rule covers; also the `op` of an event. */
enum lg_op {
	LG_OP_EXEC = 1,
	LG_OP_OPEN = 2,
	LG_OP_CHMOD = 3,
	LG_OP_CONNECT = 4,
};

/* What the kernel did with an access. */
enum lg_decision {
	LG_DECISION_ALLOW = 0,
	LG_DECISION_DENY = 1,
	LG_DECISION_WOULD_DENY = 2,
	LG_DECISION_AUDIT = 3,
};

/* Why a path could not be fully resolved (event flags). */
enum lg_path_flags {
	LG_PATH_TRUNCATED = 1,   /* longer than LG_PATH_MAX */
	LG_PATH_DETACHED = 2,    /* walk ended outside the task's mount namespace root */
	LG_PATH_WALK_LIMIT = 4,  /* more components than the bounded walk allows */
};

/* Indexes into the per-CPU counter array `lg_stats`. */
enum lg_stat {
	LG_STAT_EVENTS_LOST = 0,      /* ring buffer full: event could not be reserved */
	LG_STAT_PATHS_UNRESOLVED = 1, /* a path walk hit a limit */
	LG_STAT_DENIED = 2,
	LG_STAT_COUNT = 3,
};

/* Load-time configuration, one entry in the array map `lg_config`. */
struct lg_config {
	__u64 path_hash_key[2]; /* SipHash key: secret, so path hashes cannot be forged */
};

/* A path as a map key: keyed SipHash-2-4 of its bytes, plus its length. */
struct lg_path_key {
	__u64 hash;
	__u32 len;
	__u32 reserved;
};

/* What an exact-path entry says: which operations it denies, from which rule. */
struct lg_path_rule {
	__u32 rule_id;
	__u32 ops; /* bitmask of (1 << enum lg_op) */
};

/* Common header of every ring-buffer event. */
struct lg_event_header {
	__u64 ktime_ns;   /* CLOCK_MONOTONIC */
	__u64 cgroup_id;
	__u32 op;         /* enum lg_op */
	__u32 decision;   /* enum lg_decision */
	__u32 policy_id;
	__u32 rule_id;
	__u32 pid;        /* thread id */
	__u32 tgid;       /* process id, what users call the pid */
	__u32 ppid;       /* parent's tgid */
	__u32 uid;
	__u32 gid;
	__u32 flags;      /* enum lg_path_flags */
	char comm[LG_COMM_LEN];
};

/* An event whose object is a path (exec, open, chmod). */
struct lg_path_event {
	struct lg_event_header hdr;
	__u32 path_len;
	__u32 mode;       /* chmod: the requested mode */
	char path[LG_PATH_MAX];
};
/* cffi:end */

#endif /* LSMGUARD_ABI_H */
