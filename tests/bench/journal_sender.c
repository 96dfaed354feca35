// SPDX-License-Identifier: GPL-2.0
/*
 * journald's own ingest, the peer of `make bench-pipeline`: COUNT records sent
 * with sd_journal_sendv, each made from TEMPLATE (one NAME=value field a line,
 * as lsmguard wrote one of its records) with every "@SEQ@" replaced by the
 * record's number in 8 hex digits, so each record has new values where
 * lsmguard's had. Prints {"records": N, "seconds": S}.
 *
 *     journal-sender TEMPLATE COUNT
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#define MAX_FIELDS 128
#define MARK "@SEQ@"

struct field {
	char *text;   /* NAME=value with MARK in it, or the whole field */
	size_t len;
	int stamped;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The field with every MARK replaced by `seq`, into `out` (size: the template's, since 8 <= 5 + 3). */
static size_t stamp(const struct field *f, unsigned long seq, char *out)
{
	const char *from = f->text, *at;
	size_t n = 0;
	char digits[9];

	snprintf(digits, sizeof(digits), "%08lx", seq & 0xffffffffUL);
	while ((at = strstr(from, MARK))) {
		memcpy(out + n, from, at - from);
		n += at - from;
		memcpy(out + n, digits, 8);
		n += 8;
		from = at + strlen(MARK);
	}
	memcpy(out + n, from, strlen(from));
	return n + strlen(from);
}

int main(int argc, char **argv)
{
	struct field fields[MAX_FIELDS];
	struct iovec iov[MAX_FIELDS];
	char *buffers[MAX_FIELDS];
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	int count = 0, i, r;
	unsigned long records, seq;
	double started;
	FILE *template;

	if (argc != 3) {
		fprintf(stderr, "usage: %s TEMPLATE COUNT\n", argv[0]);
		return 2;
	}
	template = fopen(argv[1], "r");
	if (!template) {
		perror(argv[1]);
		return 1;
	}
	while ((got = getline(&line, &cap, template)) > 0 && count < MAX_FIELDS) {
		if (line[got - 1] == '\n')
			line[--got] = 0;
		fields[count].text = strdup(line);
		fields[count].len = got;
		fields[count].stamped = strstr(line, MARK) != NULL;
		buffers[count] = malloc(got * 2 + 16);
		count++;
	}
	fclose(template);
	records = strtoul(argv[2], NULL, 10);
	started = now();
	for (seq = 0; seq < records; seq++) {
		for (i = 0; i < count; i++) {
			if (fields[i].stamped) {
				iov[i].iov_base = buffers[i];
				iov[i].iov_len = stamp(&fields[i], seq, buffers[i]);
			} else {
				iov[i].iov_base = fields[i].text;
				iov[i].iov_len = fields[i].len;
			}
		}
		r = sd_journal_sendv(iov, count);
		if (r < 0) {
			fprintf(stderr, "sd_journal_sendv: %s\n", strerror(-r));
			return 1;
		}
	}
	printf("{\"records\": %lu, \"seconds\": %.6f}\n", records, now() - started);
	return 0;
}
