// SPDX-License-Identifier: GPL-2.0-only
/* The benchmark driver: one operation in a tight loop, so that each
 * configuration's cost per system call can be compared side by side in one lab
 * run. It reports two clocks per operation: CLOCK_MONOTONIC (wall time, what
 * the other tasks of the guest cost included) and the CPU time of this process
 * and its children (CLOCK_PROCESS_CPUTIME_ID + RUSAGE_CHILDREN). Under qemu's
 * -icount the guest's clocks advance by instructions executed, so the CPU time
 * is a count of this loop's own work, free of the host's noise.
 *
 *   driver open    PATH  ITERATIONS    open(O_RDONLY) + close
 *   driver write   PATH  ITERATIONS    open(O_WRONLY) + close: an open for writing
 *   driver chmod   PATH  ITERATIONS    chmod to the file's own mode
 *   driver exec    PATH  ITERATIONS    fork + execve(PATH) + wait (a static binary)
 *   driver connect PORT  ITERATIONS    UDP connect to 127.0.0.1:PORT + close: the socket_connect
 *                                      hook with no handshake, whose softirq and accepting
 *                                      thread made a TCP loop vary between rounds
 *   driver create  PATH  ITERATIONS    open(PATH, O_CREAT|O_EXCL|O_WRONLY) + close + unlink: a name made
 *                                      and removed (path_mknod, file_open, path_unlink)
 *   driver rename  PATH  ITERATIONS    rename PATH to PATH~ and back: two renames (path_rename)
 *
 * Two optional arguments follow: RATE, the operations per second to pace the
 * loop at (0: as fast as it goes), and SPREAD: with SPREAD > 1, open and chmod
 * go round the files PATH/f0 ... PATH/f<SPREAD-1> (made if missing), so that
 * the event pipeline sees distinct objects rather than one it can coalesce.
 *
 * Prints one JSON object:
 *   {"op": ..., "iterations": N, "ns_per_op": X, "cpu_ns_per_op": C, "failures": F}.
 * An operation the kernel refuses counts as a failure, not as an error: the
 * denied path is measured too. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* CPU time of this process and of its children waited for (exec's). */
static long long cpu_ns(void)
{
	struct timespec ts;
	struct rusage children;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	getrusage(RUSAGE_CHILDREN, &children);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec +
	       (children.ru_utime.tv_sec + children.ru_stime.tv_sec) * 1000000000LL +
	       (children.ru_utime.tv_usec + children.ru_stime.tv_usec) * 1000LL;
}

static int open_close(const char *path, int flags)
{
	int fd = open(path, flags);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int do_open(const char *path)
{
	return open_close(path, O_RDONLY);
}

static int do_write(const char *path)
{
	return open_close(path, O_WRONLY);
}

static mode_t chmod_mode = 0644;

static int do_chmod(const char *path)
{
	return chmod(path, chmod_mode);
}

static int do_exec(const char *path)
{
	char *argv[] = { (char *)path, NULL };
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		execve(path, argv, environ);
		_exit(126);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int do_create(const char *path)
{
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);

	if (fd < 0)
		return -1;
	close(fd);
	return unlink(path);
}

static char *renamed;   /* PATH~ */

static int do_rename(const char *path)
{
	if (rename(path, renamed) < 0)
		return -1;
	return rename(renamed, path);
}

static struct sockaddr_in peer;

static void set_peer(int port)
{
	peer.sin_family = AF_INET;
	peer.sin_port = htons(port);
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static int do_connect(const char *unused)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int ret;

	(void)unused;
	if (fd < 0)
		return -1;
	ret = connect(fd, (struct sockaddr *)&peer, sizeof(peer));
	close(fd);
	return ret;
}

/* The names PATH/f0 ... PATH/f<spread-1>, each created if missing. */
static char **spread_names(const char *dir, long spread)
{
	char **names = calloc(spread, sizeof(*names));

	for (long i = 0; names && i < spread; i++) {
		int fd;

		if (asprintf(&names[i], "%s/f%ld", dir, i) < 0)
			return NULL;
		fd = open(names[i], O_CREAT | O_WRONLY, 0644);
		if (fd >= 0)
			close(fd);
	}
	return names;
}

static void pace(long long started, long i, long rate)
{
	long long due = started + i * (1000000000LL / rate);
	struct timespec ts = { .tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL };

	if (now_ns() < due)
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

int main(int argc, char **argv)
{
	int (*operation)(const char *);
	long long started, elapsed, cpu_started, cpu_elapsed;
	long iterations, failures = 0, rate = 0, spread = 1;
	char **names = NULL;
	struct stat st;

	if (argc < 4 || argc > 6) {
		fprintf(stderr, "usage: %s open|write|chmod|exec|create|rename PATH ITERATIONS [RATE [SPREAD]] | "
			"connect PORT ITERATIONS [RATE]\n", argv[0]);
		return 2;
	}
	iterations = strtol(argv[3], NULL, 10);
	if (argc > 4)
		rate = strtol(argv[4], NULL, 10);
	if (argc > 5)
		spread = strtol(argv[5], NULL, 10);
	if (spread > 1) {
		names = spread_names(argv[2], spread);
		if (!names) {
			perror("spread");
			return 1;
		}
	}
	if (!strcmp(argv[1], "open")) {
		operation = do_open;
	} else if (!strcmp(argv[1], "chmod")) {
		if (!names) {
			if (stat(argv[2], &st) < 0) {
				perror(argv[2]);
				return 1;
			}
			chmod_mode = st.st_mode & 07777;
		}
		operation = do_chmod;
	} else if (!strcmp(argv[1], "exec")) {
		operation = do_exec;
	} else if (!strcmp(argv[1], "create")) {
		operation = do_create;
	} else if (!strcmp(argv[1], "rename")) {
		if (asprintf(&renamed, "%s~", argv[2]) < 0)
			return 1;
		operation = do_rename;
	} else if (!strcmp(argv[1], "write")) {
		operation = do_write;
	} else if (!strcmp(argv[1], "connect")) {
		set_peer(atoi(argv[2]));
		operation = do_connect;
	} else {
		fprintf(stderr, "unknown operation %s\n", argv[1]);
		return 2;
	}
	cpu_started = cpu_ns();
	started = now_ns();
	for (long i = 0; i < iterations; i++) {
		if (rate > 0)
			pace(started, i, rate);
		if (operation(names ? names[i % spread] : argv[2]) < 0)
			failures++;
	}
	elapsed = now_ns() - started;
	cpu_elapsed = cpu_ns() - cpu_started;
	printf("{\"op\": \"%s\", \"iterations\": %ld, \"ns_per_op\": %.1f, \"cpu_ns_per_op\": %.1f, "
	       "\"failures\": %ld}\n", argv[1], iterations, (double)elapsed / iterations,
	       (double)cpu_elapsed / iterations, failures);
	return 0;
}
