// SPDX-License-Identifier: GPL-2.0
/*
 * A harmless stand-in for a crypto miner: connects to a "pool" at
 * 127.0.0.1:PORT, says hello and exits 0; on failure prints why and exits 2.
 * Built static, as miners dropped by an attacker usually are.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define POOL_PORT_DEFAULT 3333

int main(int argc, char **argv)
{
	static const char hello[] = "{\"method\":\"mining.subscribe\"}\n";
	struct sockaddr_in pool = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd;

	pool.sin_port = htons(argc > 1 ? atoi(argv[1]) : POOL_PORT_DEFAULT);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&pool, sizeof(pool)) != 0) {
		printf("cnrig: connect: %s (errno %d)\n", strerror(errno), errno);
		return 2;
	}
	if (write(fd, hello, sizeof(hello) - 1) < 0) {
		printf("cnrig: write: %s\n", strerror(errno));
		return 2;
	}
	printf("cnrig: connected to the pool\n");
	return 0;
}
