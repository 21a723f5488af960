/*
 * tools.h: what the test client (echoclient), the load generator (loadgen)
 * and the attack lab's client (attack) share: the bytes a connection sends,
 * the size parser for their options, the descriptor limit they raise, their
 * clock, and how they resolve an address and connect.
 *
 * Every byte a connection sends is a function of its seed and of the byte's
 * offset in the stream, so the receiver can recompute and check any echoed
 * byte without keeping a copy of what it sent.
 */

/* Every function is inline: a tool that does not use one gets no warning. */

#ifndef TOOLS_H
#define TOOLS_H

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * splitmix64's mixer: a bijection, so no two 8-byte words of one stream are
 * alike, and good enough that a shifted or repeated block never matches.
 */
static inline uint64_t
payload_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fill buf with the len bytes the stream with this seed has at offset off. */
static inline void
payload_fill(uint64_t seed, uint64_t off, unsigned char *buf, size_t len)
{
	uint64_t word = payload_mix(seed ^ (off >> 3));
	size_t i;

	/* Byte k of the stream's 8-byte word w is byte k of mix(seed ^ w). */
	for (i = 0; i < len; i++, off++) {
		if (i > 0 && (off & 7) == 0)
			word = payload_mix(seed ^ (off >> 3));
		buf[i] = (unsigned char)(word >> (8 * (off & 7)));
	}
}

/*
 * Parse a size such as 100, 64K, 16M or 1G (powers of 1024) into *n.
 * Return -1, leaving *n alone, unless it is a number from 0 to max: a
 * suffix that would push it past max (or past 64 bits) is refused, not
 * wrapped around.
 */
static inline int
parse_size(const char *s, uint64_t max, uint64_t *n)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	}
	if (shift != 0)
		end++;
	if (*end != '\0' || v > (max >> shift))
		return -1;
	*n = (uint64_t)v << shift;
	return 0;
}

/* Raise the open-file limit so that n connections fit, or exit 1. */
static inline void
raise_nofile(size_t n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		err(1, "getrlimit RLIMIT_NOFILE");
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			err(1, "setrlimit RLIMIT_NOFILE");
	}
	/* A few more for stdio and the listening side of a test. */
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < n + 16)
		errx(1,
		     "cannot hold %zu connections: the open-file limit is "
		     "%llu (ulimit -Hn); raise it, or ask for fewer",
		     n, (unsigned long long)rl.rlim_cur);
}

/* Milliseconds on a clock that never jumps. */
static inline long
now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		err(1, "clock_gettime");
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The TCP address addr port (numeric both); exit 2 if it is not one. */
static inline struct addrinfo *
resolve(const char *addr, const char *port)
{
	struct addrinfo hints, *ai;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if ((rc = getaddrinfo(addr, port, &hints, &ai)) != 0)
		errx(2, "%s port %s: %s", addr, port, gai_strerror(rc));
	return ai;
}

/*
 * Connect to addr port (numeric both), with a receive buffer of rcvbuf
 * bytes when rcvbuf > 0, set before the connect so that the window the
 * server sees is small from the start; the socket is then non-blocking.
 */
static inline int
dial_to(const char *addr, const char *port, int rcvbuf)
{
	struct addrinfo *ai = resolve(addr, port);
	int fd, flags;

	if ((fd = socket(ai->ai_family, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
				     sizeof(rcvbuf)) == -1)
		err(1, "setsockopt SO_RCVBUF");
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1)
		err(1, "connect to %s port %s", addr, port);
	freeaddrinfo(ai);
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		err(1, "fcntl");
	return fd;
}

#endif
