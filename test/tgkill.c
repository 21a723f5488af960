/*
 * tgkill: send signal SIG to thread TID of process PID, and to no other
 * thread, which kill(1) cannot do: a process-directed signal goes to
 * whichever thread the kernel picks.
 */

#define _GNU_SOURCE

#include <sys/syscall.h>

#include <err.h>
#include <stdlib.h>
#include <unistd.h>

/* tgkill PID TID SIG */
int
main(int argc, char *argv[])
{
	if (argc != 4)
		errx(2, "usage: tgkill PID TID SIG");
	if (syscall(SYS_tgkill, atoi(argv[1]), atoi(argv[2]), atoi(argv[3])) ==
	    -1)
		err(1, "tgkill");
	return 0;
}
