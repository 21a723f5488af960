/*
 * echoserver: the 2012 article's multi-threaded echo server, rebuilt.
 *
 * The main thread's event loop accepts connections.  Each connection gets an
 * event base of its own, and a job on the work queue runs that base's loop
 * on a worker thread for as long as the connection lives.  The names, the
 * structure and the flaws are the original's (each marked FLAW); the echo is
 * chapter 1's.  SIGINT or SIGTERM reaches sighandler(), which stops the
 * accept loop, and main() returns 0 with the workers still running.
 */

#include <sys/types.h>
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
#include <unistd.h>

#include <event.h>

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

/* One connected client, with the event base that only its worker runs. */
typedef struct client {
	int fd;
	struct event_base *evbase;
	struct bufferevent *buf_ev;
	struct evbuffer *output_buffer;
	int closing;   /* the client sent EOF: close once echo drains */
	char peer[64]; /* "addr:port", for -v */
} client_t;

/* The accept loop's base, and the queue the connections' jobs go to. */
static struct event_base *evbase_accept;
static workqueue_t workqueue;
static struct addrinfo *listen_ai;
static const char *listen_addr = SERVER_ADDR, *listen_port = SERVER_PORT;
static int numThreads;
static int verbose;

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

/*
 * Close a client's connection.  With its bufferevent disabled the client's
 * base has no events left, so the worker's event_base_dispatch() returns.
 */
static void
closeClient(client_t *client)
{
	if (client->fd < 0)
		return;
	if (verbose)
		logx("%s: closed", client->peer);
	if (client->buf_ev != NULL)
		bufferevent_disable(client->buf_ev, EV_READ | EV_WRITE);
	close(client->fd);
	client->fd = -1;
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

/* Echo what arrived; stop reading if the client does not read its echo. */
static void
buffered_on_read(struct bufferevent *bev, void *arg)
{
	client_t *client = arg;
	char data[4096];
	int nbytes;

	/*
	 * The copy through a buffer of our own is the original's, on purpose:
	 * it shows real reads and writes where one call would move the data.
	 *
	 * FLAW (fixed in step 4): F1, in its 2013 form.  The 2012 loop read
	 * bev->input->off, a field of struct evbuffer, which libevent 2 hides
	 * even through <event.h>: comment 1's "dereferencing pointer to
	 * incomplete type".  The author's EVBUFFER_LENGTH() cured that, but
	 * bev->input still reads a field of struct bufferevent, which only
	 * <event.h> shows: with libevent 2's event2/ headers alone it fails.
	 */
	while (EVBUFFER_LENGTH(bev->input) > 0) {
		nbytes = evbuffer_remove(bev->input, data, sizeof(data));
		evbuffer_add(client->output_buffer, data, nbytes);
	}
	if (bufferevent_write_buffer(bev, client->output_buffer) == -1) {
		logx("%s: cannot queue the echo", client->peer);
		closeClient(client);
		return;
	}
	if (EVBUFFER_LENGTH(bev->output) >= HIGH_WATER)
		bufferevent_disable(bev, EV_READ);
}

/* The echo drained below the write watermark: resume reading, or close. */
static void
buffered_on_write(struct bufferevent *bev, void *arg)
{
	client_t *client = arg;

	if (client->closing) {
		/* The watermark is 0 now, so everything has been sent. */
		closeClient(client);
		return;
	}
	if ((bev->enabled & EV_READ) == 0)
		bufferevent_enable(bev, EV_READ);
}

/* EOF, an error or a timeout: flush what the client is owed, then close. */
static void
buffered_on_error(struct bufferevent *bev, short what, void *arg)
{
	client_t *client = arg;

	if (what & EVBUFFER_EOF) {
		/*
		 * A half-close is not a hang-up: the client may still be
		 * reading.  Echo the rest and close only when it is sent.
		 */
		bufferevent_write_buffer(bev, bev->input);
		if (EVBUFFER_LENGTH(bev->output) > 0) {
			client->closing = 1;
			bufferevent_disable(bev, EV_READ);
			bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
			return;
		}
	} else if (verbose && (what & EVBUFFER_ERROR))
		logx("%s: %s", client->peer, strerror(errno));
	else if (verbose && (what & EVBUFFER_TIMEOUT))
		logx("%s: timed out", client->peer);
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
	event_base_dispatch(client->evbase);
	closeAndFreeClient(client);
	free(job);
}

/* A client is waiting: accept it, give it a base and queue its job. */
static void
on_accept(int fd, short ev, void *arg)
{
	workqueue_t *workqueue = arg;
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
	/*
	 * bufferevent_new() puts the bufferevent on the default base, the one
	 * event_init() made; bufferevent_base_set() moves it to the client's.
	 */
	client->buf_ev =
		bufferevent_new(client_fd, buffered_on_read, buffered_on_write,
				buffered_on_error, client);
	if (client->buf_ev == NULL) {
		logx("bufferevent_new failed");
		closeAndFreeClient(client);
		return;
	}
	bufferevent_base_set(client->evbase, client->buf_ev);
	/*
	 * FLAW (fixed in step 5): F9, a client quiet for 10 s is dropped,
	 * however well it behaves; it is also all that frees a worker from an
	 * idle client.
	 */
	bufferevent_settimeout(client->buf_ev, SOCKET_READ_TIMEOUT_SECONDS,
			       SOCKET_WRITE_TIMEOUT_SECONDS);
	bufferevent_setwatermark(client->buf_ev, EV_WRITE, LOW_WATER, 0);
	bufferevent_enable(client->buf_ev, EV_READ);
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
	workqueue_add_job(workqueue, job);
}

/* Stop the accept loop, then the workers; any thread may call it. */
static void
killServer(void)
{
	if (verbose)
		logx("Stopping socket listener event loop.");
	if (event_base_loopexit(evbase_accept, NULL) == -1)
		logx("Error shutting down server");
	if (verbose)
		logx("Stopping workers.");
	workqueue_shutdown(&workqueue);
}

/* SIGINT or SIGTERM, in whichever thread it lands: shut the server down. */
static void
sighandler(int signal)
{
	/*
	 * FLAW (fixed in step 4): F6, a signal handler may only call
	 * async-signal-safe functions, and none of these is: stdio,
	 * event_base_loopexit() (it allocates) and, in workqueue_shutdown(),
	 * pthread_mutex_lock().  A signal that lands while this thread holds
	 * jobs_mutex or malloc's lock deadlocks the process.
	 */
	if (verbose)
		logx("Received signal %d: %s.  Shutting down.", signal,
		     strsignal(signal));
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
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1)
		err(1, "cannot listen on %s port %s", addr, port);
	if (listen(fd, LISTEN_BACKLOG) == -1)
		err(1, "listen");
	/*
	 * FLAW (fixed in step 4): SO_REUSEADDR only matters to bind(), which
	 * has already run.  A restart while the last run's connections are
	 * still closing fails with "Address already in use".
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuseaddr_on,
		       sizeof(reuseaddr_on)) == -1)
		err(1, "setsockopt SO_REUSEADDR");
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
	struct event ev_accept;
	struct sigaction siginfo;
	int listen_fd;

	/* A client that vanishes must cost a write error, not the process. */
	signal(SIGPIPE, SIG_IGN);

	/*
	 * event_init() makes the default base: bufferevent_new() puts its
	 * events on it before bufferevent_base_set() moves them.
	 */
	if (event_init() == NULL)
		errx(1, "event_init failed");
	/* FLAW (fixed in step 4): F6, see sighandler(). */
	memset(&siginfo, 0, sizeof(siginfo));
	siginfo.sa_handler = sighandler;
	sigemptyset(&siginfo.sa_mask);
	siginfo.sa_flags = SA_RESTART;
	if (sigaction(SIGINT, &siginfo, NULL) == -1 ||
	    sigaction(SIGTERM, &siginfo, NULL) == -1)
		err(1, "sigaction");
	listen_fd = listen_on(listen_ai, listen_addr, listen_port);
	freeaddrinfo(listen_ai);
	if ((evbase_accept = event_base_new()) == NULL)
		errx(1, "event_base_new failed");
	if (workqueue_init(&workqueue, numThreads) != 0)
		errx(1, "workqueue_init failed");
	event_set(&ev_accept, listen_fd, EV_READ | EV_PERSIST, on_accept,
		  &workqueue);
	event_base_set(evbase_accept, &ev_accept);
	event_add(&ev_accept, NULL);
	print_listening(listen_fd);

	if (event_base_dispatch(evbase_accept) == -1)
		errx(1, "event_base_dispatch failed");

	/*
	 * FLAW (fixed in step 4): F7, the workers may still be inside their
	 * clients' loops: nothing stops those loops or waits for them, so
	 * returning from main() ends them mid-echo, and libevent's globals
	 * cannot be freed while they run.
	 */
	event_base_free(evbase_accept);
	close(listen_fd);
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
