/*
 * workqueue.c: the 2012 article's work queue, with its flaws fixed.
 *
 * Every worker sleeps on jobs_cond until a job is queued, takes the oldest
 * off the list under jobs_mutex and runs it with the mutex released.
 * Shutdown lets the queued jobs run, then every worker leaves and is joined.
 */

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workqueue.h"

/* Push item at the head of a doubly linked list. */
#define LL_ADD(item, list)                                                     \
	do {                                                                   \
		(item)->prev = NULL;                                           \
		(item)->next = (list);                                         \
		if ((list) != NULL)                                            \
			(list)->prev = (item);                                 \
		(list) = (item);                                               \
	} while (0)

/* Unlink item from a doubly linked list, wherever it is. */
#define LL_REMOVE(item, list)                                                  \
	do {                                                                   \
		if ((item)->prev != NULL)                                      \
			(item)->prev->next = (item)->next;                     \
		if ((item)->next != NULL)                                      \
			(item)->next->prev = (item)->prev;                     \
		if ((list) == (item))                                          \
			(list) = (item)->next;                                 \
		(item)->prev = (item)->next = NULL;                            \
	} while (0)

/* The body of every worker thread: run jobs until told to terminate. */
static void *
worker_function(void *ptr)
{
	worker_t *worker = ptr;
	job_t *job;

	for (;;) {
		pthread_mutex_lock(&worker->workqueue->jobs_mutex);
		while (worker->workqueue->waiting_jobs == NULL &&
		       !worker->terminate)
			pthread_cond_wait(&worker->workqueue->jobs_cond,
					  &worker->workqueue->jobs_mutex);
		job = worker->workqueue->last_job;
		if (job != NULL) {
			worker->workqueue->last_job = job->prev;
			LL_REMOVE(job, worker->workqueue->waiting_jobs);
		}
		pthread_mutex_unlock(&worker->workqueue->jobs_mutex);

		/* No job means terminate, and nothing is left to run. */
		if (job == NULL)
			break;
		job->job_function(job);
	}
	/*
	 * workqueue_shutdown() joins this thread, then frees worker.  Return
	 * rather than pthread_exit(), which may have to load the unwinder and
	 * aborts the process if memory is too short to do it.
	 */
	return NULL;
}

/* Start numWorkers threads; 0 on success, 1 on failure. */
int
workqueue_init(workqueue_t *workqueue, int numWorkers)
{
	pthread_mutex_t blank_mutex = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t blank_cond = PTHREAD_COND_INITIALIZER;
	worker_t *worker;
	int i, rc;

	if (numWorkers < 1)
		numWorkers = 1;
	memset(workqueue, 0, sizeof(*workqueue));
	memcpy(&workqueue->jobs_mutex, &blank_mutex, sizeof(blank_mutex));
	memcpy(&workqueue->jobs_cond, &blank_cond, sizeof(blank_cond));

	for (i = 0; i < numWorkers; i++) {
		if ((worker = malloc(sizeof(worker_t))) == NULL) {
			perror("workqueue_init: malloc");
			workqueue_shutdown(workqueue);
			return 1;
		}
		memset(worker, 0, sizeof(*worker));
		worker->workqueue = workqueue;
		if ((rc = pthread_create(&worker->thread, NULL, worker_function,
					 worker)) != 0) {
			/* It returns its error and leaves errno alone. */
			warnx("workqueue_init: pthread_create: %s",
			      strerror(rc));
			free(worker);
			/* Stop and join the workers already started. */
			workqueue_shutdown(workqueue);
			return 1;
		}
		LL_ADD(worker, workqueue->workers);
	}
	return 0;
}

/* Tell every worker to stop once the queue is empty, join them, free all. */
void
workqueue_shutdown(workqueue_t *workqueue)
{
	worker_t *worker = NULL;
	int rc;

	pthread_mutex_lock(&workqueue->jobs_mutex);
	for (worker = workqueue->workers; worker != NULL; worker = worker->next)
		worker->terminate = 1;
	pthread_cond_broadcast(&workqueue->jobs_cond);
	pthread_mutex_unlock(&workqueue->jobs_mutex);

	/* A worker leaves once no job waits and its own job has returned. */
	while ((worker = workqueue->workers) != NULL) {
		/* It fails on a thread not ours to join, or on our own. */
		if ((rc = pthread_join(worker->thread, NULL)) != 0) {
			warnx("workqueue_shutdown: pthread_join: %s",
			      strerror(rc));
			abort();
		}
		LL_REMOVE(worker, workqueue->workers);
		free(worker);
	}
	pthread_cond_destroy(&workqueue->jobs_cond);
	pthread_mutex_destroy(&workqueue->jobs_mutex);
}

/* Queue a job and wake one sleeping worker to run it. */
void
workqueue_add_job(workqueue_t *workqueue, job_t *job)
{
	pthread_mutex_lock(&workqueue->jobs_mutex);
	/* New jobs go in at the head; workers take the oldest, at the tail. */
	LL_ADD(job, workqueue->waiting_jobs);
	if (workqueue->last_job == NULL)
		workqueue->last_job = job;
	pthread_cond_signal(&workqueue->jobs_cond);
	pthread_mutex_unlock(&workqueue->jobs_mutex);
}
