/*
 * workqueue.h: the 2012 article's work queue, with its names.
 *
 * A fixed pool of worker threads runs jobs from one queue.  A job is a
 * function and a pointer; workqueue_add_job() queues it and one of the
 * workers runs it.  Workers and jobs sit on doubly linked lists.
 */

#ifndef WORKQUEUE_H
#define WORKQUEUE_H

#include <pthread.h>

struct workqueue;

/* One worker thread, and whether it has been told to stop. */
typedef struct worker {
	pthread_t thread;
	int terminate;
	struct workqueue *workqueue;
	struct worker *prev;
	struct worker *next;
} worker_t;

/* A unit of work: a worker calls job_function(job). */
typedef struct job {
	void (*job_function)(struct job *job);
	void *user_data;
	struct job *prev;
	struct job *next;
} job_t;

/* The workers, the jobs waiting for one, and what guards them. */
typedef struct workqueue {
	struct worker *workers;
	struct job *waiting_jobs;
	pthread_mutex_t jobs_mutex;
	pthread_cond_t jobs_cond;
} workqueue_t;

/* Start numWorkers threads (at least one); 0 on success, 1 on failure. */
int workqueue_init(workqueue_t *workqueue, int numWorkers);

/* Stop the workers; jobs still waiting are forgotten. */
void workqueue_shutdown(workqueue_t *workqueue);

/* Queue a job for the next free worker. */
void workqueue_add_job(workqueue_t *workqueue, job_t *job);

#endif /* WORKQUEUE_H */
