/*
 * echoserver: the classic single-threaded buffered echo server, done right.
 *
 * One event loop accepts connections and sends every byte each client
 * writes straight back to it.  The names, the shape and the libevent 1.4-era
 * API (<event.h>, event_init(), event_set(), bufferevent_new() and the
 * bufferevent's input and output fields) are those of the echoserver example
 * the 2012 article started from; chapter 4 moves to the libevent 2 API.
 * SIGINT or SIGTERM stops the loop; everything is freed and it exits 0.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event.h>

#define SERVER_ADDR    "127.0.0.1"
#define SERVER_PORT    "5555"
#define LISTEN_BACKLOG 4096

/*
 * Backpressure: stop reading from a client once HIGH_WATER bytes of its echo
 * wait to be sent, and start again when fewer than LOW_WATER are left.
 */
#define HIGH_WATER (256 * 1024)
#define LOW_WATER  (64 * 1024)

/* One connected client. */
struct client {
	TAILQ_ENTRY(client) entry;
	int fd;
	struct bufferevent *buf_ev;
	int closing;   /* the client sent EOF: free once echo drains */
	char peer[64]; /* "addr:port", for -v */
};

TAILQ_HEAD(client_list, client);

/* The clients still connected, so that main() can free them at exit. */
static struct client_list clients = TAILQ_HEAD_INITIALIZER(clients);
static struct addrinfo *listen_ai;
static int verbose;

/* Make a socket non-blocking: no call on it may make the loop wait. */
static int
setnonblock(int fd)
{
	int flags;

	if ((flags = fcntl(fd, F_GETFL)) == -1)
		return -1;
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Close a client's connection and free everything that belongs to it. */
static void
closeAndFreeClient(struct client *client)
{
	if (verbose)
		warnx("%s: closed", client->peer);
	TAILQ_REMOVE(&clients, client, entry);
	bufferevent_free(client->buf_ev);
	close(client->fd);
	free(client);
}

/* Echo what arrived; stop reading if the client does not read its echo. */
static void
buffered_on_read(struct bufferevent *bev, void *arg)
{
	/* Moves the data to the output buffer without copying it. */
	if (bufferevent_write_buffer(bev, bev->input) == -1) {
		warnx("cannot queue the echo");
		closeAndFreeClient(arg);
		return;
	}
	if (EVBUFFER_LENGTH(bev->output) >= HIGH_WATER)
		bufferevent_disable(bev, EV_READ);
}

/* The echo drained below the write watermark: resume reading, or close. */
static void
buffered_on_write(struct bufferevent *bev, void *arg)
{
	struct client *client = arg;

	if (client->closing) {
		/* The watermark is 0 now, so everything has been sent. */
		closeAndFreeClient(client);
		return;
	}
	if ((bev->enabled & EV_READ) == 0)
		bufferevent_enable(bev, EV_READ);
}

/* EOF, an error or a timeout: flush what the client is owed, then close. */
static void
buffered_on_error(struct bufferevent *bev, short what, void *arg)
{
	struct client *client = arg;

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
		warnx("%s: %s", client->peer, strerror(errno));
	closeAndFreeClient(client);
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

/* A client is waiting on the listening socket: accept it and start echoing. */
static void
on_accept(int fd, short ev, void *arg)
{
	struct sockaddr_storage client_addr;
	socklen_t client_len = sizeof(client_addr);
	struct client *client;
	int client_fd;

	(void)ev;
	(void)arg;
	client_fd = accept(fd, (struct sockaddr *)&client_addr, &client_len);
	if (client_fd == -1) {
		/*
		 * FLAW (fixed in step 5): out of descriptors (EMFILE) the
		 * client stays in the backlog, the socket stays readable, and
		 * the loop calls on_accept() again at once, forever.
		 */
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			warn("accept");
		return;
	}
	if (setnonblock(client_fd) == -1) {
		warn("setnonblock");
		close(client_fd);
		return;
	}
	if ((client = calloc(1, sizeof(*client))) == NULL) {
		warn("calloc");
		close(client_fd);
		return;
	}
	client->fd = client_fd;
	format_addr((struct sockaddr *)&client_addr, client_len, client->peer,
		    sizeof(client->peer));
	/*
	 * bufferevent_new() puts the bufferevent on the default base, the one
	 * event_init() made.  Its arguments: the socket, what to call when
	 * data arrived, when the output drained to the write watermark, and
	 * on EOF or an error, and the pointer each of those receives.
	 */
	client->buf_ev =
		bufferevent_new(client_fd, buffered_on_read, buffered_on_write,
				buffered_on_error, client);
	if (client->buf_ev == NULL) {
		warnx("bufferevent_new failed");
		close(client_fd);
		free(client);
		return;
	}
	bufferevent_setwatermark(client->buf_ev, EV_WRITE, LOW_WATER, 0);
	bufferevent_enable(client->buf_ev, EV_READ);
	TAILQ_INSERT_TAIL(&clients, client, entry);
	if (verbose)
		warnx("%s: connected", client->peer);
}

/* SIGINT or SIGTERM: leave the event loop so that main() can clean up. */
static void
signal_cb(int sig, short ev, void *arg)
{
	(void)ev;
	(void)arg;
	if (verbose)
		warnx("caught signal %d, exiting", sig);
	event_loopexit(NULL);
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
		"usage: echoserver [-hv] [-a addr] [-p port]\n"
		"  -a addr  address to listen on (default %s; IPv6 works)\n"
		"  -p port  port to listen on, 0 for a free one (default %s)\n"
		"  -v       log connections and disconnections to stderr\n"
		"  -h       show this help\n",
		SERVER_ADDR, SERVER_PORT);
}

/* Parse the options and resolve the address; exit 2 on a usage error. */
static void
parse_options(int argc, char *argv[], const char **addr, const char **port)
{
	struct addrinfo hints;
	int ch, rc;

	while ((ch = getopt(argc, argv, "a:hp:v")) != -1) {
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

/* Listen, run the loop until a signal, then free everything. */
int
main(int argc, char *argv[])
{
	struct event_base *base;
	struct event ev_accept, ev_sigint, ev_sigterm;
	struct client *client;
	const char *addr = SERVER_ADDR, *port = SERVER_PORT;
	int listen_fd;

	parse_options(argc, argv, &addr, &port);
	/* A client that vanishes must cost a write error, not the process. */
	signal(SIGPIPE, SIG_IGN);

	/*
	 * event_init() makes the default base: event_set() and
	 * bufferevent_new() put their events on it.
	 */
	if ((base = event_init()) == NULL)
		errx(1, "event_init failed");
	/* Signals first: once the ready line is out, SIGINT must be caught. */
	event_set(&ev_sigint, SIGINT, EV_SIGNAL | EV_PERSIST, signal_cb, NULL);
	event_add(&ev_sigint, NULL);
	event_set(&ev_sigterm, SIGTERM, EV_SIGNAL | EV_PERSIST, signal_cb,
		  NULL);
	event_add(&ev_sigterm, NULL);
	listen_fd = listen_on(listen_ai, addr, port);
	freeaddrinfo(listen_ai);
	event_set(&ev_accept, listen_fd, EV_READ | EV_PERSIST, on_accept, NULL);
	event_add(&ev_accept, NULL);
	print_listening(listen_fd);

	if (event_dispatch() == -1)
		errx(1, "event_dispatch failed");

	while ((client = TAILQ_FIRST(&clients)) != NULL)
		closeAndFreeClient(client);
	event_del(&ev_sigterm);
	event_del(&ev_sigint);
	event_del(&ev_accept);
	close(listen_fd);
	event_base_free(base);
	libevent_global_shutdown();
	return 0;
}
