/*
 * workqueue.c: a pool of worker threads that take jobs off a shared queue.
 *
 * Every worker sleeps on jobs_cond until a job is queued, takes it off the
 * queue under jobs_mutex and runs it with the mutex released.  Shutdown runs
 * the jobs already queued, then every worker leaves and is joined.
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
		while (workqueue->waiting_jobs == NULL && !worker->terminate)
			pthread_cond_wait(&workqueue->jobs_cond,
					  &workqueue->jobs_mutex);
		if (workqueue->waiting_jobs == NULL) {
			/* Told to terminate, and nothing is left to run. */
			pthread_mutex_unlock(&workqueue->jobs_mutex);
			break;
		}
		job = workqueue->waiting_jobs;
		workqueue->waiting_jobs = job->next;
		if (workqueue->waiting_jobs == NULL)
			workqueue->last_job = NULL;
		pthread_mutex_unlock(&workqueue->jobs_mutex);

		job->job_function(job);
	}
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

/* Let the queued jobs run, stop every worker, wait for each, free all. */
void
workqueue_shutdown(struct workqueue *workqueue)
{
	struct worker *worker, *next;

	pthread_mutex_lock(&workqueue->jobs_mutex);
	for (worker = workqueue->workers; worker != NULL; worker = worker->next)
		worker->terminate = 1;
	pthread_cond_broadcast(&workqueue->jobs_cond);
	pthread_mutex_unlock(&workqueue->jobs_mutex);

	/* A worker leaves once the queue is empty and its job has returned. */
	for (worker = workqueue->workers; worker != NULL; worker = next) {
		next = worker->next;
		pthread_join(worker->thread, NULL);
		free(worker);
	}
	workqueue->workers = NULL;
	pthread_cond_destroy(&workqueue->jobs_cond);
	pthread_mutex_destroy(&workqueue->jobs_mutex);
}
