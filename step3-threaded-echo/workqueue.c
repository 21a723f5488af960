/*
 * workqueue.c: the 2012 article's work queue, as it was.
 *
 * Every worker sleeps on jobs_cond until a job is queued, takes it off the
 * list under jobs_mutex and runs it with the mutex released.  Its shutdown
 * and its order are the original's: see the FLAW comments, and chapter 4
 * for the fixes.
 */

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
		/*
		 * FLAW (fixed in step 4): F2, the wait loop never looks at
		 * terminate.  A worker woken by workqueue_shutdown()'s
		 * broadcast finds no job and goes back to sleep, for good.
		 */
		while (worker->workqueue->waiting_jobs == NULL)
			pthread_cond_wait(&worker->workqueue->jobs_cond,
					  &worker->workqueue->jobs_mutex);
		job = worker->workqueue->waiting_jobs;
		if (job != NULL)
			LL_REMOVE(job, worker->workqueue->waiting_jobs);
		pthread_mutex_unlock(&worker->workqueue->jobs_mutex);

		/*
		 * FLAW (fixed in step 4): F4, terminate is read here without
		 * jobs_mutex while workqueue_shutdown() writes it without
		 * jobs_mutex: a data race.
		 */
		if (worker->terminate)
			break;
		if (job == NULL)
			continue;
		job->job_function(job);
	}
	/*
	 * FLAW (fixed in step 4): F4, the worker frees itself, while
	 * workqueue_shutdown() may still be walking the list it is on.
	 */
	free(worker);
	pthread_exit(NULL);
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
			return 1;
		}
		memset(worker, 0, sizeof(*worker));
		worker->workqueue = workqueue;
		if ((rc = pthread_create(&worker->thread, NULL, worker_function,
					 worker)) != 0) {
			/*
			 * FLAW (fixed in step 4): F17, the workers already
			 * started keep running, on a queue the caller will
			 * think never existed.
			 */
			/*
			 * FLAW (fixed in step 4): F19, pthread_create() returns
			 * its error and leaves errno alone: perror() names
			 * whatever errno last held, not the error in rc.
			 */
			perror("workqueue_init: pthread_create");
			free(worker);
			return 1;
		}
		LL_ADD(worker, workqueue->workers);
	}
	return 0;
}

/* Tell every worker to stop, forget the waiting jobs, wake everyone. */
void
workqueue_shutdown(workqueue_t *workqueue)
{
	worker_t *worker = NULL;

	/*
	 * FLAW (fixed in step 4): F4, terminate is written without jobs_mutex,
	 * and the list is walked while a leaving worker frees itself.
	 */
	for (worker = workqueue->workers; worker != NULL; worker = worker->next)
		worker->terminate = 1;

	pthread_mutex_lock(&workqueue->jobs_mutex);
	workqueue->workers = NULL;
	/*
	 * FLAW (fixed in step 4): F5, the jobs still waiting are dropped:
	 * they never run, and whatever they own is never freed.
	 */
	workqueue->waiting_jobs = NULL;
	pthread_cond_broadcast(&workqueue->jobs_cond);
	pthread_mutex_unlock(&workqueue->jobs_mutex);
	/*
	 * FLAW (fixed in step 4): F4, nothing waits for the workers
	 * (pthread_join), and jobs_mutex and jobs_cond are never destroyed.
	 */
}

/* Queue a job and wake one sleeping worker to run it. */
void
workqueue_add_job(workqueue_t *workqueue, job_t *job)
{
	pthread_mutex_lock(&workqueue->jobs_mutex);
	/*
	 * FLAW (fixed in step 4): F10, the job goes to the head of the list,
	 * where the workers take theirs: the newest job runs first.
	 */
	LL_ADD(job, workqueue->waiting_jobs);
	pthread_cond_signal(&workqueue->jobs_cond);
	pthread_mutex_unlock(&workqueue->jobs_mutex);
}
