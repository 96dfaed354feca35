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
#define LG_NO_RULE 0xffffffff        /* event rule_id: the policy's default decided */
#define LG_RULE_UNATTRIBUTED 0xfffffffe /* event rule_id: a rule of the policy, found by userspace */
/* A rule reference: (policy id << LG_RULE_POLICY_SHIFT) | rule index. */
#define LG_RULE_POLICY_SHIFT 26
#define LG_RULE_INDEX_MASK 0x3ffffff
#define LG_RULE_INDEX_DEFAULT 0x3ffffff      /* hit counters: refusals by the default */
#define LG_RULE_INDEX_UNATTRIBUTED 0x3fffffe /* hit counters: refusals userspace attributes */
#define LG_RULE_INDEX_DRIFT 0x3fffffd        /* a policy's drift option: a file changed after its baseline */
#define LG_ADDR_LEN 16          /* an IPv6 address; IPv4 uses the first 4 bytes */
#define LG_UNIX_NAME_MAX 108    /* sizeof(sockaddr_un.sun_path) */
#define LG_EXE_IDS 64           /* executables that subjects can name, across all policies */
#define LG_EXE_ID_TORN 63       /* no pattern's id: set, with every other id, when a task's exec could not be looked up */
#define LG_UID_RANGES 8         /* distinct uid ranges that subjects can name, across all policies (gid ranges alike) */
#define LG_PORT_SEARCH_STEPS 17 /* binary search over at most 65536 disjoint port intervals */
#define LG_CGROUP_DEPTH_MAX 64  /* cgroup levels walked; deeper subjects are refused by the compiler */
#define LG_ANCESTORS 4          /* ancestors an event names, parent first: they may be gone when it is read */
#define LG_WRITER_PATH_MAX 256  /* a drift writer's executable and directory: the last 255 bytes, NUL-terminated */

/* Operations a rule covers; also the `op` of an event. */
enum lg_op {
	LG_OP_EXEC = 1,
	LG_OP_OPEN = 2,
	LG_OP_CHMOD = 3,
	LG_OP_CONNECT = 4,
	LG_OP_MMAP = 5,     /* a file mapped executable: decided by exec rules */
	LG_OP_LINK = 6,     /* a hard link: a new name for a file (mode: enum lg_name_side) */
	LG_OP_RENAME = 7,   /* a rename: a file's name removed and another made (mode: enum lg_name_side) */
	LG_OP_BIND = 8,     /* binding an inet socket to a local port */
	LG_OP_LISTEN = 9,   /* listening on a local port */
	LG_OP_TRUNCATE = 10,/* truncate(2), ftruncate(2), O_TRUNC: decided by write rules */
	LG_OP_UNLINK = 11,  /* unlink(2), rmdir(2) (mode: LG_UNLINK_DIR): decided by write rules */
	LG_OP_CREATE = 12,  /* mknod, mkfifo, mkdir, symlink, O_CREAT: a new name, decided by write rules (mode: S_IFMT) */
	LG_OP_CHOWN = 13,   /* chown(2) and its kin: decided by chmod rules */
	LG_OP_SETXATTR = 14,/* a POSIX ACL or file capability set or removed: decided by chmod rules (mode: lg_xattr) */
	LG_OP_MOUNT = 15,   /* a mount over a name: what it names changes; decided by write rules */
};

/* Which side of a link or rename an event is about (the event's `mode`). */
enum lg_name_side {
	LG_NAME_SOURCE = 1,   /* the file that gets another name, or loses this one */
	LG_NAME_TARGET = 2,   /* the name made, or replaced */
};

#define LG_UNLINK_DIR 1       /* an LG_OP_UNLINK event's `mode`: rmdir */

/* What an LG_OP_SETXATTR event's `mode` says was changed. */
enum lg_xattr {
	LG_XATTR_ACL_ACCESS = 1,   /* system.posix_acl_access */
	LG_XATTR_ACL_DEFAULT = 2,  /* system.posix_acl_default */
	LG_XATTR_CAPABILITY = 3,   /* security.capability: a file's capabilities */
	LG_XATTR_REMOVED = 8,      /* or-ed in: removed rather than set */
};

/* What a path event's name is. */
enum lg_name {
	LG_NAME_FILE = 0,      /* a file's identity: `dev`, and the path from its file system's root */
	LG_NAME_PATH = 1,      /* a path from the task's mount namespace root */
	LG_NAME_ABSTRACT = 2,  /* an abstract unix socket: "@name" */
	LG_NAME_FILELESS = 3,  /* a file of no file system (memfd, SysV shm): "memfd:NAME" */
};

/* An LG_OP_OPEN event's `mode`: FMODE_READ and FMODE_WRITE, and whether the open created the file. */
enum lg_open_mode {
	LG_OPEN_READ = 1,
	LG_OPEN_WRITE = 2,
	LG_OPEN_CREATED = 4,
	LG_OPEN_NO_ACCESS = 8,   /* opened for neither (O_ACCMODE 3: ioctls only), decided as for both */
	LG_OPEN_TRUNCATE = 16,   /* O_TRUNC: decided as a write */
};

/* How an LG_OP_MMAP event's file became executable (the event's `mode`). */
enum lg_map_how {
	LG_MAP_MMAP = 1,      /* mmap with PROT_EXEC */
	LG_MAP_MPROTECT = 2,  /* mprotect adding PROT_EXEC */
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
	LG_PATH_DETACHED = 2,    /* a dentry cut off from its file system's root (a file handle's), or a mount's */
	LG_PATH_WALK_LIMIT = 4,  /* more components than the bounded walk allows */
	LG_PATH_RACED = 8,       /* a preempting program reused the per-CPU buffer mid-walk */
};

/*
 * One kind of object a policy decides on: each path-table slot, and the two
 * inet protocols. `default_deny` and `unresolved_refuse` are indexed by it.
 */
enum lg_slot {
	LG_SLOT_EXEC = 0,
	LG_SLOT_OPEN_READ = 1,
	LG_SLOT_OPEN_WRITE = 2,
	LG_SLOT_CHMOD = 3,
	LG_SLOT_UNIX = 4,          /* unix socket paths and @abstract names */
	LG_SLOT_TCP = 5,           /* inet connects on stream sockets (lg_inet_networks) */
	LG_SLOT_UDP = 6,           /* inet connects on every other socket type */
	LG_SLOT_SUBJECT_EXE = 7,   /* executables named by subjects: value.allow = exe id bit */
	LG_SLOT_SUBJECT_CGROUP = 8,/* cgroup paths named by subjects: value.allow = policy mask */
	LG_SLOT_BIND_TCP = 9,      /* local ports bound by stream sockets (lg_inet_networks, every address) */
	LG_SLOT_BIND_UDP = 10,     /* local ports bound by every other inet socket */
	LG_SLOT_LISTEN = 11,       /* local ports listened on */
	LG_SLOT_COUNT = 12,
};

/* What an event's object is. */
enum lg_object {
	LG_OBJECT_PATH = 0,        /* struct lg_path_event */
	LG_OBJECT_INET = 1,        /* struct lg_inet_event */
};

/* Address families as in the kernel (the event's `family`). */
enum lg_family {
	LG_AF_UNIX = 1,
	LG_AF_INET = 2,
	LG_AF_INET6 = 10,
};

/*
 * A path entry matches the path exactly, or it and everything below it (a
 * recursive pattern), or -- for exact deny and audit rules on files that
 * existed when the set was applied -- the file itself under any name: an
 * inode entry, whose key holds the inode number in `hash` and the kernel's
 * device number (MKDEV: major << 20 | minor) in `len`.
 */
enum lg_match {
	LG_MATCH_EXACT = 0,
	LG_MATCH_PREFIX = 1,
	LG_MATCH_INODE = 2,
	LG_MATCH_ANCESTOR = 3,   /* a directory above a path write deny rules name (slot: open-write) */
};

/* Indexes into the per-CPU counter array `lg_stats`. */
enum lg_stat {
	LG_STAT_EVENTS_LOST = 0,      /* ring buffer full: event could not be reserved */
	LG_STAT_PATHS_UNRESOLVED = 1, /* a path walk hit a limit */
	LG_STAT_DENIED = 2,
	LG_STAT_HITS_UNCOUNTED = 3,   /* rule hit counter table full */
	LG_STAT_SCRATCH_RACES = 4,    /* a preempting program reused the per-CPU scratch mid-walk */
	LG_STAT_MARKS_LOST = 5,       /* a write could not be marked on its inode (drift falls back on ctime) */
	LG_STAT_COALESCED = 6,        /* events counted in a coalescing window (lg_coalesce) rather than sent */
	LG_STAT_SCRATCH_SHARED = 7,   /* every scratch slot of a CPU was held: the first was shared */
	LG_STAT_COUNT = 8,
};

/*
 * Which build of the object the attached programs are, one entry in the array
 * map `lg_build`: the SHA-256 of its file, written by user space when it
 * attaches them. No program reads it; a daemon of another build that adopts the
 * pins compares it with its own and replaces the programs (code changes only).
 */
#define LG_BUILD_DIGEST_SIZE 32
struct lg_build {
	__u8 sha256[LG_BUILD_DIGEST_SIZE];
};

/* Load-time configuration, one entry in the array map `lg_config`. */
struct lg_config {
	__u64 path_hash_key[2]; /* SipHash key: secret, so path hashes cannot be forged */
	__u32 generation;       /* which policy set is in force: 0 or 1 */
	__u32 host_mnt_ns;      /* the host's mount namespace (PID 1's), by its inode number */
};

/*
 * When a policy's drift option came into force. A file changed later is
 * drift: its write mark (lg_file_mark) is newer than `monotonic_ns`, or its
 * inode's change time is not older than `realtime_ns` (the clocks the kernel
 * stamps them with: bpf_ktime_get_ns, and the coarse real-time clock).
 */
struct lg_drift_baseline {
	__u64 monotonic_ns;
	__u64 realtime_ns;
};

/* A range of uids (or gids) that subjects name (lg_policy_set.uid_ranges, gid_ranges). */
struct lg_uid_range {
	__u32 low;
	__u32 high;       /* inclusive */
	__u64 including;  /* policies whose subjects name it */
	__u64 excluding;  /* policies whose except does */
};

/*
 * Policy-wide masks of one generation (array map `lg_policy_sets`, indexed by
 * generation). Bit i of every mask is policy id i.
 */
struct lg_policy_set {
	__u64 policies;                  /* every applied policy */
	__u64 enforce;                   /* policies in enforce mode (the others audit) */
	__u64 default_deny[LG_SLOT_COUNT]; /* policies whose default is deny, per slot */
	/* policies that could refuse something in the slot: used when a path cannot be resolved */
	__u64 unresolved_refuse[LG_SLOT_COUNT];
	/* Subjects: a policy with subjects applies to a task when each kind it names matches. */
	__u64 with_subjects;
	__u64 unconstrained_exe;         /* policies with subjects but no executables */
	__u64 unconstrained_cgroup;
	__u64 unconstrained_uid;
	__u64 exe_policies[LG_EXE_IDS];  /* exe id -> policies naming that executable */
	/* `except`: a task matching any entry of a policy's is not governed by it */
	__u64 excluding;                 /* policies with an except */
	__u64 excluding_cgroup;          /* policies whose except names cgroups */
	__u64 excluding_exe;             /* policies whose except names executables */
	__u64 exe_excluding[LG_EXE_IDS]; /* exe id -> policies excepting that executable */
	/* uid ranges ("1000-60000"), each with the policies naming it and those excepting it */
	struct lg_uid_range uid_ranges[LG_UID_RANGES];
	__u32 uid_range_count;
	__u32 reserved2;
	__u32 bound_inodes;              /* inode entries of this generation: none, no inode lookups */
	__u32 reserved;
	/* Drift: policies that refuse (or audit) executing files changed after their baseline. */
	__u64 drift_deny;
	__u64 drift_audit;
	struct lg_drift_baseline drift_since[LG_MAX_POLICIES];
	/* gids, as uids above: by the effective gid */
	__u64 unconstrained_gid;
	struct lg_uid_range gid_ranges[LG_UID_RANGES];
	__u32 gid_range_count;
	__u32 reserved3;
	/* policies whose except names uids, gids: only they need those looked up to exempt */
	__u64 excluding_uid;
	__u64 excluding_gid;
};

/*
 * A path entry's key. Entries of both generations live side by side; a
 * program reads the generation once and looks up only its entries, so a
 * policy change is atomic. A file's path is its identity: the path from its
 * file system's root, hashed after its device word (lsmguard.mounts).
 */
struct lg_path_entry_key {
	__u64 hash;       /* keyed SipHash of the device word and path (for prefix entries: of the base) */
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
	__u32 deny_rule;  /* rule reference of the lowest denying enforce-mode (else any) policy, or LG_NO_RULE */
	__u32 audit_rule; /* likewise for audit */
};

/*
 * An inet network's key in the LPM trie `lg_inet_networks`: prefixlen counts
 * the bits of generation, slot and family too, so one trie holds both
 * generations, both protocols and both families.
 */
struct lg_inet_key {
	__u32 prefixlen;
	__u8 generation;
	__u8 slot;        /* LG_SLOT_TCP or LG_SLOT_UDP */
	__u8 family;      /* LG_AF_INET (address in addr[0..4)) or LG_AF_INET6 */
	__u8 reserved;
	__u8 addr[LG_ADDR_LEN];
};

/* A network's port intervals: lg_port_intervals[generation][first, first + count), sorted. */
struct lg_inet_value {
	__u32 first;
	__u32 count;
};

struct lg_port_interval_key {
	__u32 index;
	__u32 generation;
};

struct lg_port_interval {
	__u16 low;
	__u16 high;       /* inclusive */
	__u32 reserved;
	struct lg_masks masks;
};

/* Which id an lg_uid_key holds: subjects name effective uids and effective gids. */
enum lg_id_kind {
	LG_ID_UID = 0,
	LG_ID_GID = 1,
};

struct lg_uid_key {
	__u32 id;
	__u16 generation;
	__u16 kind; /* enum lg_id_kind */
};

/* lg_subject_uids' value: the policies whose subjects name a uid (or gid), and those whose except does. */
struct lg_uid_policies {
	__u64 including;
	__u64 excluding;
};

/* Per-task subject state (task storage), inherited at fork. */
struct lg_task_subject {
	__u64 exe_ids;    /* ids of the executables this task and its ancestors ran */
	__u64 pending;    /* ids matched by the exec in progress, added when it commits */
};

/*
 * Which executable pattern holds which exe id (array `lg_exe_ids`, indexed by
 * id; written and read by userspace only). An id keeps its pattern until
 * unload, because tasks carry it: a pattern removed and added again still
 * knows which tasks descend from it. A pattern has one id per role: the id
 * that names it in subjects is also given to processes already running, from
 * the names /proc shows; the id that an `except` reads only ever comes from
 * an exec the kernel saw, so a name /proc was made to show never exempts.
 */
enum lg_exe_role {
	LG_EXE_ROLE_SUBJECT = 0, /* in subjects: seeded from /proc too (builds before the roles: every id) */
	LG_EXE_ROLE_EXCEPT = 1,  /* in an except: from the kernel's exec only */
};

struct lg_exe_id {
	__u64 hash;       /* as in lg_path_entry_key */
	__u32 len;
	__u8 match;
	__u8 in_use;
	__u16 role;       /* enum lg_exe_role */
};

/* A rule hit counter's key (per-CPU hash `lg_rule_hits`). */
struct lg_rule_hit_key {
	__u32 rule;       /* rule reference; index LG_RULE_INDEX_DEFAULT or _UNATTRIBUTED for those */
	__u32 generation;
};

/* A process an event names: enough to tell it from a later one with its pid, and to name it once gone. */
struct lg_process_id {
	__u32 tgid;       /* 0: none (the chain ended) */
	__u32 uid;        /* effective */
	__u64 start_ns;   /* start time, ns since boot (/proc/pid/stat counts it in ticks) */
	char comm[LG_COMM_LEN];
};

/*
 * Coalescing in the kernel: the first event of a kind (struct
 * lg_coalesce_key: what happened, to what, by which process, decided by
 * which rule) is sent and opens a window of LG_COALESCE_WINDOW_NS; the same
 * again within the window is only counted (`total`), so a flood of identical
 * denials costs the ring nothing. The daemon reads the counts from the map
 * (LRU hash `lg_coalesce`) once a window has ended: the repeats of a window
 * are the growth of `total` from its `base`. Nothing in the map is ever
 * decremented, so no count can be lost to a race; a window evicted before its
 * count was read is found by LG_STAT_COALESCED and reported as lost.
 */
#define LG_COALESCE_WINDOW_NS 1000000000ULL
#define LG_COALESCE_WINDOWS 16384

struct lg_coalesce_key {
	__u32 what;        /* op | decision << 8 | generation << 16 */
	__u32 policy_id;
	__u32 rule_id;
	__u32 tgid;
	__u32 uid;         /* effective */
	__u32 detail;      /* path: the event's mode; inet: family | protocol << 16 */
	__u32 flags;       /* path: enum lg_path_flags; inet: the port */
	__u32 object_kind; /* enum lg_object */
	__u32 exec_id;     /* the task's self_exec_id: what a new image does is not counted as its predecessor's */
	__u32 reserved;
	__u64 object[2];   /* path: the file's device and inode; inet: the address */
};

struct lg_coalesce_window {
	__u64 created_ns;     /* when the entry was made: a key evicted and made again is another */
	__u64 opened_ns;      /* the current window's start (CLOCK_MONOTONIC): its first event's window_ns */
	__u64 prev_opened_ns; /* the window before it (0: none) */
	__u64 base;           /* `total` when the current window opened: what the windows before it counted */
	__u64 total;          /* events of this key counted and not sent, ever */
};

/*
 * How much of an entry's `total` the daemon has journaled (hash
 * `lg_coalesce_reported`, written only by the daemon): pinned with the rest,
 * so a daemon that restarts reports what its predecessor did not.
 */
struct lg_coalesce_reported {
	__u64 created_ns;     /* the lg_coalesce entry's: a key made again is another */
	__u64 reported;
};

/* Common header of every ring-buffer event. */
struct lg_event_header {
	__u64 ktime_ns;   /* CLOCK_MONOTONIC */
	__u64 cgroup_id;
	__u32 op;         /* enum lg_op */
	__u32 decision;   /* enum lg_decision */
	__u32 policy_id;  /* policy id of the decision (lowest refusing enforce-mode policy first) */
	__u32 rule_id;    /* rule index in that policy, LG_NO_RULE (its default) or LG_RULE_UNATTRIBUTED */
	__u32 pid;        /* thread id */
	__u32 tgid;       /* process id, what users call the pid */
	__u32 ppid;       /* parent's tgid */
	__u32 uid;        /* effective uid, as ps shows it and as uid subjects match */
	__u32 gid;        /* effective gid */
	__u32 flags;      /* enum lg_path_flags */
	__u32 object;     /* enum lg_object: which event struct this header starts */
	__u32 generation; /* the policy set (0 or 1) that decided: names policy_id and rule_id */
	char comm[LG_COMM_LEN];
	struct lg_process_id ancestors[LG_ANCESTORS]; /* parent first, read when the event happened */
	__u64 window_ns;  /* the coalescing window this event opened (its opened_ns); 0: none, it was not coalescable */
	__u64 exec_id;    /* the task's self_exec_id: changes at each exec, so userspace knows the image it read is still the one running */
};

/* What a write mark could not name in full (lg_file_mark.flags). */
enum lg_writer_flags {
	LG_WRITER_EXE_PARTIAL = 1,  /* the executable's path is cut (only its end kept) or not fully resolved */
	LG_WRITER_CWD_PARTIAL = 2,
};

/*
 * The last open for writing of a file while a drift option was in force
 * (inode storage `lg_file_marks`), and who made it.
 */
struct lg_file_mark {
	__u64 written_ns;        /* CLOCK_MONOTONIC; 0: no mark */
	__u64 writer_start_ns;   /* the writer's start, ns since boot (as /proc/pid/stat counts, in ticks) */
	__u32 writer_tgid;
	__u32 writer_ppid;
	__u32 writer_uid;
	__u32 flags;             /* enum lg_writer_flags */
	char writer_comm[LG_COMM_LEN];
	char writer_exe[LG_WRITER_PATH_MAX]; /* resolved when it wrote: it may be gone when the file runs */
	char writer_cwd[LG_WRITER_PATH_MAX];
};

/*
 * A path event's record is as long as its path needs: the fields up to
 * `path`, then LG_PATH_EVENT_SHORT, _MEDIUM, _LONG or LG_PATH_MAX bytes of
 * it (a reservation's size is a constant), and no writer. Only an event with
 * a writer (drift) is the whole struct. Readers treat what a record leaves
 * out as zeros.
 */
#define LG_PATH_EVENT_SHORT 64
#define LG_PATH_EVENT_MEDIUM 256
#define LG_PATH_EVENT_LONG 1024

/* An event whose object is a path (exec, open, chmod, ...). */
struct lg_path_event {
	struct lg_event_header hdr;
	__u32 path_len;
	__u32 mode;       /* chmod: the requested mode; open: enum lg_open_mode bits; mmap: lg_map_how; ... */
	__u32 name;       /* enum lg_name: what `path` is */
	__u32 dev;        /* LG_NAME_FILE: the file system's device (the kernel's encoding) */
	__u64 ino;        /* the file's inode number; 0: a name not yet made */
	char path[LG_PATH_MAX];
	struct lg_file_mark writer; /* exec and mmap of a file changed after a drift baseline; else zero */
};

/* An event whose object is an inet address: the peer of a connect, the local one of a bind or listen. */
struct lg_inet_event {
	struct lg_event_header hdr;
	__u16 family;     /* LG_AF_INET or LG_AF_INET6 (v4-mapped addresses are reported as IPv4) */
	__u16 port;       /* host byte order */
	__u16 protocol;   /* the socket's IPPROTO_* */
	__u16 reserved;
	__u8 addr[LG_ADDR_LEN];
};
/*
 * Lock mode (lock.bpf.c): while locked, only the owner -- the daemon that
 * locked -- may write lsmguard's maps, reach its links, rename or unlink its
 * pins, signal or trace the daemon, or load programs that override returns.
 */
enum lg_lock_guard {
	LG_LOCK_GUARD_NAME = 1,   /* a pin or pin directory: no unlink, no rename */
	LG_LOCK_GUARD_OPEN = 2,   /* a link's pin: no BPF_OBJ_GET (a link fd can detach it) */
};

/* What a refusal was; the index of its counter in `lg_lock_refusals`. */
enum lg_lock_refusal {
	LG_LOCK_MAP = 0,          /* an fd of a protected map (by id or pin), even read-only */
	LG_LOCK_LINK = 1,         /* an fd of a protected link by id */
	LG_LOCK_PIN_OPEN = 2,     /* BPF_OBJ_GET of a protected link pin */
	LG_LOCK_PIN_NAME = 3,     /* unlink or rename of a pin or pin directory */
	LG_LOCK_SIGNAL = 4,       /* a signal to the daemon */
	LG_LOCK_PTRACE = 5,       /* ptrace, /proc/pid/mem, process_vm_writev of the daemon */
	LG_LOCK_PROG_LOAD = 6,    /* a program that could override a return (fmod_ret, freplace) */
	LG_LOCK_REFUSAL_COUNT = 7,
};

/* Indexes into the lock's per-CPU counters `lg_lock_stats`. */
enum lg_lock_stat {
	LG_LOCK_STAT_EVENTS_LOST = 0, /* a refusal counted whose event the ring buffer had no room for */
	LG_LOCK_STAT_COUNT = 1,
};

/* The owner: a process, told from a later one with its pid by its start time (/proc/pid/stat). */
struct lg_lock_owner {
	__u32 tgid;
	__u32 ns_per_tick;        /* NSEC_PER_SEC / USER_HZ: /proc reports start times in ticks */
	__u64 start_ticks;
};

/* A protected bpffs inode (hash map `lg_lock_inodes`, value: enum lg_lock_guard bits). */
struct lg_lock_inode_key {
	__u64 ino;
	__u32 dev;                /* the kernel's encoding, as in lg_path_entry_key */
	__u32 reserved;
};

/* One refused attempt (ring buffer `lg_lock_events`). */
struct lg_lock_event {
	__u64 ktime_ns;
	__u32 refusal;            /* enum lg_lock_refusal */
	__u32 pid;                /* the process that tried (tgid) */
	__u32 uid;
	__u32 detail;             /* map/link id, signal, ptrace mode, bpf command or 0 */
	char comm[LG_COMM_LEN];
};
/*
 * (issue 24, hot path) Which path-entry lookups can hit, per generation
 * (array map `lg_path_summaries`, indexed by generation) and slot: written
 * with the generation's entries, before the switch to it, so a program sees
 * the summary of the entries it looks up. Bit d of `depths`: an entry whose
 * name has d components (the root, "" and one-byte names have 0; d >= 63:
 * bit 63); bit n of `lens`: an entry whose name is n bytes long modulo 64.
 * The kernel looks a name up only where both bits are set; a slot with no
 * entries costs a load. Slot LG_SUMMARY_ANCESTORS: LG_MATCH_ANCESTOR entries.
 */
#define LG_SUMMARY_SLOTS 16         /* a power of two above every enum lg_slot */
#define LG_SUMMARY_ANCESTORS 15
#define LG_SUMMARY_DEPTH_MAX 63

struct lg_match_summary {
	__u64 depths;
	__u64 lens;
};

struct lg_slot_summary {
	struct lg_match_summary exact;
	struct lg_match_summary prefix;
};

struct lg_path_summary {
	struct lg_slot_summary slots[LG_SUMMARY_SLOTS];
};

/*
 * The same summary for one file system's entries (hash map
 * `lg_device_summaries`): an entry's key hashes its device word, so only the
 * entries of the name's own device can hit. No summary for a device: no entry
 * of that generation has its device, and nothing is looked up. The kernel
 * reads it where the generation's summary (of every device) lets a lookup
 * through.
 */
struct lg_device_summary_key {
	__u32 generation;
	__u32 dev;        /* as in lg_path.dev: the kernel's encoding; 0 for names of no file system */
};
/* cffi:end */

#endif /* LSMGUARD_ABI_H */
