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
#define LG_MAX_POLICIES 64
#define LG_NO_RULE 0xffffffff

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

/* Which table a path entry belongs to: one per operation and access. */
enum lg_slot {
	LG_SLOT_EXEC = 0,
	LG_SLOT_OPEN_READ = 1,
	LG_SLOT_OPEN_WRITE = 2,
	LG_SLOT_CHMOD = 3,
	LG_SLOT_UNIX = 4,
	LG_SLOT_SUBJECT_EXE = 5,
	LG_SLOT_COUNT = 6,
};

/* A path entry matches the path exactly, or it and everything below it (a recursive pattern). */
enum lg_match {
	LG_MATCH_EXACT = 0,
	LG_MATCH_PREFIX = 1,
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
	__u32 generation;       /* which policy set is in force: 0 or 1 */
	__u32 reserved;
};

/*
 * Policy-wide masks of one generation (array map `lg_policy_sets`, indexed by
 * generation). Bit i of every mask is policy id i.
 */
struct lg_policy_set {
	__u64 policies;                  /* every applied policy */
	__u64 enforce;                   /* policies in enforce mode (the others audit) */
	__u64 default_deny[LG_SLOT_COUNT]; /* policies whose default is deny, per slot */
};

/*
 * A path entry's key. Entries of both generations live side by side; a
 * program reads the generation once and looks up only its entries, so a
 * policy change is atomic.
 */
struct lg_path_entry_key {
	__u64 hash;       /* keyed SipHash of the path (for prefix entries: of the base) */
	__u32 len;
	__u8 slot;        /* enum lg_slot */
	__u8 match;       /* enum lg_match */
	__u8 generation;
	__u8 reserved;
};

/* What the rules say about one object, already merged with covering prefixes. */
struct lg_masks {
	__u64 deny;
	__u64 allow;
	__u64 audit;
	__u32 deny_rule;  /* (policy id << 16) | rule index of the lowest denying policy, or LG_NO_RULE */
	__u32 audit_rule; /* likewise for audit */
};

/* Common header of every ring-buffer event. */
struct lg_event_header {
	__u64 ktime_ns;   /* CLOCK_MONOTONIC */
	__u64 cgroup_id;
	__u32 op;         /* enum lg_op */
	__u32 decision;   /* enum lg_decision */
	__u32 policy_id;  /* policy id of the decision (lowest refusing enforce-mode policy first) */
	__u32 rule_id;    /* index of the rule in that policy, or LG_NO_RULE for its default */
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
	__u32 mode;       /* chmod: the requested mode; open: FMODE_READ 1 | FMODE_WRITE 2 */
	char path[LG_PATH_MAX];
};
/* cffi:end */

#endif /* LSMGUARD_ABI_H */
