/*
 * echoserver: the 2012 article's multi-threaded echo server, rebuilt.
 *
 * The main thread's event loop accepts connections.  Each connection gets an
 * event base of its own, and a job on the work queue runs that base's loop
 * on a worker thread for as long as the connection lives.  The names and the
 * structure are the original's, with its readers' fixes and ours, on
 * libevent 2's public API; the flaws left are marked FLAW.  SIGINT or
 * SIGTERM reaches sighandler() as an event and stops the accept loop; every
 * connection echoes what it owes and closes lingering on its own thread, all
 * by one deadline; the workers are joined and runServer() returns 0.
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

#define SERVER_ADDR    "127.0.0.1"
#define SERVER_PORT    "5555"
#define LISTEN_BACKLOG 4096
#define NUM_THREADS    8 /* if the number of online CPUs is unknown */

/* A client that sends nothing, or reads nothing, for this long is dropped. */
#define SOCKET_READ_TIMEOUT_SECONDS  10
#define SOCKET_WRITE_TIMEOUT_SECONDS 10

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

/* One connected client, with the event base that only its worker runs. */
typedef struct client {
	int fd;
	struct event_base *evbase;
	struct bufferevent *buf_ev;
	struct evbuffer *output_buffer;
	int closing;   /* reading no more: finish once the echo is sent */
	int eof;       /* the client sent EOF: nothing more will come */
	int draining;  /* shutting down: finish once the client is quiet */
	int lingering; /* our side is shut: discard until the client's EOF */
	char peer[64]; /* "addr:port", for -v */
	TAILQ_ENTRY(client) entry;
} client_t;

/* The accept loop's base, and the queue the connections' jobs go to. */
static struct event_base *evbase_accept;
static workqueue_t workqueue;
static struct addrinfo *listen_ai;
static const char *listen_addr = SERVER_ADDR, *listen_port = SERVER_PORT;
static int numThreads;
static int verbose;

/*
 * Every live client, so that the main thread can stop them all.  A client's
 * job takes it off the list before freeing its base: while the main thread
 * holds clients_mutex, every base on the list is valid.
 */
static TAILQ_HEAD(, client) clients = TAILQ_HEAD_INITIALIZER(clients);
static pthread_mutex_t clients_mutex = PTHREAD_MUTEX_INITIALIZER;

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

/* Make a socket non-blocking: no call on it may make the loop wait. */
static int
setnonblock(int fd)
{
	int flags;

	if ((flags = fcntl(fd, F_GETFL)) == -1)
		return -1;
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Bytes read from the client whose echo has not gone out yet. */
static size_t
echo_owed(client_t *client)
{
	size_t n = 0;

	if (client->output_buffer != NULL)
		n += evbuffer_get_length(client->output_buffer);
	if (client->buf_ev != NULL)
		n += evbuffer_get_length(
			     bufferevent_get_input(client->buf_ev)) +
		     evbuffer_get_length(
			     bufferevent_get_output(client->buf_ev));
	return n;
}

/*
 * Close a client's connection.  With its bufferevent disabled the client's
 * base has no events left, so the worker's event_base_dispatch() returns;
 * the loop is told to stop too, since the drain's deadline is a timer that
 * would keep it running.  (Should that fail, the deadline still ends it.)
 * A connection cut with echo still owed ends with a reset, not a FIN: a FIN
 * would tell the client that it has had all its echo.
 */
static void
closeClient(client_t *client)
{
	struct linger reset = {1, 0};

	if (client->fd < 0)
		return;
	if (verbose)
		logx("%s: closed", client->peer);
	if (client->buf_ev != NULL)
		bufferevent_disable(client->buf_ev, EV_READ | EV_WRITE);
	/* Should it fail, close() sends a FIN: logged, nothing more to do. */
	if (echo_owed(client) > 0 &&
	    setsockopt(client->fd, SOL_SOCKET, SO_LINGER, &reset,
		       sizeof(reset)) == -1)
		logx("%s: setsockopt SO_LINGER: %s", client->peer,
		     strerror(errno));
	close(client->fd);
	client->fd = -1;
	if (client->evbase != NULL &&
	    event_base_loopexit(client->evbase, NULL) == -1)
		logx("%s: event_base_loopexit failed", client->peer);
}

/* Lingering: throw away what the client still sends, until its EOF. */
static void
lingering_on_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *input = bufferevent_get_input(bev);

	(void)arg;
	evbuffer_drain(input, evbuffer_get_length(input));
}

static void buffered_on_error(struct bufferevent *bev, short what, void *arg);

/*
 * Close lingering: we will send nothing more, so say so with a FIN, and read
 * and discard until the client's own EOF.  Closing at once instead would make
 * the kernel answer anything the client still sends with a reset, and a
 * reset throws away the echo still on its way to the client.
 */
static void
client_linger(client_t *client)
{
	client->lingering = 1;
	bufferevent_setcb(client->buf_ev, lingering_on_read, NULL,
			  buffered_on_error, client);
	if (bufferevent_set_timeouts(client->buf_ev, NULL, NULL) == -1 ||
	    shutdown(client->fd, SHUT_WR) == -1 ||
	    bufferevent_enable(client->buf_ev, EV_READ) == -1)
		closeClient(client);
}

/*
 * Read no more and close once the echo is sent: at once if the client sent
 * its EOF, else lingering, since it may still send.
 */
static void
client_finish(client_t *client, int eof)
{
	struct bufferevent *bev = client->buf_ev;

	/* What arrived with the EOF or before the timeout is owed too. */
	if (bufferevent_write_buffer(bev, bufferevent_get_input(bev)) == -1) {
		logx("%s: cannot queue the echo", client->peer);
		closeClient(client);
		return;
	}
	client->eof = eof;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		if (eof)
			closeClient(client);
		else
			client_linger(client);
		return;
	}
	client->closing = 1;
	bufferevent_disable(bev, EV_READ);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
}

/* Close a client's connection and free everything that belongs to it. */
static void
closeAndFreeClient(client_t *client)
{
	closeClient(client);
	if (client->buf_ev != NULL)
		bufferevent_free(client->buf_ev);
	if (client->evbase != NULL)
		event_base_free(client->evbase);
	if (client->output_buffer != NULL)
		evbuffer_free(client->output_buffer);
	free(client);
}

/*
 * Data or an EOF waits on socket fd.  A loop that runs late can find a
 * read's timeout due and drop the data that came in time: libevent then
 * reports the timeout alone.  With something waiting, it was no silence.
 */
static int
input_waiting(evutil_socket_t fd)
{
	char c;

	return recv(fd, &c, 1, MSG_PEEK) != -1;
}

/* Echo what arrived; stop reading if the client does not read its echo. */
static void
buffered_on_read(struct bufferevent *bev, void *arg)
{
	client_t *client = arg;
	struct evbuffer *input = bufferevent_get_input(bev);
	char data[4096];
	int nbytes;

	/*
	 * The copy through a buffer of our own is the original's, on purpose:
	 * it shows real reads and writes where one call would move the data.
	 */
	while (evbuffer_get_length(input) > 0) {
		nbytes = evbuffer_remove(input, data, sizeof(data));
		if (nbytes == -1 ||
		    evbuffer_add(client->output_buffer, data, nbytes) == -1) {
			logx("%s: cannot copy the echo", client->peer);
			closeClient(client);
			return;
		}
	}
	if (bufferevent_write_buffer(bev, client->output_buffer) == -1) {
		logx("%s: cannot queue the echo", client->peer);
		closeClient(client);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(bev)) >= HIGH_WATER)
		bufferevent_disable(bev, EV_READ);
}

/* The echo drained below the write watermark: resume reading, or close. */
static void
buffered_on_write(struct bufferevent *bev, void *arg)
{
	client_t *client = arg;

	if (client->closing) {
		/* The watermark is 0 now, so everything has been sent. */
		client->closing = 0;
		if (client->eof)
			closeClient(client);
		else
			client_linger(client);
		return;
	}
	if ((bufferevent_get_enabled(bev) & EV_READ) == 0 &&
	    bufferevent_enable(bev, EV_READ) == -1)
		closeClient(client);
}

/*
 * EOF: flush what the client is owed, then close.  Shutting down, a quiet
 * client is finished the same way, but lingering.  An error, a lingering
 * client's EOF or a timeout closes at once.
 */
static void
buffered_on_error(struct bufferevent *bev, short what, void *arg)
{
	client_t *client = arg;

	(void)bev;
	if ((what & BEV_EVENT_EOF) && !client->lingering) {
		/*
		 * A half-close is not a hang-up: the client may still be
		 * reading.  Echo the rest and close only when it is sent.
		 */
		client_finish(client, 1);
		return;
	}
	if (client->draining && (what & BEV_EVENT_TIMEOUT) &&
	    !client->lingering) {
		/* The timeout stopped reading: read on if it was no silence. */
		if (!input_waiting(bufferevent_getfd(bev)))
			client_finish(client, 0);
		else if (bufferevent_enable(bev, EV_READ) == -1)
			closeClient(client);
		return;
	}
	if (verbose && (what & BEV_EVENT_ERROR))
		logx("%s: %s", client->peer, strerror(errno));
	else if (verbose && (what & BEV_EVENT_TIMEOUT))
		logx("%s: timed out", client->peer);
	closeClient(client);
}

/*
 * Shutdown, on the connection's own thread: go on echoing until the client
 * has been quiet for a moment, then close lingering once the echo is sent.
 * The loop stops at the deadline whatever happens, and a connection still
 * open then is closed at once.
 */
static void
client_drain_cb(evutil_socket_t fd, short ev, void *arg)
{
	client_t *client = arg;
	struct timeval quiet = {0, DRAIN_QUIET_MS * 1000};
	struct timeval left = {0, 0};
	struct timespec now;
	long ns;

	(void)fd;
	(void)ev;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (drain_deadline.tv_sec - now.tv_sec) * 1000000000L +
	     (drain_deadline.tv_nsec - now.tv_nsec);
	if (ns > 0) {
		left.tv_sec = ns / 1000000000L;
		left.tv_usec = ns % 1000000000L / 1000;
	}
	if (event_base_loopexit(client->evbase, &left) == -1) {
		/* Without the deadline the drain could last for ever. */
		logx("%s: event_base_loopexit failed", client->peer);
		closeClient(client);
		return;
	}
	if (client->fd < 0 || client->closing || client->lingering)
		return;
	client->draining = 1;
	if (bufferevent_set_timeouts(client->buf_ev, &quiet, NULL) == -1)
		closeClient(client);
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

/*
 * A worker runs this job: the client's event loop, for as long as the client
 * has events; then it frees the client and the job.
 */
static void
server_job_function(struct job *job)
{
	client_t *client = job->user_data;

	/*
	 * FLAW (fixed in step 5): F8, the worker is busy until this one client
	 * leaves: T workers serve T clients, and the next ones wait.
	 */
	if (event_base_dispatch(client->evbase) == -1)
		logx("%s: event_base_dispatch failed", client->peer);
	/* Off the list before its base goes: see clients_mutex. */
	pthread_mutex_lock(&clients_mutex);
	TAILQ_REMOVE(&clients, client, entry);
	pthread_mutex_unlock(&clients_mutex);
	closeAndFreeClient(client);
	free(job);
}

/* A client is waiting: accept it, give it a base and queue its job. */
static void
on_accept(evutil_socket_t fd, short ev, void *arg)
{
	workqueue_t *workqueue = arg;
	struct timeval read_timeout = {SOCKET_READ_TIMEOUT_SECONDS, 0};
	struct timeval write_timeout = {SOCKET_WRITE_TIMEOUT_SECONDS, 0};
	struct sockaddr_storage client_addr;
	socklen_t client_len = sizeof(client_addr);
	client_t *client;
	job_t *job;
	int client_fd;

	(void)ev;
	client_fd = accept(fd, (struct sockaddr *)&client_addr, &client_len);
	if (client_fd == -1) {
		/*
		 * FLAW (fixed in step 5): out of descriptors (EMFILE) the
		 * client stays in the backlog, the socket stays readable, and
		 * the loop calls on_accept() again at once, forever.
		 */
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			logx("accept: %s", strerror(errno));
		return;
	}
	if (setnonblock(client_fd) == -1) {
		logx("setnonblock: %s", strerror(errno));
		close(client_fd);
		return;
	}
	if ((client = calloc(1, sizeof(*client))) == NULL) {
		logx("calloc: %s", strerror(errno));
		close(client_fd);
		return;
	}
	client->fd = client_fd;
	format_addr((struct sockaddr *)&client_addr, client_len, client->peer,
		    sizeof(client->peer));
	if ((client->output_buffer = evbuffer_new()) == NULL) {
		logx("evbuffer_new failed");
		closeAndFreeClient(client);
		return;
	}
	/*
	 * FLAW (fixed in step 5): F16, a base per connection costs an epoll
	 * descriptor and a socketpair; out of descriptors, libevent does not
	 * return NULL here but exits the whole process.
	 */
	if ((client->evbase = event_base_new()) == NULL) {
		logx("event_base_new failed");
		closeAndFreeClient(client);
		return;
	}
	/* Made on the client's base: libevent 2 has no default base to move. */
	client->buf_ev = bufferevent_socket_new(client->evbase, client_fd, 0);
	if (client->buf_ev == NULL) {
		logx("bufferevent_socket_new failed");
		closeAndFreeClient(client);
		return;
	}
	bufferevent_setcb(client->buf_ev, buffered_on_read, buffered_on_write,
			  buffered_on_error, client);
	bufferevent_setwatermark(client->buf_ev, EV_WRITE, LOW_WATER, 0);
	/*
	 * FLAW (fixed in step 5): F9, a client quiet for 10 s is dropped,
	 * however well it behaves; it is also all that frees a worker from an
	 * idle client.
	 */
	if (bufferevent_set_timeouts(client->buf_ev, &read_timeout,
				     &write_timeout) == -1 ||
	    bufferevent_enable(client->buf_ev, EV_READ) == -1) {
		logx("%s: cannot watch the connection", client->peer);
		closeAndFreeClient(client);
		return;
	}
	if (verbose)
		logx("%s: connected", client->peer);

	/*
	 * From here on only the worker that runs the job touches the client:
	 * the queue's mutex hands it over.
	 */
	if ((job = malloc(sizeof(*job))) == NULL) {
		logx("malloc: %s", strerror(errno));
		closeAndFreeClient(client);
		return;
	}
	job->job_function = server_job_function;
	job->user_data = client;
	pthread_mutex_lock(&clients_mutex);
	TAILQ_INSERT_TAIL(&clients, client, entry);
	pthread_mutex_unlock(&clients_mutex);
	workqueue_add_job(workqueue, job);
}

/* Stop the accept loop; any thread may call it. */
static void
killServer(void)
{
	if (verbose)
		logx("Stopping socket listener event loop.");
	/* loopexit() allocates, so it may fail; loopbreak() cannot. */
	if (event_base_loopexit(evbase_accept, NULL) == -1 &&
	    event_base_loopbreak(evbase_accept) == -1)
		logx("Error shutting down server");
}

/*
 * SIGINT or SIGTERM: shut the server down.  libevent delivers the signal as
 * an event on the accept loop, so this is an ordinary callback, free to call
 * anything, and not a signal handler.
 */
static void
sighandler(evutil_socket_t signal, short ev, void *arg)
{
	(void)ev;
	(void)arg;
	if (verbose)
		logx("Received signal %d: %s.  Shutting down.", (int)signal,
		     strsignal((int)signal));
	killServer();
}

/* Parse a number of digits only in 0..max; return -1 if it is not one. */
static long
parse_number(const char *s, long max)
{
	long n = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (*s - '0');
		if (n > max)
			return -1;
	}
	return n;
}

/* Open the listening socket on ai; exit 1 with the reason if it fails. */
static int
listen_on(const struct addrinfo *ai, const char *addr, const char *port)
{
	int fd, reuseaddr_on = 1;

	if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) ==
	    -1)
		err(1, "socket");
	/*
	 * Before bind(), the only call it matters to: a restart may then bind
	 * while the last run's connections are still closing on this port.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuseaddr_on,
		       sizeof(reuseaddr_on)) == -1)
		err(1, "setsockopt SO_REUSEADDR");
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1)
		err(1, "cannot listen on %s port %s", addr, port);
	if (listen(fd, LISTEN_BACKLOG) == -1)
		err(1, "listen");
	if (setnonblock(fd) == -1)
		err(1, "setnonblock");
	return fd;
}

/* Print the one line a caller waits for, with the port really bound. */
static void
print_listening(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char where[128];

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		err(1, "getsockname");
	format_addr((struct sockaddr *)&ss, len, where, sizeof(where));
	printf("listening on %s\n", where);
	fflush(stdout);
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
		"  -t threads  worker threads, 1..1024 (default: the online\n"
		"              CPUs, %d)\n"
		"  -v          log connections and disconnections to stderr\n"
		"  -h          show this help\n",
		SERVER_ADDR, SERVER_PORT, numThreads);
}

/* Parse the options and resolve the address; exit 2 on a usage error. */
static void
parse_options(int argc, char *argv[], const char **addr, const char **port)
{
	struct addrinfo hints;
	int ch, rc;

	while ((ch = getopt(argc, argv, "a:hp:t:v")) != -1) {
		switch (ch) {
		case 'a':
			*addr = optarg;
			break;
		case 'h':
			usage();
			exit(0);
		case 'p':
			*port = optarg;
			if (parse_number(optarg, 65535) == -1) {
				warnx("invalid port: '%s'", optarg);
				usage();
				exit(2);
			}
			break;
		case 't':
			if ((numThreads = (int)parse_number(optarg, 1024)) <
			    1) {
				warnx("invalid thread count: '%s'", optarg);
				usage();
				exit(2);
			}
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
			exit(2);
		}
	}
	if (optind != argc) {
		warnx("unexpected argument: %s", argv[optind]);
		usage();
		exit(2);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if ((rc = getaddrinfo(*addr, *port, &hints, &listen_ai)) != 0) {
		warnx("invalid address %s: %s", *addr, gai_strerror(rc));
		usage();
		exit(2);
	}
}

/*
 * Listen, start the workers and run the accept loop until killServer() ends
 * it; then free what the main thread owns and return 0.
 */
static int
runServer(void)
{
	struct event *ev_accept, *ev_sigint, *ev_sigterm;
	struct timeval bound = {DRAIN_SECONDS, 0};
	client_t *client;
	int listen_fd;

	/* A client that vanishes must cost a write error, not the process. */
	signal(SIGPIPE, SIG_IGN);

	/*
	 * Before any base exists: killServer() stops the accept loop from
	 * whichever thread it runs in, which needs the bases' locks.
	 */
	if (evthread_use_pthreads() == -1)
		errx(1, "evthread_use_pthreads failed");
	if ((evbase_accept = event_base_new()) == NULL)
		errx(1, "event_base_new failed");
	/* Before the ready line: once it is out, SIGINT must be caught. */
	ev_sigint = evsignal_new(evbase_accept, SIGINT, sighandler, NULL);
	ev_sigterm = evsignal_new(evbase_accept, SIGTERM, sighandler, NULL);
	if (ev_sigint == NULL || ev_sigterm == NULL ||
	    event_add(ev_sigint, NULL) == -1 ||
	    event_add(ev_sigterm, NULL) == -1)
		errx(1, "cannot catch SIGINT and SIGTERM");
	listen_fd = listen_on(listen_ai, listen_addr, listen_port);
	freeaddrinfo(listen_ai);
	if (workqueue_init(&workqueue, numThreads) != 0)
		errx(1, "workqueue_init failed");
	ev_accept = event_new(evbase_accept, listen_fd, EV_READ | EV_PERSIST,
			      on_accept, &workqueue);
	if (ev_accept == NULL || event_add(ev_accept, NULL) == -1)
		errx(1, "cannot watch the listening socket");
	print_listening(listen_fd);

	if (event_base_dispatch(evbase_accept) == -1)
		errx(1, "event_base_dispatch failed");

	/*
	 * Accept no one new, then ask every connection to finish, all by one
	 * deadline.  A connection the drain cannot reach is stopped at the
	 * deadline; one that cannot be stopped would keep us here for good.
	 */
	event_free(ev_accept);
	close(listen_fd);
	clock_gettime(CLOCK_MONOTONIC, &drain_deadline);
	drain_deadline.tv_sec += DRAIN_SECONDS;
	pthread_mutex_lock(&clients_mutex);
	TAILQ_FOREACH(client, &clients, entry) {
		if (event_base_once(client->evbase, -1, EV_TIMEOUT,
				    client_drain_cb, client, NULL) == -1 &&
		    event_base_loopexit(client->evbase, &bound) == -1)
			errx(1, "%s: cannot stop the connection", client->peer);
	}
	pthread_mutex_unlock(&clients_mutex);

	/*
	 * The workers may still be inside their clients' loops: wait for
	 * every job before freeing what they use, libevent's globals last.
	 */
	if (verbose)
		logx("Stopping workers.");
	workqueue_shutdown(&workqueue);
	event_free(ev_sigterm);
	event_free(ev_sigint);
	event_base_free(evbase_accept);
	libevent_global_shutdown();
	return 0;
}

/* Parse the options, then run the server until a signal. */
int
main(int argc, char *argv[])
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	numThreads = cpus >= 1 && cpus <= 1024 ? (int)cpus : NUM_THREADS;
	parse_options(argc, argv, &listen_addr, &listen_port);
	return runServer();
}
