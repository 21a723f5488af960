/*
 * workqueue_demo: the work queue used for something other than sockets.
 *
 * It runs JOBS jobs on WORKERS workers, waits (bounded) until they have all
 * run, checks each ran exactly once, shuts the queue down and counts the
 * worker threads that still exist afterwards.  -b shows the jobs run in
 * parallel: WORKERS jobs that can only finish if all run at the same time.
 */

#include <sys/types.h>

#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "workqueue.h"

/* How long the demo waits for its jobs, and for workers to exit. */
#define JOBS_TIMEOUT_MS 10000
#define GRACE_MS	200

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

/* Record that a job ran, and wake main() if it waits for the count. */
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

/* Parse a count in 1..limit, or exit with a usage error. */
static int
parse_count(const char *s, const char *what, int limit)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || n < 1 || n > limit) {
		fprintf(stderr, "workqueue_demo: %s must be 1..%d: %s\n", what,
			limit, s);
		exit(2);
	}
	return (int)n;
}

/* Print the usage, with the defaults, to stderr. */
static void
usage(void)
{
	fprintf(stderr,
		"usage: workqueue_demo [-bch] [-w workers] [-j jobs]\n"
		"  -w workers  worker threads (default 4)\n"
		"  -j jobs     jobs to run (default 1000)\n"
		"  -c          every job adds a child job (2 x jobs run)\n"
		"  -b          run one job per worker that finishes only if "
		"all\n"
		"              run at the same time\n");
}

/* Run the jobs, shut the queue down, report what is left. */
int
main(int argc, char *argv[])
{
	struct workqueue workqueue;
	struct demo demo;
	struct demo_job *jobs;
	struct timespec ts;
	int ch, i, rc, nworkers = 4, njobs = 1000, total, alive, waited;
	int barrier = 0, children = 0, bad = 0;

	while ((ch = getopt(argc, argv, "bchj:w:")) != -1) {
		switch (ch) {
		case 'b':
			barrier = 1;
			break;
		case 'c':
			children = 1;
			break;
		case 'h':
			usage();
			return 0;
		case 'j':
			njobs = parse_count(optarg, "jobs", 1000000);
			break;
		case 'w':
			nworkers = parse_count(optarg, "workers", 1000);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (barrier)
		njobs = nworkers;
	total = children ? 2 * njobs : njobs;

	memset(&demo, 0, sizeof(demo));
	demo.workqueue = &workqueue;
	demo.nbarrier = nworkers;
	if ((rc = pthread_mutex_init(&demo.mutex, NULL)) != 0 ||
	    (rc = pthread_cond_init(&demo.cond, NULL)) != 0)
		errx(1, "pthread init: %s", strerror(rc));
	if ((jobs = calloc((size_t)total, sizeof(*jobs))) == NULL)
		err(1, "calloc");
	for (i = 0; i < total; i++) {
		jobs[i].id = i;
		jobs[i].job.job_function = barrier ? barrier_job : count_job;
		jobs[i].job.user_data = &demo;
		if (children && i < njobs)
			jobs[i].child = &jobs[njobs + i];
	}

	if ((rc = workqueue_init(&workqueue, nworkers)) != 0)
		errx(1, "workqueue_init failed");
	for (i = 0; i < njobs; i++)
		workqueue_add_job(&workqueue, &jobs[i].job);

	/* Wait, bounded, until every job has run. */
	ts = deadline_in(JOBS_TIMEOUT_MS);
	rc = 0;
	pthread_mutex_lock(&demo.mutex);
	while (demo.done < total && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&demo.cond, &demo.mutex, &ts);
	pthread_mutex_unlock(&demo.mutex);
	if (rc == ETIMEDOUT)
		errx(1, "timeout: %d of %d jobs ran", demo.done, total);
	for (i = 0; i < total; i++) {
		if (jobs[i].runs != 1) {
			warnx("job %d ran %d times", i, jobs[i].runs);
			bad = 1;
		}
	}

	workqueue_shutdown(&workqueue);

	/* Give workers that are on their way out a moment to go. */
	for (waited = 0; count_threads() > 1 && waited < GRACE_MS; waited += 10)
		nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
	alive = count_threads() - 1;

	printf("jobs run: %d\n", demo.done);
	printf("workers alive after shutdown: %d\n", alive);
	if (barrier) {
		if (demo.barrier_timeouts > 0) {
			printf("barrier: failed (%d of %d jobs ran at once)\n",
			       demo.arrived - demo.barrier_timeouts,
			       demo.nbarrier);
			bad = 1;
		} else
			printf("barrier: passed\n");
	}
	fflush(stdout);
	/* The demo's own objects: the queue's are its business. */
	pthread_cond_destroy(&demo.cond);
	pthread_mutex_destroy(&demo.mutex);
	free(jobs);
	return bad;
}
