/*
 * failwait.so: an LD_PRELOAD library for one test.  Once the file named by
 * FAILWAIT_FILE exists, epoll_wait() fails with EBADF in every thread but
 * the main one: a worker's event loop fails, the accept loop does not.
 */

#define _GNU_SOURCE

#include <sys/epoll.h>
#include <sys/syscall.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* epoll_wait(), failing on a worker thread once the file exists. */
int
epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
{
	static int (*real)(int, struct epoll_event *, int, int);
	const char *file = getenv("FAILWAIT_FILE");

	if (file != NULL && syscall(SYS_gettid) != getpid() &&
	    access(file, F_OK) == 0) {
		errno = EBADF;
		return -1;
	}
	/* POSIX's way to get a function from dlsym(), without a cast. */
	if (real == NULL) {
		void *sym = dlsym(RTLD_NEXT, "epoll_wait");

		if (sym == NULL) {
			errno = ENOSYS;
			return -1;
		}
		memcpy(&real, &sym, sizeof(real));
	}
	return real(epfd, events, max, timeout);
}
