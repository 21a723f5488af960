/*
 * workqueue_demo: the work queue used for something other than sockets.
 *
 * By default it runs JOBS jobs on WORKERS workers, waits (bounded) until all
 * have run, checks each ran exactly once, shuts the queue down and counts the
 * worker threads that still exist afterwards.  Each other mode shows one
 * behaviour: -b jobs run in parallel, -c jobs can add jobs, -s what shutdown
 * does with jobs still queued, -o the order queued jobs run in, -f what a
 * failed workqueue_init() leaves behind; -i how much CPU idle workers burn.
 */

#include <sys/resource.h>
#include <sys/types.h>

#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "workqueue.h"

/* How long the demo waits for its jobs, and for workers to exit. */
#define JOBS_TIMEOUT_MS 10000
#define GRACE_MS	200
/*
 * -i: how long the workers are left with nothing to do before the shutdown.
 * A worker asleep on the condition variable uses no CPU meanwhile; one that
 * polls uses all it gets, even on a busy machine.
 */
#define IDLE_MS 500
/*
 * -s: how long to wait for workqueue_shutdown() to return while every worker
 * is held in a job, and then for the queued jobs to run.  A shutdown that
 * drops the queue returns in microseconds, one that runs the queued jobs
 * only after the held ones are released: after this bound the demo releases
 * them anyway.  Then a queue that kept its jobs runs 100 short jobs in
 * milliseconds, one that dropped them never will.  A second is a wide
 * margin for either on a busy machine; each run waits it out once.
 */
#define SHUTDOWN_WAIT_MS 1000

/* One demo job: which one it is and how often it ran. */
struct demo_job {
	struct job job;
	int id;
	int runs;
	struct demo_job *child; /* with -c: the job this one adds */
};

/* What every job shares: the counters and the queue to add children to. */
struct demo {
	struct workqueue *workqueue;
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	int done;
	int arrived;  /* -b: jobs that reached the barrier */
	int nbarrier; /* -b: jobs that must be there at once */
	int barrier_timeouts;
	int started;	       /* -s, -o: held jobs that have begun */
	int released;	       /* -s, -o: held jobs may finish */
	int hold_timeouts;     /* -s, -o: held jobs never released */
	int *order;	       /* -o: job ids in the order they began */
	int shutdown_returned; /* -s: workqueue_shutdown() has returned */
};

/* An absolute CLOCK_REALTIME time ms milliseconds from now. */
static struct timespec
deadline_in(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* Wait at most ms for *count to reach target; 1 if it did, 0 if not. */
static int
wait_for(struct demo *demo, const int *count, int target, long ms)
{
	struct timespec ts = deadline_in(ms);
	int rc = 0, reached;

	pthread_mutex_lock(&demo->mutex);
	while (*count < target && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&demo->cond, &demo->mutex, &ts);
	reached = *count >= target;
	pthread_mutex_unlock(&demo->mutex);
	return reached;
}

/* Record that a job ran, and wake the mode if it waits for the count. */
static void
job_done(struct demo *demo, struct demo_job *dj)
{
	pthread_mutex_lock(&demo->mutex);
	dj->runs++;
	demo->done++;
	pthread_cond_broadcast(&demo->cond);
	pthread_mutex_unlock(&demo->mutex);
}

/* A plain job; with -c it first queues its child: jobs can add jobs. */
static void
count_job(struct job *job)
{
	struct demo_job *dj = (struct demo_job *)job;
	struct demo *demo = job->user_data;

	if (dj->child != NULL)
		workqueue_add_job(demo->workqueue, &dj->child->job);
	job_done(demo, dj);
}

/* A barrier job: wait (bounded) until nbarrier jobs run at the same time. */
static void
barrier_job(struct job *job)
{
	struct demo_job *dj = (struct demo_job *)job;
	struct demo *demo = job->user_data;
	struct timespec ts = deadline_in(JOBS_TIMEOUT_MS / 2);
	int rc = 0;

	pthread_mutex_lock(&demo->mutex);
	demo->arrived++;
	pthread_cond_broadcast(&demo->cond);
	while (demo->arrived < demo->nbarrier && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&demo->cond, &demo->mutex, &ts);
	if (demo->arrived < demo->nbarrier)
		demo->barrier_timeouts++;
	pthread_mutex_unlock(&demo->mutex);
	job_done(demo, dj);
}

/* A held job: note that it began, then wait (bounded) to be released. */
static void
held_job(struct job *job)
{
	struct demo_job *dj = (struct demo_job *)job;
	struct demo *demo = job->user_data;
	struct timespec ts = deadline_in(JOBS_TIMEOUT_MS);
	int rc = 0;

	pthread_mutex_lock(&demo->mutex);
	if (demo->order != NULL)
		demo->order[demo->started] = dj->id;
	demo->started++;
	pthread_cond_broadcast(&demo->cond);
	while (!demo->released && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&demo->cond, &demo->mutex, &ts);
	if (!demo->released)
		demo->hold_timeouts++;
	pthread_mutex_unlock(&demo->mutex);
	job_done(demo, dj);
}

/* Let every held job, running or still to come, finish. */
static void
release_jobs(struct demo *demo)
{
	pthread_mutex_lock(&demo->mutex);
	demo->released = 1;
	pthread_cond_broadcast(&demo->cond);
	pthread_mutex_unlock(&demo->mutex);
}

/* -s: shut the queue down from a thread of its own, so the mode can watch. */
static void *
shutdown_thread(void *arg)
{
	struct demo *demo = arg;

	workqueue_shutdown(demo->workqueue);
	pthread_mutex_lock(&demo->mutex);
	demo->shutdown_returned = 1;
	pthread_cond_broadcast(&demo->cond);
	pthread_mutex_unlock(&demo->mutex);
	return NULL;
}

/* The number of threads in this process, from /proc/self/task. */
static int
count_threads(void)
{
	DIR *dir;
	struct dirent *de;
	int n = 0;

	if ((dir = opendir("/proc/self/task")) == NULL)
		err(1, "/proc/self/task");
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* The CPU time this process has used, in milliseconds. */
static double
cpu_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == -1)
		err(1, "clock_gettime");
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/*
 * The time the threads besides the caller's have been runnable, on a CPU or
 * waiting for one, in milliseconds, from /proc/self/task/N/schedstat; -1
 * where the kernel keeps no such count.  A thread that polls is runnable all
 * the time, however little CPU a busy machine gives it; one asleep is not.
 */
static double
runnable_ms(void)
{
	DIR *dir;
	struct dirent *de;
	FILE *f;
	char path[320], self[32]; /* a task name is at most 255 bytes */
	unsigned long long run, wait;
	double ms = 0;

	snprintf(self, sizeof(self), "%ld", (long)getpid());
	if ((dir = opendir("/proc/self/task")) == NULL)
		err(1, "/proc/self/task");
	while (ms >= 0 && (de = readdir(dir)) != NULL) {
		/* main() is the caller: its own wait for a CPU is not idling */
		if (de->d_name[0] == '.' || strcmp(de->d_name, self) == 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat",
			 de->d_name);
		if ((f = fopen(path, "r")) == NULL) {
			if (errno != ENOENT)
				ms = -1;
			continue;
		}
		if (fscanf(f, "%llu %llu", &run, &wait) == 2)
			ms += (run + wait) / 1e6;
		else
			ms = -1;
		fclose(f);
	}
	closedir(dir);
	return ms;
}

/* The threads besides main() left after a grace period for leaving ones. */
static int
threads_left(void)
{
	int waited;

	for (waited = 0; count_threads() > 1 && waited < GRACE_MS; waited += 10)
		nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
	return count_threads() - 1;
}

/* This process's virtual memory size in bytes, from /proc/self/status. */
static unsigned long long
vm_size(void)
{
	FILE *f;
	char line[256];
	unsigned long long kb = 0;

	if ((f = fopen("/proc/self/status", "r")) == NULL)
		err(1, "/proc/self/status");
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
			break;
	fclose(f);
	if (kb == 0)
		errx(1, "no VmSize in /proc/self/status");
	return kb * 1024;
}

/*
 * -f: call workqueue_init() with only enough address space left for nstart
 * thread stacks, so the next pthread_create() fails with EAGAIN, and count
 * the threads the failed call leaves behind.
 */
static int
run_failed_init(struct workqueue *workqueue, int nworkers, int nstart)
{
	struct rlimit old, lim;
	pthread_attr_t attr;
	size_t stack, guard;
	int rc, nleft;

	if ((rc = pthread_attr_init(&attr)) != 0 ||
	    (rc = pthread_attr_getstacksize(&attr, &stack)) != 0)
		errx(1, "pthread_attr: %s", strerror(rc));
	pthread_attr_destroy(&attr);
	if (getrlimit(RLIMIT_AS, &old) == -1)
		err(1, "getrlimit");
	/* Room for nstart stacks with their guard pages, and half a stack. */
	guard = 2 * (size_t)sysconf(_SC_PAGESIZE);
	lim = old;
	lim.rlim_cur = vm_size() + (rlim_t)nstart * (stack + guard) + stack / 2;
	if (old.rlim_cur != RLIM_INFINITY && lim.rlim_cur > old.rlim_cur)
		errx(1, "the address-space limit is already too low for -f");
	if (setrlimit(RLIMIT_AS, &lim) == -1)
		err(1, "setrlimit");
	rc = workqueue_init(workqueue, nworkers);
	if (setrlimit(RLIMIT_AS, &old) == -1)
		err(1, "setrlimit");
	/* Counted at once: the workers it started must be gone by now. */
	nleft = count_threads() - 1;
	if (rc == 0)
		errx(1, "workqueue_init did not fail: the limit did not stop "
			"pthread_create");
	printf("workers alive after failed init: %d\n", nleft);
	return 0;
}

/*
 * Set up what the jobs share and total jobs that run fn, then start nworkers
 * workers; the jobs, for demo_finish() to free.
 */
static struct demo_job *
demo_start(struct demo *demo, struct workqueue *workqueue, int nworkers,
	   int total, void (*fn)(struct job *))
{
	struct demo_job *jobs;
	int i, rc;

	memset(demo, 0, sizeof(*demo));
	demo->workqueue = workqueue;
	demo->nbarrier = nworkers;
	if ((rc = pthread_mutex_init(&demo->mutex, NULL)) != 0 ||
	    (rc = pthread_cond_init(&demo->cond, NULL)) != 0)
		errx(1, "pthread init: %s", strerror(rc));
	if ((jobs = calloc((size_t)total, sizeof(*jobs))) == NULL)
		err(1, "calloc");
	for (i = 0; i < total; i++) {
		jobs[i].id = i + 1;
		jobs[i].job.job_function = fn;
		jobs[i].job.user_data = demo;
	}
	if (workqueue_init(workqueue, nworkers) != 0)
		errx(1, "workqueue_init failed");
	return jobs;
}

/* Queue jobs[from] up to, not including, jobs[to]. */
static void
add_jobs(struct workqueue *workqueue, struct demo_job *jobs, int from, int to)
{
	int i;

	for (i = from; i < to; i++)
		workqueue_add_job(workqueue, &jobs[i].job);
}

/* Wait (bounded) until total jobs ran; 1 if one ran other than once. */
static int
wait_all_once(struct demo *demo, struct demo_job *jobs, int total)
{
	int i, bad = 0;

	if (!wait_for(demo, &demo->done, total, JOBS_TIMEOUT_MS))
		errx(1, "timeout: %d of %d jobs ran", demo->done, total);
	for (i = 0; i < total; i++) {
		if (jobs[i].runs != 1) {
			warnx("job %d ran %d times", jobs[i].id, jobs[i].runs);
			bad = 1;
		}
	}
	return bad;
}

/* Shut the queue down; print the jobs run and the workers still alive. */
static void
demo_stop(struct demo *demo)
{
	workqueue_shutdown(demo->workqueue);
	printf("jobs run: %d\n", demo->done);
	printf("workers alive after shutdown: %d\n", threads_left());
}

/* Warn of held jobs never released, free the demo's objects; exit status. */
static int
demo_finish(struct demo *demo, struct demo_job *jobs, int bad)
{
	if (demo->hold_timeouts > 0) {
		warnx("%d held jobs were never released", demo->hold_timeouts);
		bad = 1;
	}
	fflush(stdout);
	/* The demo's own objects: the queue's are its business. */
	pthread_cond_destroy(&demo->cond);
	pthread_mutex_destroy(&demo->mutex);
	free(demo->order);
	free(jobs);
	return bad;
}

/*
 * -i: print the CPU time the process uses in IDLE_MS with nothing to do, and
 * how long its workers were runnable meanwhile.
 */
static void
measure_idle(void)
{
	double cpu0 = cpu_ms(), run0 = runnable_ms(), run1;

	nanosleep(&(struct timespec){IDLE_MS / 1000, IDLE_MS % 1000 * 1000000},
		  NULL);
	run1 = runnable_ms();
	printf("cpu while idle: %.0f ms in %d ms\n", cpu_ms() - cpu0, IDLE_MS);
	if (run0 < 0 || run1 < 0)
		printf("runnable while idle: unknown (no schedstat)\n");
	else
		printf("runnable while idle: %.0f ms in %d ms\n", run1 - run0,
		       IDLE_MS);
}

/*
 * The default: njobs jobs on nworkers workers, each run exactly once; with
 * idle (-i), then the CPU the idle workers use before the shutdown.
 */
static int
run_count(struct workqueue *workqueue, int nworkers, int njobs, int idle)
{
	struct demo demo;
	struct demo_job *jobs;
	int bad;

	jobs = demo_start(&demo, workqueue, nworkers, njobs, count_job);
	add_jobs(workqueue, jobs, 0, njobs);
	bad = wait_all_once(&demo, jobs, njobs);
	if (idle)
		measure_idle();
	demo_stop(&demo);
	return demo_finish(&demo, jobs, bad);
}

/* -b: one job per worker, each finishing only if all run at once. */
static int
run_barrier(struct workqueue *workqueue, int nworkers)
{
	struct demo demo;
	struct demo_job *jobs;
	int bad;

	jobs = demo_start(&demo, workqueue, nworkers, nworkers, barrier_job);
	add_jobs(workqueue, jobs, 0, nworkers);
	bad = wait_all_once(&demo, jobs, nworkers);
	demo_stop(&demo);
	if (demo.barrier_timeouts > 0) {
		printf("barrier: failed (%d of %d jobs ran at once)\n",
		       demo.arrived - demo.barrier_timeouts, demo.nbarrier);
		bad = 1;
	} else
		printf("barrier: passed\n");
	return demo_finish(&demo, jobs, bad);
}

/* -c: njobs jobs, each adding a child job from its worker: 2 x njobs run. */
static int
run_children(struct workqueue *workqueue, int nworkers, int njobs)
{
	struct demo demo;
	struct demo_job *jobs;
	int i, bad;

	jobs = demo_start(&demo, workqueue, nworkers, 2 * njobs, count_job);
	for (i = 0; i < njobs; i++)
		jobs[i].child = &jobs[njobs + i];
	add_jobs(workqueue, jobs, 0, njobs);
	bad = wait_all_once(&demo, jobs, 2 * njobs);
	demo_stop(&demo);
	return demo_finish(&demo, jobs, bad);
}

/*
 * -s: shut down while every worker holds a job and the rest wait in the
 * queue, then release the held jobs and count the jobs that still run.
 */
static int
run_shutdown(struct workqueue *workqueue, int nworkers, int njobs)
{
	struct demo demo;
	struct demo_job *jobs;
	pthread_t thread;
	int rc, first;

	jobs = demo_start(&demo, workqueue, nworkers, njobs, held_job);
	add_jobs(workqueue, jobs, 0, njobs);
	first = njobs < nworkers ? njobs : nworkers;
	if (!wait_for(&demo, &demo.started, first, JOBS_TIMEOUT_MS))
		errx(1, "timeout: %d of %d workers began a job", demo.started,
		     first);
	if ((rc = pthread_create(&thread, NULL, shutdown_thread, &demo)) != 0)
		errx(1, "pthread_create: %s", strerror(rc));
	wait_for(&demo, &demo.shutdown_returned, 1, SHUTDOWN_WAIT_MS);
	release_jobs(&demo);
	if ((rc = pthread_join(thread, NULL)) != 0)
		errx(1, "pthread_join: %s", strerror(rc));
	/*
	 * Give every job added the same time to run; from a queue that dropped
	 * them, only the ones that began will finish.
	 */
	wait_for(&demo, &demo.done, njobs, SHUTDOWN_WAIT_MS);
	pthread_mutex_lock(&demo.mutex);
	first = demo.started;
	pthread_mutex_unlock(&demo.mutex);
	if (!wait_for(&demo, &demo.done, first, JOBS_TIMEOUT_MS))
		errx(1, "timeout: %d of %d begun jobs finished", demo.done,
		     first);
	printf("jobs run: %d\n", demo.done);
	printf("jobs added: %d\n", njobs);
	printf("workers alive after shutdown: %d\n", threads_left());
	return demo_finish(&demo, jobs, 0);
}

/* -o: jobs 2..njobs queued behind job 1 on one worker; print their order. */
static int
run_order(struct workqueue *workqueue, int njobs)
{
	struct demo demo;
	struct demo_job *jobs;
	int i, bad;

	jobs = demo_start(&demo, workqueue, 1, njobs, held_job);
	if ((demo.order = calloc((size_t)njobs, sizeof(int))) == NULL)
		err(1, "calloc");
	/* Job 1 holds the only worker while jobs 2..N are queued. */
	add_jobs(workqueue, jobs, 0, 1);
	if (!wait_for(&demo, &demo.started, 1, JOBS_TIMEOUT_MS))
		errx(1, "timeout: job 1 never started");
	add_jobs(workqueue, jobs, 1, njobs);
	release_jobs(&demo);
	bad = wait_all_once(&demo, jobs, njobs);
	demo_stop(&demo);
	printf("order:");
	for (i = 0; i < njobs; i++)
		printf(" %d", demo.order[i]);
	printf("\n");
	return demo_finish(&demo, jobs, bad);
}

/* Parse a count of 1..limit, digits only; return -1 if it is not one. */
static int
parse_count(const char *s, int limit)
{
	const char *p;
	long n;

	for (p = s; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return -1;
	if (p == s || p - s > 9)
		return -1;
	n = strtol(s, NULL, 10);
	return n < 1 || n > limit ? -1 : (int)n;
}

/* Print the usage, with the defaults, to stderr. */
static void
usage(void)
{
	fprintf(stderr,
		"usage: workqueue_demo [-bchios] [-f started] [-j jobs] "
		"[-w workers]\n"
		"  -w workers  worker threads, 1..1000 (default 4)\n"
		"  -j jobs     jobs to run, 1..1000000 (default 1000)\n"
		"  -b          one job per worker; each finishes only if all "
		"run at once\n"
		"  -c          every job adds a child job (2 x jobs run)\n"
		"  -s          shut down while jobs still wait; print the jobs "
		"run and added\n"
		"  -o          queue jobs 1..jobs behind one held worker; "
		"print "
		"the order\n"
		"              they ran in (implies -w 1)\n"
		"  -f started  let only that many threads start (fewer than "
		"workers) and\n"
		"              count the threads the failed init leaves\n"
		"  -i          leave the workers idle for a while before the "
		"shutdown and\n"
		"              print the CPU time they used meanwhile\n"
		"  -h          show this help\n"
		"At most one of -b, -c, -s, -o and -f; -i with none of "
		"them.\n");
}

/* Say what is wrong with the command line, then the usage; exit status 2. */
static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	usage();
	return 2;
}

/* Parse the options and run the chosen mode. */
int
main(int argc, char *argv[])
{
	/*
	 * Static: the workers chapters 2 and 3 leave behind after a shutdown or
	 * a failed init read it until exit() ends them, after main() returns.
	 */
	static struct workqueue workqueue;
	int ch, nworkers = 4, njobs = 1000, nstart = 0, modes;
	int barrier = 0, children = 0, drop = 0, order = 0, wflag = 0, idle = 0;

	while ((ch = getopt(argc, argv, "bcf:hij:osw:")) != -1) {
		switch (ch) {
		case 'b':
			barrier = 1;
			break;
		case 'c':
			children = 1;
			break;
		case 'f':
			if ((nstart = parse_count(optarg, 999)) == -1)
				return usage_error(
					"invalid thread count for -f: %s",
					optarg);
			break;
		case 'h':
			usage();
			return 0;
		case 'i':
			idle = 1;
			break;
		case 'j':
			if ((njobs = parse_count(optarg, 1000000)) == -1)
				return usage_error("invalid job count: %s",
						   optarg);
			break;
		case 'o':
			order = 1;
			break;
		case 's':
			drop = 1;
			break;
		case 'w':
			if ((nworkers = parse_count(optarg, 1000)) == -1)
				return usage_error("invalid worker count: %s",
						   optarg);
			wflag = 1;
			break;
		default:
			usage();
			return 2;
		}
	}
	modes = barrier + children + drop + order + (nstart > 0);
	if (optind != argc)
		return usage_error("unexpected argument: %s", argv[optind]);
	if (modes > 1)
		return usage_error(
			"choose at most one of -b, -c, -s, -o and -f");
	if (idle && modes > 0)
		return usage_error(
			"-i goes with none of -b, -c, -s, -o and -f");
	if (order && wflag && nworkers != 1)
		return usage_error("-o runs on one worker: -w must be 1");
	if (nstart > 0 && nstart >= nworkers)
		return usage_error("-f %d must be fewer than the %d workers",
				   nstart, nworkers);

	if (nstart > 0)
		return run_failed_init(&workqueue, nworkers, nstart);
	if (barrier)
		return run_barrier(&workqueue, nworkers);
	if (children)
		return run_children(&workqueue, nworkers, njobs);
	if (drop)
		return run_shutdown(&workqueue, nworkers, njobs);
	if (order)
		return run_order(&workqueue, njobs);
	return run_count(&workqueue, nworkers, njobs, idle);
}
