/*
 * epoll_echo: a bare epoll echo server, the yardstick `make bench` uses.
 *
 * It is what libevent does for the tutorial's servers, written out by hand:
 * T threads each run a level-triggered epoll loop of their own, and thread 0
 * also accepts clients and deals them to the loops round robin, as the final
 * chapter does.  Data is read into a buffer on the stack and written straight
 * back; only what the socket does not take is kept, and the connection is
 * not read again until that is sent.  A client's EOF closes the connection
 * once its echo has gone out, so a half-close loses nothing.  SIGINT or
 * SIGTERM ends the process with status 0; the kernel closes the sockets.
 */

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_ADDR   "127.0.0.1"
#define DEFAULT_PORT   "5555"
#define LISTEN_BACKLOG 4096
#define MAX_THREADS    256
/*
 * One read's size.  Measured in interleaved bulk rounds on a 2-core machine
 * (512 MiB, 5 rounds each, CPU per GB): 64 KiB 0.41 s, 128 KiB 0.39 s,
 * 256 KiB 0.37 s, 512 KiB 0.35 s, 1 MiB 0.38 s; the rate is the client's
 * and moved within noise, and reading again until a short read bought
 * nothing.  256 KiB is on the flat part of the curve and fits any stack.
 */
#define CHUNK	   (256 * 1024)
#define MAX_EVENTS 256

/* One client: its socket, its loop, and the echo its socket did not take. */
struct conn {
	int fd;
	int epfd;
	char *pending;
	size_t off, len;
};

static int listen_fd;
static int loops[MAX_THREADS]; /* each thread's epoll descriptor */
static int nloops = 1;

/* Make c's loop wait for events on it: reading, or room to write. */
static void
watch(struct conn *c, int op, unsigned events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(c->epfd, op, c->fd, &ev) == -1)
		err(1, "epoll_ctl");
}

/* Close a client and free it; closing also takes it out of its loop. */
static void
conn_close(struct conn *c)
{
	close(c->fd);
	free(c->pending);
	free(c);
}

/* Send buf as far as the socket takes it; return how much it took, or -1. */
static ssize_t
send_some(int fd, const char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		if ((n = write(fd, buf + done, len - done)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Echo what the client sent; return 0 when the connection should close. */
static int
conn_read(struct conn *c)
{
	char buf[CHUNK];
	ssize_t n, sent;

	if ((n = read(c->fd, buf, sizeof(buf))) == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		       errno == EINTR;
	/* EOF: everything read so far has gone out (or is in the kernel). */
	if (n == 0)
		return 0;
	if ((sent = send_some(c->fd, buf, (size_t)n)) == -1)
		return 0;
	if (sent < n) {
		/* Backpressure: keep the rest, stop reading until it is sent.
		 */
		c->len = (size_t)(n - sent);
		c->off = 0;
		if ((c->pending = malloc(c->len)) == NULL)
			err(1, "malloc");
		memcpy(c->pending, buf + sent, c->len);
		watch(c, EPOLL_CTL_MOD, EPOLLOUT);
	}
	return 1;
}

/* The socket has room again: send what is pending, then read again. */
static int
conn_flush(struct conn *c)
{
	ssize_t sent;

	if ((sent = send_some(c->fd, c->pending + c->off, c->len - c->off)) ==
	    -1)
		return 0;
	c->off += (size_t)sent;
	if (c->off == c->len) {
		free(c->pending);
		c->pending = NULL;
		watch(c, EPOLL_CTL_MOD, EPOLLIN);
	}
	return 1;
}

/* Accept every waiting client and deal each to the next loop in turn. */
static void
accept_all(void)
{
	static unsigned next;
	struct conn *c;
	int fd;

	while ((fd = accept(listen_fd, NULL, NULL)) != -1) {
		if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1)
			err(1, "fcntl");
		if ((c = calloc(1, sizeof(*c))) == NULL)
			err(1, "calloc");
		c->fd = fd;
		c->epfd = loops[next++ % (unsigned)nloops];
		watch(c, EPOLL_CTL_ADD, EPOLLIN);
	}
	/* Out of descriptors, this spins; chapter 5 shows how not to. */
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
	    errno != ECONNABORTED && errno != EMFILE && errno != ENFILE)
		warn("accept");
}

/* One thread's loop: the listening socket (thread 0) and its clients. */
static void *
loop_run(void *arg)
{
	struct epoll_event ev[MAX_EVENTS];
	struct conn *c;
	int epfd = *(int *)arg, i, n;

	for (;;) {
		if ((n = epoll_wait(epfd, ev, MAX_EVENTS, -1)) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "epoll_wait");
		}
		for (i = 0; i < n; i++) {
			if ((c = ev[i].data.ptr) == NULL)
				accept_all();
			else if (!(c->pending ? conn_flush(c) : conn_read(c)))
				conn_close(c);
		}
	}
	return NULL;
}

/* Open the non-blocking listening socket and say where it listens. */
static void
listen_on(const char *addr, const char *port)
{
	struct addrinfo hints, *ai;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN], serv[8];
	int rc, on = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if ((rc = getaddrinfo(addr, port, &hints, &ai)) != 0)
		errx(2, "invalid address %s port %s: %s", addr, port,
		     gai_strerror(rc));
	if ((listen_fd = socket(ai->ai_family, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	if (setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)))
		err(1, "setsockopt SO_REUSEADDR");
	if (bind(listen_fd, ai->ai_addr, ai->ai_addrlen) == -1)
		err(1, "cannot listen on %s port %s", addr, port);
	if (listen(listen_fd, LISTEN_BACKLOG) == -1)
		err(1, "listen");
	if (fcntl(listen_fd, F_SETFL, O_NONBLOCK) == -1)
		err(1, "fcntl");
	if (getsockname(listen_fd, (struct sockaddr *)&ss, &len) == -1 ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		errx(1, "cannot tell where the socket listens");
	printf(ai->ai_family == AF_INET6 ? "listening on [%s]:%s\n"
					 : "listening on %s:%s\n",
	       host, serv);
	fflush(stdout);
	freeaddrinfo(ai);
}

/* Print the usage, with the defaults, to stderr and exit with status. */
static _Noreturn void
usage(int status)
{
	fprintf(stderr,
		"usage: epoll_echo [-h] [-a addr] [-p port] [-t threads]\n"
		"  -a addr     address to listen on (default %s)\n"
		"  -p port     port to listen on, 0 for a free one\n"
		"              (default %s)\n"
		"  -t threads  event loops, one thread each (default 1)\n"
		"  -h          show this help\n",
		DEFAULT_ADDR, DEFAULT_PORT);
	exit(status);
}

/* Parse the options, start the loops, and wait for SIGINT or SIGTERM. */
int
main(int argc, char *argv[])
{
	const char *addr = DEFAULT_ADDR, *port = DEFAULT_PORT;
	pthread_t tid;
	sigset_t sigs;
	char *end;
	long n;
	int ch, i, rc, sig;

	while ((ch = getopt(argc, argv, "a:hp:t:")) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 'h':
			usage(0);
			break;
		case 'p':
			n = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || n < 0 ||
			    n > 65535) {
				warnx("invalid port: %s", optarg);
				usage(2);
			}
			port = optarg;
			break;
		case 't':
			n = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || n < 1 ||
			    n > MAX_THREADS) {
				warnx("invalid number of threads: %s", optarg);
				usage(2);
			}
			nloops = (int)n;
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc) {
		warnx("unexpected argument: %s", argv[optind]);
		usage(2);
	}

	signal(SIGPIPE, SIG_IGN);
	/* Only main() takes SIGINT and SIGTERM: the loops block them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	if ((rc = pthread_sigmask(SIG_BLOCK, &sigs, NULL)) != 0)
		errx(1, "pthread_sigmask: %s", strerror(rc));

	listen_on(addr, port);
	for (i = 0; i < nloops; i++)
		if ((loops[i] = epoll_create1(0)) == -1)
			err(1, "epoll_create1");
	if (epoll_ctl(loops[0], EPOLL_CTL_ADD, listen_fd,
		      &(struct epoll_event){.events = EPOLLIN}) == -1)
		err(1, "epoll_ctl");
	for (i = 0; i < nloops; i++)
		if ((rc = pthread_create(&tid, NULL, loop_run, &loops[i])) != 0)
			errx(1, "pthread_create: %s", strerror(rc));
	if ((rc = sigwait(&sigs, &sig)) != 0)
		errx(1, "sigwait: %s", strerror(rc));
	return 0;
}
