/*
 * jobtrace.so: an LD_PRELOAD library that records what the threads of a
 * work-queue program do, for chapter 2's timeline (test/proofs/timeline.sh),
 * with no change to the program.  One line per event is appended to the file
 * named by JOBTRACE_LOG:
 *
 *   MS <tab> THREAD <tab> EVENT <tab> DETAIL
 *
 * MS is CLOCK_MONOTONIC time in ms since the library was loaded; THREAD is
 * 0 for the main thread and 1, 2, ... for the threads pthread_create()
 * started, in the order they were created.  The events:
 *
 *   start, exit     a created thread begins; it calls pthread_exit() or
 *                   returns from its start routine (DETAIL: its kernel tid)
 *   lock, unlock    a created thread locks or unlocks the queue's mutex:
 *                   the first mutex any created thread locks
 *   sleep, wake     a thread enters or leaves pthread_cond_wait()
 *                   (DETAIL of sleep: "cond" and the condition variable's
 *                   address)
 *   signal,         the main thread calls pthread_cond_signal() or
 *   broadcast       pthread_cond_broadcast() (DETAIL: as sleep's); on the
 *                   one the workers sleep on, a job queued and the
 *                   shutdown's wake-all
 *   end             the process exits (DETAIL: how many threads are inside
 *                   pthread_cond_wait() then, and how many created threads
 *                   are alive: have not ended)
 *
 * JOBTRACE_JOB_MS=N makes every job last N ms more, so that a job of
 * microseconds is wide enough to see: a created thread that has unlocked
 * the queue's mutex sleeps N ms before it locks any other mutex (the job's
 * own), holding no lock meanwhile.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int (*real_create)(pthread_t *, const pthread_attr_t *,
			  void *(*)(void *), void *);
static void (*real_exit)(void *);
static int (*real_lock)(pthread_mutex_t *);
static int (*real_unlock)(pthread_mutex_t *);
static int (*real_wait)(pthread_cond_t *, pthread_mutex_t *);
static int (*real_signal)(pthread_cond_t *);
static int (*real_broadcast)(pthread_cond_t *);

static int log_fd = -1;
static long job_ms;
static struct timespec t0;
static _Atomic(pthread_mutex_t *) queue_mutex;
static atomic_int created, ended, sleeping;
static _Thread_local int self;	   /* 0: main, else the creation order */
static _Thread_local int in_job;   /* unlocked the queue, not yet held */
static _Thread_local int job_held; /* this job has had its JOB_MS */

/* What a created thread runs: the program's routine and its argument. */
struct start {
	void *(*fn)(void *);
	void *arg;
	int n;
};

/* The glibc function NAME, at VERSION if it has one. */
static void *
lookup(const char *name, const char *version)
{
	void *f = version != NULL ? dlvsym(RTLD_NEXT, name, version) : NULL;

	if (f == NULL && (f = dlsym(RTLD_NEXT, name)) == NULL)
		abort();
	return f;
}

/* Append one event line; a failed write loses the line, nothing else. */
static void
note(const char *event, const char *fmt, long a, long b)
{
	struct timespec ts;
	char line[160], detail[64] = "";
	double ms;
	int n;

	if (log_fd == -1)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ms = (ts.tv_sec - t0.tv_sec) * 1e3 + (ts.tv_nsec - t0.tv_nsec) / 1e6;
	if (fmt != NULL)
		snprintf(detail, sizeof(detail), fmt, a, b);
	n = snprintf(line, sizeof(line), "%.3f\t%d\t%s\t%s\n", ms, self, event,
		     detail);
	if (n > 0 && write(log_fd, line, (size_t)n) < 0)
		return;
}

/* Find the real functions and open the log before main() runs. */
__attribute__((constructor)) static void
jobtrace_init(void)
{
	const char *path = getenv("JOBTRACE_LOG"),
		   *ms = getenv("JOBTRACE_JOB_MS");

	*(void **)&real_create = lookup("pthread_create", "GLIBC_2.2.5");
	*(void **)&real_exit = lookup("pthread_exit", "GLIBC_2.2.5");
	*(void **)&real_lock = lookup("pthread_mutex_lock", "GLIBC_2.2.5");
	*(void **)&real_unlock = lookup("pthread_mutex_unlock", "GLIBC_2.2.5");
	*(void **)&real_wait = lookup("pthread_cond_wait", "GLIBC_2.3.2");
	*(void **)&real_signal = lookup("pthread_cond_signal", "GLIBC_2.3.2");
	*(void **)&real_broadcast =
		lookup("pthread_cond_broadcast", "GLIBC_2.3.2");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	job_ms = ms != NULL ? strtol(ms, NULL, 10) : 0;
	if (path != NULL &&
	    (log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			   0644)) == -1)
		abort();
}

/* At exit: the threads asleep in pthread_cond_wait() and those not ended. */
__attribute__((destructor)) static void
jobtrace_end(void)
{
	note("end", "%ld asleep, %ld alive", atomic_load(&sleeping),
	     atomic_load(&created) - atomic_load(&ended));
}

/* A created thread's end: counted and noted, once. */
static void
thread_ends(void)
{
	atomic_fetch_add(&ended, 1);
	note("exit", "tid %ld", gettid(), 0);
}

/* The start routine of every created thread: note it, run the program's. */
static void *
started(void *p)
{
	struct start s = *(struct start *)p;
	void *ret;

	free(p);
	self = s.n;
	note("start", "tid %ld", gettid(), 0);
	ret = s.fn(s.arg);
	thread_ends();
	return ret;
}

/* pthread_create(): start the thread through started(). */
int
pthread_create(pthread_t *thread, const pthread_attr_t *attr,
	       void *(*fn)(void *), void *arg)
{
	struct start *s = malloc(sizeof(*s));
	int rc;

	if (s == NULL)
		return real_create(thread, attr, fn, arg);
	s->fn = fn;
	s->arg = arg;
	s->n = atomic_fetch_add(&created, 1) + 1;
	if ((rc = real_create(thread, attr, started, s)) != 0) {
		atomic_fetch_sub(&created, 1);
		free(s);
	}
	return rc;
}

/* pthread_exit(): the thread ends here, not by returning. */
void
pthread_exit(void *ret)
{
	if (self > 0)
		thread_ends();
	real_exit(ret);
	__builtin_unreachable();
}

/* pthread_mutex_lock(): note the queue's mutex; make a job last longer. */
int
pthread_mutex_lock(pthread_mutex_t *m)
{
	pthread_mutex_t *expected = NULL;
	int rc;

	if (self == 0)
		return real_lock(m);
	atomic_compare_exchange_strong(&queue_mutex, &expected, m);
	if (m != atomic_load(&queue_mutex) && in_job && !job_held &&
	    job_ms > 0) {
		job_held = 1;
		nanosleep(&(struct timespec){job_ms / 1000,
					     job_ms % 1000 * 1000000},
			  NULL);
	}
	rc = real_lock(m);
	if (m == atomic_load(&queue_mutex)) {
		in_job = 0;
		note("lock", NULL, 0, 0);
	}
	return rc;
}

/* pthread_mutex_unlock(): note the queue's mutex. */
int
pthread_mutex_unlock(pthread_mutex_t *m)
{
	if (self > 0 && m == atomic_load(&queue_mutex)) {
		note("unlock", NULL, 0, 0);
		in_job = 1;
		job_held = 0;
	}
	return real_unlock(m);
}

/* pthread_cond_wait(): note the sleep and the wake; count the sleepers. */
int
pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
	int rc;

	note("sleep", "cond %lx", (long)(uintptr_t)c, 0);
	atomic_fetch_add(&sleeping, 1);
	rc = real_wait(c, m);
	atomic_fetch_sub(&sleeping, 1);
	note("wake", NULL, 0, 0);
	return rc;
}

/* pthread_cond_signal(): note the main thread's. */
int
pthread_cond_signal(pthread_cond_t *c)
{
	if (self == 0)
		note("signal", "cond %lx", (long)(uintptr_t)c, 0);
	return real_signal(c);
}

/* pthread_cond_broadcast(): note the main thread's. */
int
pthread_cond_broadcast(pthread_cond_t *c)
{
	if (self == 0)
		note("broadcast", "cond %lx", (long)(uintptr_t)c, 0);
	return real_broadcast(c);
}
