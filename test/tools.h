/*
 * tools.h: what the test client (echoclient) and the load generator
 * (loadgen) share: the bytes a connection sends, the size parser for their
 * options, and the descriptor limit they raise.
 *
 * Every byte a connection sends is a function of its seed and of the byte's
 * offset in the stream, so the receiver can recompute and check any echoed
 * byte without keeping a copy of what it sent.
 */

#ifndef TOOLS_H
#define TOOLS_H

#include <sys/types.h>
#include <sys/resource.h>

#include <err.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * splitmix64's mixer: a bijection, so no two 8-byte words of one stream are
 * alike, and good enough that a shifted or repeated block never matches.
 */
static uint64_t
payload_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fill buf with the len bytes the stream with this seed has at offset off. */
static void
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
static int
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
static void
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

#endif
