/*
 * latesig.so: an LD_PRELOAD library for one test of chapter 5.  Right after
 * the program frees a libevent signal event, it sends itself SIGTERM, as a
 * signal sent late on a busy machine may arrive just then: a server that
 * stops handling signals before it is done then ends by the signal every
 * time, not now and then.  Built by the test that uses it.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stddef.h>
#include <unistd.h>

#include <event2/event.h>

/* libevent's event_free(), then a SIGTERM if ev was a signal event. */
void
event_free(struct event *ev)
{
	static void (*real)(struct event *);
	int was_signal = ev != NULL && (event_get_events(ev) & EV_SIGNAL) != 0;

	if (real == NULL && (real = (void (*)(struct event *))dlsym(
				     RTLD_NEXT, "event_free")) == NULL)
		_exit(99);
	real(ev);
	if (was_signal)
		kill(getpid(), SIGTERM);
}
