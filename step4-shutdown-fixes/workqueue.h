/*
 * workqueue.h: a fixed pool of worker threads that run jobs from one queue.
 *
 * A job is a function and a pointer; workqueue_add_job() queues it and one
 * of the workers runs it.  One mutex guards the queue and one condition
 * variable wakes a worker when a job arrives.
 */

#ifndef WORKQUEUE_H
#define WORKQUEUE_H

#include <pthread.h>

struct workqueue;

/* A unit of work: a worker calls job_function(job). */
struct job {
	void (*job_function)(struct job *job);
	void *user_data;
	struct job *next;
};

/* One worker thread. */
struct worker {
	pthread_t thread;
	int terminate;
	struct workqueue *workqueue;
	struct worker *next;
};

/* The workers, the jobs waiting for one, and what guards them. */
struct workqueue {
	struct worker *workers;
	struct job *waiting_jobs;
	struct job *last_job;
	pthread_mutex_t jobs_mutex;
	pthread_cond_t jobs_cond;
};

int workqueue_init(struct workqueue *workqueue, int nworkers);
void workqueue_add_job(struct workqueue *workqueue, struct job *job);
void workqueue_shutdown(struct workqueue *workqueue);

#endif /* WORKQUEUE_H */
