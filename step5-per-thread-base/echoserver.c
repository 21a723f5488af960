/*
 * echoserver: a multi-threaded libevent echo server, one event base per thread.
 *
 * T worker threads each run one event base for their whole life and serve any
 * number of connections, as memcached does.  The main thread owns the
 * listening socket and the signals; it hands each accepted socket to a
 * worker, round robin, through that worker's queue and a cross-thread wakeup,
 * and the worker creates the connection on its own base: no other thread ever
 * touches it.  SIGINT or SIGTERM stops accepting; every connection sends what
 * it owes and closes lingering on its own thread, all by one deadline; each
 * loop stops itself, the workers are joined, everything is freed and the
 * process exits 0.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

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
 * for DRAIN_QUIET_MS, then closes lingering once the echo is sent.
 * DRAIN_SECONDS after the signal whatever is left is closed at once.
 */
#define DRAIN_QUIET_MS 50
#define DRAIN_SECONDS  1

/* A lingering close waits this long for the client's EOF (-i, -c). */
#define LINGER_SECONDS 2

/* How much one read takes; the buffer is the worker's, not the client's. */
#define READ_SIZE (64 * 1024)

/* Out of descriptors: how long accepting pauses before it tries again. */
#define ACCEPT_RETRY_MS 100

struct worker;

/* One connected client; only its worker's thread touches it. */
struct client {
	TAILQ_ENTRY(client) entry;
	struct worker *worker;
	int fd;
	struct event *read_ev;	 /* persistent; its timeout is the idle one */
	struct event *write_ev;	 /* added only while output is pending */
	struct evbuffer *output; /* echo the socket did not take at once */
	int reading;		 /* read_ev is added */
	int closing;   /* reading no more: finish once the echo is sent */
	int eof;       /* the client sent EOF: nothing more will come */
	int draining;  /* shutting down: finish once the client is quiet */
	int lingering; /* our side is shut: discard until the client's EOF */
	int refused;   /* over -c: never echoed, not counted */
	char peer[64]; /* "addr:port", for -v */
};

/* An accepted socket on its way to a worker. */
struct handoff {
	int fd;
	int refused; /* over -c: close it lingering, without an echo */
};

TAILQ_HEAD(client_list, client);

/* One loop thread: its base, its clients, and the sockets handed to it. */
struct worker {
	pthread_t thread;
	int id;
	struct event_base *base;
	struct event *wakeup_ev;       /* the main thread makes it active */
	const struct timeval *idle_tv; /* NULL: no idle timeout */

	pthread_mutex_t mutex;	  /* guards incoming and stopping */
	struct handoff *incoming; /* accepted sockets not yet picked up */
	size_t nincoming, incoming_cap;
	int stopping;

	/* Touched only by the worker's own thread. */
	struct client_list clients;
	int nclients;
	int draining;
	char buf[READ_SIZE];
};

static struct worker *workers;
static int nworkers;
static int verbose;
static int idle_seconds;
static int max_clients;
static atomic_int nclients; /* live connections, all workers together */
static atomic_int exit_status;
static struct event_base *main_base;
static struct evconnlistener *listener;
static struct event *retry_ev;

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
 * Something the server needs failed at run time: log it and stop the way a
 * signal does, so every connection is still drained, but exit 1.
 */
static void
server_fail(const char *what)
{
	logx("%s failed; stopping", what);
	atomic_store(&exit_status, 1);
	if (event_base_loopexit(main_base, NULL) == -1)
		errx(1, "event_base_loopexit failed");
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

/* Close a client's connection and free it; stop a draining loop when empty. */
static void
client_close(struct client *c)
{
	struct worker *w = c->worker;

	if (verbose)
		logx("worker %d: %s: closed", w->id, c->peer);
	TAILQ_REMOVE(&w->clients, c, entry);
	event_free(c->read_ev);
	event_free(c->write_ev);
	if (c->output != NULL)
		evbuffer_free(c->output);
	close(c->fd);
	if (!c->refused)
		atomic_fetch_sub(&nclients, 1);
	free(c);
	if (--w->nclients == 0 && w->draining)
		event_base_loopbreak(w->base);
}

/*
 * How long the client may stay silent: the linger bound, the drain's quiet
 * time, or the idle timeout.
 */
static const struct timeval *
client_read_timeout(struct client *c)
{
	static const struct timeval linger = {LINGER_SECONDS, 0};
	static const struct timeval quiet = {0, DRAIN_QUIET_MS * 1000};

	if (c->lingering)
		return &linger;
	return c->draining ? &quiet : c->worker->idle_tv;
}

/*
 * Start (or restart, with a new timeout) reading from the client.  Returns
 * -1 if it could not, and closed the client: it would never be read again.
 */
static int
client_read(struct client *c)
{
	if (event_add(c->read_ev, client_read_timeout(c)) == -1) {
		logx("worker %d: %s: event_add failed", c->worker->id, c->peer);
		client_close(c);
		return -1;
	}
	c->reading = 1;
	return 0;
}

/*
 * Close lingering: we will send nothing more, so say so with a FIN, and read
 * and discard until the client's own EOF or LINGER_SECONDS.  Closing at once
 * instead would make the kernel answer anything the client still sends with
 * a reset, and a reset throws away the echo still on its way to the client.
 */
static void
client_linger(struct client *c)
{
	c->lingering = 1;
	event_del(c->write_ev);
	if (shutdown(c->fd, SHUT_WR) == -1) {
		client_close(c);
		return;
	}
	client_read(c);
}

/*
 * Read no more and close once the echo is sent: at once if the client sent
 * its EOF, else lingering, since it may still send.
 */
static void
client_finish(struct client *c, int eof)
{
	c->eof = eof;
	if (c->output == NULL || evbuffer_get_length(c->output) == 0) {
		if (eof)
			client_close(c);
		else
			client_linger(c);
		return;
	}
	c->closing = 1;
	event_del(c->read_ev);
	c->reading = 0;
}

/*
 * The hot path: send what just arrived straight back with write(2), and keep
 * in an evbuffer only what the socket would not take.  Once anything waits
 * there, later data queues behind it so the echo stays in order.  Returns -1
 * if the client was closed.
 */
static int
client_echo(struct client *c, const char *data, size_t len)
{
	ssize_t n = 0;

	if (c->output == NULL || evbuffer_get_length(c->output) == 0) {
		if ((n = write(c->fd, data, len)) == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR) {
				if (verbose)
					logx("worker %d: %s: %s", c->worker->id,
					     c->peer, strerror(errno));
				client_close(c);
				return -1;
			}
			n = 0;
		}
		if ((size_t)n == len)
			return 0;
	}
	if (c->output == NULL && (c->output = evbuffer_new()) == NULL) {
		logx("evbuffer_new failed");
		client_close(c);
		return -1;
	}
	if (evbuffer_add(c->output, data + n, len - (size_t)n) == -1) {
		logx("evbuffer_add failed");
		client_close(c);
		return -1;
	}
	if (event_add(c->write_ev, c->worker->idle_tv) == -1) {
		logx("worker %d: %s: event_add failed", c->worker->id, c->peer);
		client_close(c);
		return -1;
	}
	if (evbuffer_get_length(c->output) >= HIGH_WATER) {
		/* The client is not reading: stop reading until it does. */
		event_del(c->read_ev);
		c->reading = 0;
	}
	return 0;
}

/* Data, EOF or silence from the client. */
static void
echo_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	struct worker *w = c->worker;
	ssize_t n;

	if (what & EV_TIMEOUT) {
		if (c->lingering) {
			/* No EOF within the bound: give up on it. */
			client_close(c);
			return;
		}
		/* Idle for -i seconds, or quiet while shutting down. */
		if (verbose && !c->draining)
			logx("worker %d: %s: idle", w->id, c->peer);
		client_finish(c, 0);
		return;
	}
	if ((n = read(fd, w->buf, sizeof(w->buf))) == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		if (verbose)
			logx("worker %d: %s: %s", w->id, c->peer,
			     strerror(errno));
		client_close(c);
		return;
	}
	if (n == 0) {
		/*
		 * A half-close is not a hang-up: the client may still be
		 * reading.  Echo the rest and close only when it is sent.
		 */
		if (c->lingering)
			client_close(c);
		else
			client_finish(c, 1);
		return;
	}
	if (c->lingering)
		return; /* discarded: we have said we send nothing more */
	client_echo(c, w->buf, (size_t)n);
}

/* The socket takes data again: send what waits, then resume or close. */
static void
echo_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	size_t left;

	if (what & EV_TIMEOUT) {
		/*
		 * Nothing of the echo was read for -i seconds.  A reset says
		 * so; a FIN after a cut echo would look like a clean end.
		 */
		if (verbose)
			logx("worker %d: %s: not reading", c->worker->id,
			     c->peer);
		client_close(c);
		return;
	}
	if (evbuffer_write(c->output, fd) == -1 && errno != EAGAIN &&
	    errno != EWOULDBLOCK && errno != EINTR) {
		if (verbose)
			logx("worker %d: %s: %s", c->worker->id, c->peer,
			     strerror(errno));
		client_close(c);
		return;
	}
	if ((left = evbuffer_get_length(c->output)) == 0) {
		event_del(c->write_ev);
		if (c->closing) {
			c->closing = 0;
			if (c->eof)
				client_close(c);
			else
				client_linger(c);
			return;
		}
	}
	if (!c->reading && !c->closing && left <= LOW_WATER)
		client_read(c);
}

/* Shutting down, on the client's own thread: finish once it is quiet. */
static void
client_drain(struct client *c)
{
	c->draining = 1;
	if (c->reading && !c->lingering)
		client_read(c); /* the quiet period replaces the idle timeout */
}

/*
 * On the worker's thread: create the connection for a handed-over socket.
 * One over the -c limit is closed lingering at once, without an echo.
 */
static void
client_new(struct worker *w, int fd, int refused)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct client *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		logx("calloc: %s", strerror(errno));
		goto fail;
	}
	c->worker = w;
	c->fd = fd;
	c->read_ev =
		event_new(w->base, fd, EV_READ | EV_PERSIST, echo_read_cb, c);
	c->write_ev =
		event_new(w->base, fd, EV_WRITE | EV_PERSIST, echo_write_cb, c);
	if (c->read_ev == NULL || c->write_ev == NULL) {
		logx("event_new failed");
		if (c->read_ev != NULL)
			event_free(c->read_ev);
		if (c->write_ev != NULL)
			event_free(c->write_ev);
		free(c);
		goto fail;
	}
	if (verbose && getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		format_addr((struct sockaddr *)&ss, len, c->peer,
			    sizeof(c->peer));
	TAILQ_INSERT_TAIL(&w->clients, c, entry);
	w->nclients++;
	c->refused = refused;
	if (verbose)
		logx("worker %d: %s: %s", w->id, c->peer,
		     refused ? "over the limit" : "connected");
	if (refused) {
		client_linger(c);
		return;
	}
	if (w->draining)
		c->draining = 1;
	client_read(c);
	return;
fail:
	close(fd);
	if (!refused)
		atomic_fetch_sub(&nclients, 1);
}

/*
 * Shutting down, on the worker's thread: drain every client and stop the loop
 * at the deadline; if the loop cannot be bounded, close everything now.
 */
static void
worker_drain(struct worker *w)
{
	struct timeval left = {0, 0};
	struct timespec now;
	struct client *c, *next;
	long ns;

	w->draining = 1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (drain_deadline.tv_sec - now.tv_sec) * 1000000000L +
	     (drain_deadline.tv_nsec - now.tv_nsec);
	if (ns > 0) {
		left.tv_sec = ns / 1000000000L;
		left.tv_usec = ns % 1000000000L / 1000;
	}
	if (event_base_loopexit(w->base, &left) == -1) {
		logx("worker %d: event_base_loopexit failed", w->id);
		event_base_loopbreak(w->base);
		return; /* worker_main() closes every client */
	}
	for (c = TAILQ_FIRST(&w->clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		client_drain(c);
	}
	if (w->nclients == 0)
		event_base_loopbreak(w->base);
}

/* The main thread woke us: pick up new sockets, or start shutting down. */
static void
wakeup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct handoff *incoming;
	int stopping;
	size_t i, n;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->mutex);
	incoming = w->incoming;
	n = w->nincoming;
	w->incoming = NULL;
	w->nincoming = w->incoming_cap = 0;
	stopping = w->stopping;
	pthread_mutex_unlock(&w->mutex);

	for (i = 0; i < n; i++)
		client_new(w, incoming[i].fd, incoming[i].refused);
	free(incoming);
	if (stopping && !w->draining)
		worker_drain(w);
}

/*
 * The body of a worker thread: its loop, then whatever the deadline cut
 * short.  A loop that fails stops the whole server: the main thread would
 * otherwise go on handing it sockets that no one serves.
 */
static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	if (event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY) == -1)
		server_fail("a worker's event_base_loop");
	while (!TAILQ_EMPTY(&w->clients))
		client_close(TAILQ_FIRST(&w->clients));
	return NULL;
}

/* On the main thread: queue a socket for worker w and wake its loop. */
static int
worker_hand_off(struct worker *w, int fd, int refused)
{
	struct handoff *grown;
	size_t cap;

	pthread_mutex_lock(&w->mutex);
	if (w->nincoming == w->incoming_cap) {
		cap = w->incoming_cap ? 2 * w->incoming_cap : 16;
		if ((grown = realloc(w->incoming, cap * sizeof(*grown))) ==
		    NULL) {
			pthread_mutex_unlock(&w->mutex);
			return -1;
		}
		w->incoming = grown;
		w->incoming_cap = cap;
	}
	w->incoming[w->nincoming].fd = fd;
	w->incoming[w->nincoming++].refused = refused;
	pthread_mutex_unlock(&w->mutex);
	event_active(w->wakeup_ev, EV_READ, 0);
	return 0;
}

/* Create worker w's base and wakeup event, and start its thread. */
static void
worker_start(struct worker *w, int id)
{
	struct timeval idle = {idle_seconds, 0};
	int rc;

	w->id = id;
	TAILQ_INIT(&w->clients);
	if ((rc = pthread_mutex_init(&w->mutex, NULL)) != 0)
		errx(1, "pthread_mutex_init: %s", strerror(rc));
	if ((w->base = event_base_new()) == NULL)
		errx(1, "event_base_new failed");
	/* Never added, only made active: a wakeup with nothing to watch. */
	if ((w->wakeup_ev = event_new(w->base, -1, 0, wakeup_cb, w)) == NULL)
		errx(1, "event_new failed");
	/* Every client has the same timeout: libevent keeps them in a list. */
	if (idle_seconds > 0 && (w->idle_tv = event_base_init_common_timeout(
					 w->base, &idle)) == NULL)
		errx(1, "event_base_init_common_timeout failed");
	if ((rc = pthread_create(&w->thread, NULL, worker_main, w)) != 0)
		errx(1, "pthread_create: %s", strerror(rc));
}

/* After the worker has been joined: free what it used. */
static void
worker_free(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->nincoming; i++)
		close(w->incoming[i].fd);
	free(w->incoming);
	event_free(w->wakeup_ev);
	event_base_free(w->base);
	pthread_mutex_destroy(&w->mutex);
}

/* A client connected: hand it to the next worker, round robin. */
static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
	  int len, void *arg)
{
	static unsigned int next;
	int refused;

	(void)l;
	(void)sa;
	(void)len;
	(void)arg;
	/* Over the limit: a worker closes it lingering, unechoed. */
	refused = max_clients > 0 && atomic_load(&nclients) >= max_clients;
	if (!refused)
		atomic_fetch_add(&nclients, 1);
	if (worker_hand_off(&workers[next++ % nworkers], fd, refused) == -1) {
		logx("cannot queue a connection");
		close(fd);
		if (!refused)
			atomic_fetch_sub(&nclients, 1);
	}
}

/*
 * accept() failed.  Out of descriptors, the listening socket stays readable
 * and the loop would spin: stop listening, and try again after a pause.
 */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct timeval retry = {0, ACCEPT_RETRY_MS * 1000};
	int e = EVUTIL_SOCKET_ERROR();

	(void)arg;
	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) {
		logx("accept: %s", strerror(e));
		return;
	}
	logx("accept (pausing for %d ms): %s", ACCEPT_RETRY_MS, strerror(e));
	if (evconnlistener_disable(l) == -1 ||
	    event_add(retry_ev, &retry) == -1)
		server_fail("pausing the listener");
}

/* The pause after running out of descriptors is over: accept again. */
static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (evconnlistener_enable(listener) == -1)
		server_fail("resuming the listener");
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

/* Parse a number in min..max; return -1 if it is not one. */
static int
parse_number(const char *s, long min, long max)
{
	char *end;
	long n;

	/* Digits only: strtol() would also take " 7", "+7" and "-0". */
	if (*s == '\0' || s[strspn(s, "0123456789")] != '\0')
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (*end != '\0' || errno != 0 || n < min || n > max)
		return -1;
	return (int)n;
}

/* Open a non-blocking listening socket on ai and print where it listens. */
static int
listen_on(const struct addrinfo *ai)
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
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		format_addr(ai->ai_addr, ai->ai_addrlen, where, sizeof(where));
		err(1, "cannot listen on %s", where);
	}
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
		"usage: echoserver [-hv] [-a addr] [-c maxconn] [-i seconds]\n"
		"                  [-p port] [-t threads]\n"
		"  -a addr     address to listen on (default %s; IPv6 works)\n"
		"  -c maxconn  close connections over this many at once\n"
		"              (default 0: no limit)\n"
		"  -i seconds  close a client idle this long\n"
		"              (default 0: never)\n"
		"  -p port     port to listen on, 0 for a free one\n"
		"              (default %s)\n"
		"  -t threads  worker threads, 1..1024 (default: the online\n"
		"              CPUs, %ld)\n"
		"  -v          log connections and disconnections to stderr\n"
		"  -h          show this help\n",
		DEFAULT_ADDR, DEFAULT_PORT, sysconf(_SC_NPROCESSORS_ONLN));
}

/* A usage error: say what was wrong, then the usage, and exit 2. */
static void
usage_error(const char *what, const char *arg)
{
	warnx("%s: %s", what, arg);
	usage();
	exit(2);
}

/* Parse the options into the globals; return the address to listen on. */
static struct addrinfo *
parse_options(int argc, char *argv[])
{
	struct addrinfo hints, *ai;
	const char *addr = DEFAULT_ADDR, *port = DEFAULT_PORT;
	int ch, rc;

	nworkers = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (nworkers < 1)
		nworkers = 1;
	while ((ch = getopt(argc, argv, "a:c:hi:p:t:v")) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 'c':
			if ((max_clients = parse_number(optarg, 0, 1 << 30)) ==
			    -1)
				usage_error("invalid connection limit", optarg);
			break;
		case 'h':
			usage();
			exit(0);
		case 'i':
			if ((idle_seconds = parse_number(optarg, 0, 86400)) ==
			    -1)
				usage_error("invalid idle timeout", optarg);
			break;
		case 'p':
			port = optarg;
			if (parse_number(port, 0, 65535) == -1)
				usage_error("invalid port", port);
			break;
		case 't':
			if ((nworkers = parse_number(optarg, 1, 1024)) == -1)
				usage_error("invalid thread count", optarg);
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
			exit(2);
		}
	}
	if (optind != argc)
		usage_error("unexpected argument", argv[optind]);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if ((rc = getaddrinfo(addr, port, &hints, &ai)) != 0) {
		warnx("invalid address %s: %s", addr, gai_strerror(rc));
		usage();
		exit(2);
	}
	return ai;
}

/* On the main thread: tell worker w to drain and stop, and wake it. */
static void
worker_stop(struct worker *w)
{
	pthread_mutex_lock(&w->mutex);
	w->stopping = 1;
	pthread_mutex_unlock(&w->mutex);
	event_active(w->wakeup_ev, EV_READ, 0);
}

/* Parse the options, start the workers, accept until a signal, clean up. */
int
main(int argc, char *argv[])
{
	struct addrinfo *ai = parse_options(argc, argv);
	struct event *sigint_ev, *sigterm_ev;
	int i, rc;

	/* A client that vanishes must cost a write error, not the process. */
	signal(SIGPIPE, SIG_IGN);

	/*
	 * Before any base exists: the main thread wakes the workers' bases,
	 * and that needs locks.
	 */
	if (evthread_use_pthreads() == -1)
		errx(1, "evthread_use_pthreads failed");
	if ((main_base = event_base_new()) == NULL)
		errx(1, "event_base_new failed");
	if ((workers = calloc((size_t)nworkers, sizeof(*workers))) == NULL)
		err(1, "calloc");
	for (i = 0; i < nworkers; i++)
		worker_start(&workers[i], i);

	/* Signals first: once the ready line is out, SIGINT must be caught. */
	sigint_ev = evsignal_new(main_base, SIGINT, signal_cb, main_base);
	sigterm_ev = evsignal_new(main_base, SIGTERM, signal_cb, main_base);
	if (sigint_ev == NULL || sigterm_ev == NULL ||
	    event_add(sigint_ev, NULL) == -1 ||
	    event_add(sigterm_ev, NULL) == -1)
		errx(1, "cannot watch for signals");
	/* Backlog 0: listen_on() has called listen() with a large one. */
	listener = evconnlistener_new(main_base, accept_cb, NULL,
				      LEV_OPT_CLOSE_ON_FREE, 0, listen_on(ai));
	freeaddrinfo(ai);
	retry_ev = evtimer_new(main_base, retry_cb, NULL);
	if (listener == NULL || retry_ev == NULL)
		errx(1, "cannot listen");
	evconnlistener_set_error_cb(listener, accept_error_cb);

	if (event_base_dispatch(main_base) == -1)
		errx(1, "event_base_dispatch failed");

	/* Accept no one new, then ask every worker to drain by one deadline. */
	event_free(retry_ev);
	evconnlistener_free(listener);
	clock_gettime(CLOCK_MONOTONIC, &drain_deadline);
	drain_deadline.tv_sec += DRAIN_SECONDS;
	for (i = 0; i < nworkers; i++)
		worker_stop(&workers[i]);
	for (i = 0; i < nworkers; i++) {
		if ((rc = pthread_join(workers[i].thread, NULL)) != 0)
			errx(1, "pthread_join: %s", strerror(rc));
		worker_free(&workers[i]);
	}
	free(workers);
	event_free(sigterm_ev);
	event_free(sigint_ev);
	event_base_free(main_base);
	libevent_global_shutdown();
	return atomic_load(&exit_status);
}
