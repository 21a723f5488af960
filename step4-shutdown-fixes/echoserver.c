/*
 * echoserver: a multi-threaded libevent echo server, the 2012 design fixed.
 *
 * The main thread's event loop accepts connections.  Each connection gets an
 * event base of its own, and a job on the work queue runs that base's loop
 * on a worker thread for as long as the connection lives.  It uses only
 * libevent 2's public API.  SIGINT or SIGTERM stops accepting; every
 * connection echoes what its client sent and closes lingering on its own
 * thread, all within one deadline; the workers are joined, everything is
 * freed and the process exits 0.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "workqueue.h"

#define DEFAULT_ADDR   "127.0.0.1"
#define DEFAULT_PORT   "5555"
#define LISTEN_BACKLOG 4096

/*
 * Backpressure: stop reading from a client once HIGH_WATER bytes of its echo
 * wait to be sent, and start again when fewer than LOW_WATER are left.
 */
#define HIGH_WATER (256 * 1024)
#define LOW_WATER  (64 * 1024)

/*
 * On shutdown a connection goes on echoing until its client has been quiet
 * for DRAIN_QUIET_MS, then closes lingering once the echo is sent.  Only the
 * client knows when it has sent everything; a pause is the best sign we
 * have.  DRAIN_SECONDS after the signal whatever is left is closed at once,
 * queued connections included.
 */
#define DRAIN_QUIET_MS 50
#define DRAIN_SECONDS  1

/* One connected client, and the job that runs its event loop. */
struct client {
	struct job job;
	TAILQ_ENTRY(client) entry;
	int fd;
	struct event_base *evbase;
	struct bufferevent *bev;
	int closing;   /* reading no more: finish once the echo is sent */
	int eof;       /* the client sent EOF: nothing more will come */
	int draining;  /* shutting down: finish once the client is quiet */
	int lingering; /* our side is shut: discard until the client's EOF */
	char peer[64]; /* "addr:port", for -v */
};

TAILQ_HEAD(client_list, client);

/*
 * Every live client, so that the main thread can stop them all.  A client's
 * job takes it off the list before freeing its base: while the main thread
 * holds clients_mutex, every base on the list is valid.
 */
static struct client_list clients = TAILQ_HEAD_INITIALIZER(clients);
static pthread_mutex_t clients_mutex = PTHREAD_MUTEX_INITIALIZER;

static struct workqueue workqueue;
static int verbose;

/* When the drain ends, on CLOCK_MONOTONIC; set before any drain starts. */
static struct timespec drain_deadline;

/*
 * Log one line to stderr.  Several threads log at once, and warnx() writes a
 * line in pieces, so hold stderr's lock for the whole line.
 */
static void
logx(const char *fmt, ...)
{
	va_list ap;

	flockfile(stderr);
	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	funlockfile(stderr);
}

/*
 * Close a client's connection and stop its loop, which may still hold the
 * drain timer; server_job_function() frees the rest.
 */
static void
client_close(struct client *c)
{
	if (verbose)
		logx("%s: closed", c->peer);
	bufferevent_free(c->bev);
	c->bev = NULL;
	close(c->fd);
	event_base_loopexit(c->evbase, NULL);
}

/*
 * Close lingering: we will send nothing more, so say so with a FIN, and read
 * and discard until the client's own EOF.  Closing at once instead would make
 * the kernel answer anything the client still sends with a reset, and a
 * reset throws away the echo still on its way to the client.
 */
static void
client_linger(struct client *c)
{
	c->lingering = 1;
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	if (shutdown(c->fd, SHUT_WR) == -1 ||
	    bufferevent_enable(c->bev, EV_READ) == -1)
		client_close(c);
}

/*
 * Read no more and close once the echo is sent: at once if the client sent
 * its EOF, else lingering, since it may still send.
 */
static void
client_finish(struct client *c, int eof)
{
	struct evbuffer *output = bufferevent_get_output(c->bev);

	/* What arrived with the EOF or before the timeout is owed too. */
	evbuffer_add_buffer(output, bufferevent_get_input(c->bev));
	c->eof = eof;
	if (evbuffer_get_length(output) == 0) {
		if (eof)
			client_close(c);
		else
			client_linger(c);
		return;
	}
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
}

/* Echo what arrived; stop reading if the client does not read its echo. */
static void
echo_read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *input = bufferevent_get_input(bev);
	struct evbuffer *output = bufferevent_get_output(bev);

	if (c->lingering) {
		evbuffer_drain(input, evbuffer_get_length(input));
		return;
	}
	/* Moves the data without copying it. */
	if (evbuffer_add_buffer(output, input) == -1) {
		logx("%s: evbuffer_add_buffer failed", c->peer);
		client_close(c);
		return;
	}
	if (evbuffer_get_length(output) >= HIGH_WATER)
		bufferevent_disable(bev, EV_READ);
}

/* The echo drained below the write watermark: resume reading, or close. */
static void
echo_write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	if (c->closing) {
		/* The watermark is 0 now, so everything has been sent. */
		c->closing = 0;
		if (c->eof)
			client_close(c);
		else
			client_linger(c);
		return;
	}
	if ((bufferevent_get_enabled(bev) & EV_READ) == 0 &&
	    bufferevent_enable(bev, EV_READ) == -1)
		client_close(c);
}

/*
 * EOF: flush what the client is owed, then close.  Shutting down, a quiet
 * client is finished the same way, but lingering.  An error closes at once.
 */
static void
echo_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if ((what & BEV_EVENT_EOF) && !c->lingering) {
		/*
		 * A half-close is not a hang-up: the client may still be
		 * reading.  Echo the rest and close only when it is sent.
		 */
		client_finish(c, 1);
		return;
	}
	if (c->draining && (what & BEV_EVENT_TIMEOUT) && !c->lingering) {
		client_finish(c, 0);
		return;
	}
	if (verbose && (what & BEV_EVENT_ERROR))
		logx("%s: %s", c->peer, strerror(errno));
	client_close(c);
}

/*
 * Shutdown, on the connection's own thread: go on echoing until the client
 * has been quiet for a moment, then close lingering once the echo is sent.
 * The loop stops at the deadline whatever happens, and a connection still
 * open then is closed at once.
 */
static void
client_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	struct timeval quiet = {0, DRAIN_QUIET_MS * 1000};
	struct timeval left = {0, 0};
	struct timespec now;
	long ns;

	(void)fd;
	(void)what;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (drain_deadline.tv_sec - now.tv_sec) * 1000000000L +
	     (drain_deadline.tv_nsec - now.tv_nsec);
	if (ns > 0) {
		left.tv_sec = ns / 1000000000L;
		left.tv_usec = ns % 1000000000L / 1000;
	}
	if (event_base_loopexit(c->evbase, &left) == -1) {
		/* Without the deadline the drain could last for ever. */
		logx("%s: event_base_loopexit failed", c->peer);
		if (c->bev != NULL)
			client_close(c);
		return;
	}
	if (c->bev == NULL || c->closing || c->lingering)
		return;
	c->draining = 1;
	bufferevent_set_timeouts(c->bev, &quiet, NULL);
}

/* Format a socket address as "addr:port", or "[addr]:port" for IPv6. */
static void
format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN], serv[8];

	if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(buf, size, "?");
		return;
	}
	if (sa->sa_family == AF_INET6)
		snprintf(buf, size, "[%s]:%s", host, serv);
	else
		snprintf(buf, size, "%s:%s", host, serv);
}

/* A worker thread runs this job: the connection's loop, until it closes. */
static void
server_job_function(struct job *job)
{
	struct client *c = job->user_data;

	if (event_base_dispatch(c->evbase) == -1)
		logx("%s: event_base_dispatch failed", c->peer);
	/* The loop may have stopped at the drain's deadline, the client open.
	 */
	if (c->bev != NULL)
		client_close(c);
	pthread_mutex_lock(&clients_mutex);
	TAILQ_REMOVE(&clients, c, entry);
	pthread_mutex_unlock(&clients_mutex);
	event_base_free(c->evbase);
	free(c);
}

/* A client is waiting: accept it, give it a base and queue its job. */
static void
accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct client *c;
	int cfd;

	(void)what;
	(void)arg;
	if ((cfd = accept(fd, (struct sockaddr *)&ss, &len)) == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			logx("accept: %s", strerror(errno));
		return;
	}
	if (fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) | O_NONBLOCK) == -1) {
		logx("fcntl: %s", strerror(errno));
		close(cfd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		logx("calloc: %s", strerror(errno));
		close(cfd);
		return;
	}
	if ((c->evbase = event_base_new()) == NULL) {
		logx("event_base_new failed");
		close(cfd);
		free(c);
		return;
	}
	c->fd = cfd;
	format_addr((struct sockaddr *)&ss, len, c->peer, sizeof(c->peer));
	if ((c->bev = bufferevent_socket_new(c->evbase, cfd, 0)) == NULL) {
		logx("bufferevent_socket_new failed");
		event_base_free(c->evbase);
		close(cfd);
		free(c);
		return;
	}
	bufferevent_setcb(c->bev, echo_read_cb, echo_write_cb, echo_event_cb,
			  c);
	bufferevent_setwatermark(c->bev, EV_WRITE, LOW_WATER, 0);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) == -1) {
		logx("bufferevent_enable failed");
		bufferevent_free(c->bev);
		event_base_free(c->evbase);
		close(cfd);
		free(c);
		return;
	}
	if (verbose)
		logx("%s: connected", c->peer);
	/*
	 * From here on only the worker that runs the job touches the client.
	 * If every worker is busy with a connection, the job waits.
	 */
	c->job.job_function = server_job_function;
	c->job.user_data = c;
	pthread_mutex_lock(&clients_mutex);
	TAILQ_INSERT_TAIL(&clients, c, entry);
	pthread_mutex_unlock(&clients_mutex);
	workqueue_add_job(&workqueue, &c->job);
}

/* SIGINT or SIGTERM: leave the event loop so that main() can clean up. */
static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct event_base *base = arg;

	(void)what;
	if (verbose)
		logx("caught signal %d, exiting", (int)sig);
	event_base_loopexit(base, NULL);
}

/* Parse a thread count in 1..1024; return -1 if it is not one. */
static int
parse_threads(const char *s)
{
	char *end;
	long n;

	/* Digits only: strtol() would also take " 7", "+7" and "-0". */
	if (*s == '\0' || s[strspn(s, "0123456789")] != '\0')
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (*end != '\0' || errno != 0 || n < 1 || n > 1024)
		return -1;
	return (int)n;
}

/* Parse a port number in 0..65535; return -1 if it is not one. */
static int
parse_port(const char *s)
{
	char *end;
	long n;

	/* Digits only: strtol() would also take " 7", "+7" and "-0". */
	if (*s == '\0' || s[strspn(s, "0123456789")] != '\0')
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (*end != '\0' || errno != 0 || n < 0 || n > 65535)
		return -1;
	return (int)n;
}

/* Open a non-blocking listening socket on ai and print where it listens. */
static int
listen_on(const struct addrinfo *ai, const char *addr, const char *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char where[128];
	int fd, on = 1;

	if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) ==
	    -1)
		err(1, "socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		err(1, "setsockopt SO_REUSEADDR");
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1)
		err(1, "cannot listen on %s port %s", addr, port);
	if (listen(fd, LISTEN_BACKLOG) == -1)
		err(1, "listen");
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		err(1, "fcntl");
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		err(1, "getsockname");
	format_addr((struct sockaddr *)&ss, len, where, sizeof(where));
	printf("listening on %s\n", where);
	fflush(stdout);
	return fd;
}

/* Print the usage, with the defaults, to stderr. */
static void
usage(void)
{
	fprintf(stderr,
		"usage: echoserver [-hv] [-a addr] [-p port] [-t threads]\n"
		"  -a addr     address to listen on (default %s; IPv6 works)\n"
		"  -p port     port to listen on, 0 for a free one\n"
		"              (default %s)\n"
		"  -t threads  worker threads (default: the online CPUs, %ld)\n"
		"  -v          log connections and disconnections to stderr\n"
		"  -h          show this help\n",
		DEFAULT_ADDR, DEFAULT_PORT, sysconf(_SC_NPROCESSORS_ONLN));
}

/* Parse the options, listen, run the loop until a signal, free everything. */
int
main(int argc, char *argv[])
{
	struct addrinfo hints, *ai;
	struct event_base *base;
	struct event *listen_ev, *sigint_ev, *sigterm_ev;
	struct timeval bound = {DRAIN_SECONDS, 0};
	struct client *c;
	const char *addr = DEFAULT_ADDR, *port = DEFAULT_PORT;
	int ch, fd, rc, nthreads = (int)sysconf(_SC_NPROCESSORS_ONLN);

	while ((ch = getopt(argc, argv, "a:hp:t:v")) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 'h':
			usage();
			return 0;
		case 'p':
			port = optarg;
			if (parse_port(port) == -1) {
				warnx("invalid port: %s", port);
				usage();
				return 2;
			}
			break;
		case 't':
			if ((nthreads = parse_threads(optarg)) == -1) {
				warnx("invalid thread count: %s", optarg);
				usage();
				return 2;
			}
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (optind != argc) {
		warnx("unexpected argument: %s", argv[optind]);
		usage();
		return 2;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if ((rc = getaddrinfo(addr, port, &hints, &ai)) != 0) {
		warnx("invalid address %s: %s", addr, gai_strerror(rc));
		usage();
		return 2;
	}

	/* A client that vanishes must cost a write error, not the process. */
	signal(SIGPIPE, SIG_IGN);

	/*
	 * Before any base exists: the main thread will reach into the
	 * connections' bases at shutdown, and that needs locks.
	 */
	if (evthread_use_pthreads() == -1)
		errx(1, "evthread_use_pthreads failed");
	if ((base = event_base_new()) == NULL)
		errx(1, "event_base_new failed");
	if (nthreads < 1)
		nthreads = 1;
	if ((rc = workqueue_init(&workqueue, nthreads)) != 0)
		errx(1, "workqueue_init: %s", strerror(rc));
	/* Signals first: once the ready line is out, SIGINT must be caught. */
	sigint_ev = evsignal_new(base, SIGINT, signal_cb, base);
	sigterm_ev = evsignal_new(base, SIGTERM, signal_cb, base);
	if (sigint_ev == NULL || sigterm_ev == NULL)
		errx(1, "evsignal_new failed");
	if (event_add(sigint_ev, NULL) == -1 ||
	    event_add(sigterm_ev, NULL) == -1)
		errx(1, "event_add failed");
	fd = listen_on(ai, addr, port);
	freeaddrinfo(ai);
	listen_ev = event_new(base, fd, EV_READ | EV_PERSIST, accept_cb, base);
	if (listen_ev == NULL)
		errx(1, "event_new failed");
	if (event_add(listen_ev, NULL) == -1)
		errx(1, "event_add failed");

	if (event_base_dispatch(base) == -1)
		errx(1, "event_base_dispatch failed");

	/*
	 * Accept no one new, then ask every connection to finish, all by one
	 * deadline.  A connection the drain cannot reach is stopped at the
	 * deadline; one that cannot be stopped would keep us here for good.
	 */
	event_free(listen_ev);
	close(fd);
	clock_gettime(CLOCK_MONOTONIC, &drain_deadline);
	drain_deadline.tv_sec += DRAIN_SECONDS;
	pthread_mutex_lock(&clients_mutex);
	TAILQ_FOREACH(c, &clients, entry) {
		if (event_base_once(c->evbase, -1, EV_TIMEOUT, client_drain_cb,
				    c, NULL) == -1 &&
		    event_base_loopexit(c->evbase, &bound) == -1)
			errx(1, "%s: cannot stop the connection", c->peer);
	}
	pthread_mutex_unlock(&clients_mutex);

	/* Runs the jobs still queued, then joins every worker. */
	workqueue_shutdown(&workqueue);
	event_free(sigterm_ev);
	event_free(sigint_ev);
	event_base_free(base);
	libevent_global_shutdown();
	return 0;
}
