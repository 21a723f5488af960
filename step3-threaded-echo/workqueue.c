/*
 * workqueue.c: a pool of worker threads that take jobs off a shared queue.
 *
 * Every worker sleeps on jobs_cond until a job is queued, takes it off the
 * queue under jobs_mutex and runs it with the mutex released.  The shutdown
 * is the 2012 original's, with the defects its readers reported: see the
 * FLAW comments, and chapter 4 for the fixes.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "workqueue.h"

/* The body of every worker thread: run jobs until told to terminate. */
static void *
worker_function(void *arg)
{
	struct worker *worker = arg;
	struct workqueue *workqueue = worker->workqueue;
	struct job *job;

	for (;;) {
		pthread_mutex_lock(&workqueue->jobs_mutex);
		/*
		 * FLAW (fixed in step 4): the wait loop never re-checks
		 * terminate.  A worker woken by workqueue_shutdown()'s
		 * broadcast finds no job and goes back to sleep, for good.
		 */
		while (workqueue->waiting_jobs == NULL)
			pthread_cond_wait(&workqueue->jobs_cond,
					  &workqueue->jobs_mutex);
		/*
		 * FLAW (fixed in step 4): a worker that leaves here still holds
		 * jobs_mutex, so no other worker can ever wake up again.
		 */
		if (worker->terminate)
			break;
		job = workqueue->waiting_jobs;
		workqueue->waiting_jobs = job->next;
		if (workqueue->waiting_jobs == NULL)
			workqueue->last_job = NULL;
		pthread_mutex_unlock(&workqueue->jobs_mutex);

		job->job_function(job);
	}
	free(worker);
	return NULL;
}

/* Start nworkers threads; return 0, or an error number from pthreads. */
int
workqueue_init(struct workqueue *workqueue, int nworkers)
{
	struct worker *worker;
	int i, rc;

	memset(workqueue, 0, sizeof(*workqueue));
	if ((rc = pthread_mutex_init(&workqueue->jobs_mutex, NULL)) != 0)
		return rc;
	if ((rc = pthread_cond_init(&workqueue->jobs_cond, NULL)) != 0)
		return rc;
	for (i = 0; i < nworkers; i++) {
		if ((worker = calloc(1, sizeof(*worker))) == NULL)
			return ENOMEM;
		worker->workqueue = workqueue;
		if ((rc = pthread_create(&worker->thread, NULL, worker_function,
					 worker)) != 0) {
			free(worker);
			return rc;
		}
		worker->next = workqueue->workers;
		workqueue->workers = worker;
	}
	return 0;
}

/* Queue a job and wake one sleeping worker to run it. */
void
workqueue_add_job(struct workqueue *workqueue, struct job *job)
{
	pthread_mutex_lock(&workqueue->jobs_mutex);
	job->next = NULL;
	if (workqueue->last_job != NULL)
		workqueue->last_job->next = job;
	else
		workqueue->waiting_jobs = job;
	workqueue->last_job = job;
	pthread_cond_signal(&workqueue->jobs_cond);
	pthread_mutex_unlock(&workqueue->jobs_mutex);
}

/* Tell every worker to stop, drop the jobs still waiting, wake everyone. */
void
workqueue_shutdown(struct workqueue *workqueue)
{
	struct worker *worker;

	/*
	 * FLAW (fixed in step 4): terminate is written without jobs_mutex,
	 * which the workers hold when they read it: a data race.
	 */
	for (worker = workqueue->workers; worker != NULL; worker = worker->next)
		worker->terminate = 1;

	pthread_mutex_lock(&workqueue->jobs_mutex);
	workqueue->workers = NULL;
	workqueue->waiting_jobs = NULL;
	workqueue->last_job = NULL;
	pthread_cond_broadcast(&workqueue->jobs_cond);
	pthread_mutex_unlock(&workqueue->jobs_mutex);
	/*
	 * FLAW (fixed in step 4): nothing waits for the workers to finish (no
	 * pthread_join), and jobs_mutex and jobs_cond are never destroyed.
	 */
}
