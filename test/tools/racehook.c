/*
 * racehook.so: an LD_PRELOAD library that makes two thread races happen every
 * time instead of now and then, so that an exercise's check can reject the
 * solution that loses them.  It wraps pthread_cond_wait(),
 * pthread_cond_broadcast() and pthread_mutex_unlock(); each mode is off
 * unless its variable is set:
 *
 *   RACEHOOK_WAKE_DELAY_MS=N  a pthread_cond_wait() that has been woken
 *       returns N ms late, with the mutex released meanwhile, as a thread
 *       woken on a busy machine may: everything the waker does next happens
 *       before the woken thread looks at anything.
 *   RACEHOOK_AFTER_BROADCAST=1  a thread that called
 *       pthread_cond_broadcast() stops right after its next
 *       pthread_mutex_unlock() until every thread the broadcast woke has
 *       either waited again or ended (2 s at most): what the broadcaster
 *       writes after the unlock, the woken threads never see in time.
 *   RACEHOOK_LOG=FILE  a line "wait" is appended to FILE each time a thread
 *       starts to wait, so a test can tell when a thread is idle.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int (*real_cond_wait)(pthread_cond_t *, pthread_mutex_t *);
static int (*real_cond_broadcast)(pthread_cond_t *);
static int (*real_mutex_unlock)(pthread_mutex_t *);
static int (*real_mutex_lock)(pthread_mutex_t *);

/* Per condition variable: threads inside pthread_cond_wait() on it now,
 * and its pthread_cond_wait() calls that have returned. */
#define NCONDS 64
static struct {
	pthread_cond_t *cond;
	atomic_int waiting, returned;
} conds[NCONDS];
static pthread_mutex_t conds_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int watched = -1; /* the cond this thread broadcast */
static _Thread_local int woken;	    /* waiters this thread's broadcast woke */
static _Thread_local int returned0; /* returned, at that broadcast */
static _Thread_local int threads0;  /* threads, at that broadcast */

/* The glibc function NAME at the version the programs link against. */
static void *
real(const char *name, const char *version)
{
	void *f = dlvsym(RTLD_NEXT, name, version);

	if (f == NULL)
		f = dlsym(RTLD_NEXT, name);
	if (f == NULL)
		abort();
	return f;
}

/* Find the real functions before main() runs. */
__attribute__((constructor)) static void
racehook_init(void)
{
	*(void **)&real_cond_wait = real("pthread_cond_wait", "GLIBC_2.3.2");
	*(void **)&real_cond_broadcast =
		real("pthread_cond_broadcast", "GLIBC_2.3.2");
	*(void **)&real_mutex_unlock =
		real("pthread_mutex_unlock", "GLIBC_2.2.5");
	*(void **)&real_mutex_lock = real("pthread_mutex_lock", "GLIBC_2.2.5");
}

/* The integer in the environment variable NAME, or 0. */
static long
env_number(const char *name)
{
	const char *s = getenv(name);

	return s == NULL ? 0 : strtol(s, NULL, 10);
}

/* Sleep ms milliseconds. */
static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) == -1)
		;
}

/* The number of threads in this process. */
static int
count_threads(void)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	if (dir == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* The slot that counts cond's waiters (the first one made free if none). */
static int
slot(pthread_cond_t *cond)
{
	int i;

	real_mutex_lock(&conds_mutex);
	for (i = 0; i < NCONDS - 1; i++)
		if (conds[i].cond == cond || conds[i].cond == NULL)
			break;
	conds[i].cond = cond;
	real_mutex_unlock(&conds_mutex);
	return i;
}

/* Append "wait" to RACEHOOK_LOG, if it is set. */
static void
log_wait(void)
{
	const char *path = getenv("RACEHOOK_LOG");
	int fd;

	if (path == NULL ||
	    (fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644)) == -1)
		return;
	if (write(fd, "wait\n", 5) != 5) {
		/* a lost line only makes the test wait longer */
	}
	close(fd);
}

/* pthread_cond_wait(), counted, and late by RACEHOOK_WAKE_DELAY_MS. */
int
pthread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex)
{
	long delay = env_number("RACEHOOK_WAKE_DELAY_MS");
	int rc, i = slot(cond);

	atomic_fetch_add(&conds[i].waiting, 1);
	log_wait();
	rc = real_cond_wait(cond, mutex);
	atomic_fetch_sub(&conds[i].waiting, 1);
	atomic_fetch_add(&conds[i].returned, 1);
	if (delay > 0) {
		real_mutex_unlock(mutex);
		sleep_ms(delay);
		real_mutex_lock(mutex);
	}
	return rc;
}

/* pthread_cond_broadcast(), noting whom it wakes. */
int
pthread_cond_broadcast(pthread_cond_t *cond)
{
	if (env_number("RACEHOOK_AFTER_BROADCAST") == 1) {
		watched = slot(cond);
		woken = atomic_load(&conds[watched].waiting);
		returned0 = atomic_load(&conds[watched].returned);
		threads0 = count_threads();
	}
	return real_cond_broadcast(cond);
}

/* pthread_mutex_unlock(); after a broadcast, hold the caller as above. */
int
pthread_mutex_unlock(pthread_mutex_t *mutex)
{
	int rc = real_mutex_unlock(mutex), ms;

	if (woken == 0)
		return rc;
	for (ms = 0; ms < 2000; ms++) {
		if (atomic_load(&conds[watched].returned) - returned0 >=
			    woken &&
		    atomic_load(&conds[watched].waiting) + threads0 -
				    count_threads() >=
			    woken)
			break;
		sleep_ms(1);
	}
	woken = 0;
	return rc;
}
