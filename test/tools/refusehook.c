/*
 * refusehook.so: an LD_PRELOAD library for one test of chapter 5, with the
 * server built by gcc with -fsanitize=thread, where every atomic operation
 * is a call into libtsan that a preloaded library can wrap.  The first
 * atomic add that returns REFUSEHOOK_MAX or more (a client counted over -c)
 * stops its thread right after the add: it creates REFUSEHOOK_DIR/held and
 * waits until REFUSEHOOK_DIR/go exists (10 s at most).  Whatever the other
 * threads do meanwhile sees the count raised, every time, not now and then.
 * A server that counts with a compare-and-swap never makes that add.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* libtsan's atomic add, then the stop if the result is over the limit. */
int
__tsan_atomic32_fetch_add(volatile int *a, int v, int mo)
{
	static int (*real)(volatile int *, int, int);
	static atomic_int done;
	const char *max = getenv("REFUSEHOOK_MAX"), *dir;
	char path[PATH_MAX];
	int old, fd, i;

	if (real == NULL &&
	    (real = (int (*)(volatile int *, int, int))dlsym(
		     RTLD_NEXT, "__tsan_atomic32_fetch_add")) == NULL)
		_exit(99);
	old = real(a, v, mo);
	if (max == NULL || v != 1 || old < atoi(max) ||
	    (dir = getenv("REFUSEHOOK_DIR")) == NULL ||
	    atomic_exchange(&done, 1))
		return old;
	snprintf(path, sizeof(path), "%s/held", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT, 0600)) != -1)
		close(fd);
	snprintf(path, sizeof(path), "%s/go", dir);
	for (i = 0; i < 1000 && access(path, F_OK) == -1; i++)
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	return old;
}
