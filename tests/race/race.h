/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the syscall-entry tracer in tracer.bpf.c reports for each traced call:
 * read by clang for the tracer and by cffi for the test (tests/race/tracer.py).
 * Only plain declarations and integer #defines here.
 */
#ifndef LSMGUARD_RACE_H
#define LSMGUARD_RACE_H

/* cffi:begin */
#define RACE_ARG_MAX 64        /* bytes of the path or sockaddr the tracer keeps */
#define RACE_SEEN_MAX 4096     /* calls recorded; later ones are counted only */

/* When the tracer could read the argument from user memory. */
enum race_when {
	RACE_READ_NEVER = 0,   /* at neither sys_enter nor sys_exit */
	RACE_READ_AT_ENTER = 1,
	RACE_READ_AT_EXIT = 2, /* unreadable at entry (page not present): read again at exit */
};

enum race_syscall {
	RACE_OPENAT = 1,
	RACE_CONNECT = 2,
};

/* Set by the test before it attaches: whose calls to record (that process's main thread). */
struct race_config {
	__u32 tgid;
	__u32 reserved;
};

struct race_seen {
	__u32 syscall;         /* enum race_syscall */
	__u32 when;            /* enum race_when */
	__u8 arg[RACE_ARG_MAX];
};
/* cffi:end */

#endif /* LSMGUARD_RACE_H */
