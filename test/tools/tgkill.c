/*
 * tgkill: send signal SIG to thread TID of process PID, and to no other
 * thread, which kill(1) cannot do: a process-directed signal goes to
 * whichever thread the kernel picks.
 */

#define _GNU_SOURCE

#include <sys/syscall.h>

#include <err.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

/* A positive decimal number that fits an int, or exit 2. */
static int
number(const char *s)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || n <= 0 || n > INT_MAX)
		errx(2, "not a positive number: %s", s);
	return (int)n;
}

/* tgkill PID TID SIG */
int
main(int argc, char *argv[])
{
	if (argc != 4)
		errx(2, "usage: tgkill PID TID SIG");
	if (syscall(SYS_tgkill, number(argv[1]), number(argv[2]),
		    number(argv[3])) == -1)
		err(1, "tgkill");
	return 0;
}
