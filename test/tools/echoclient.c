/*
 * echoclient: the test client the chapters' tests drive an echo server with.
 *
 * It opens one or more connections, sends pseudo-random data that it can
 * regenerate from (connection, offset), and checks that every byte comes
 * back in order.  Every wait is bounded by -T; it exits 0 when all checks
 * pass, 1 on a mismatch or lost bytes, 2 on a usage error and 3 on a timeout.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"

#define CHUNK	  65536
#define MAX_MS	  86400000     /* a day, for the -d, -S and -T options */
#define MAX_CONNS (1 << 20)    /* connections */
#define MAX_BYTES (1ULL << 40) /* bytes per connection */

/* What the connections do; see usage(). */
enum mode { STREAM, HALFCLOSE, CLIENTS, NOREAD, LATEREAD, HOLD, IDLE, RST };

/* One connection and how far it has got. */
struct conn {
	int fd;
	uint64_t seed;
	size_t total; /* bytes to send, and so to receive */
	size_t need;  /* bytes that must come back before EOF */
	size_t sent;
	size_t received;
	int shut; /* our write side is shut down */
	int eof;  /* the server closed its side */
	int done;
};

static const char *addr = "127.0.0.1";
static const char *port;
static long timeout_ms = 30000;
static long stall_ms = 500;
static long read_delay_ms;
static long late_ms = -1;
static int rcvbuf;
static int shut_early;

/* Connect to the server; the socket is non-blocking once connected. */
static int
dial(void)
{
	return dial_to(addr, port, rcvbuf);
}

/*
 * Up to n times, until the deadline or until the server refuses: connect,
 * send a byte and reset, so that the server is kept accepting and no
 * connection is left in TIME_WAIT.  Print the count once after 100
 * connections (the server is busy accepting) and at the end.
 */
static void
churn(size_t n, long deadline)
{
	struct addrinfo *ai = resolve(addr, port);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
	size_t i;
	int fd, e;

	for (i = 0; i < n && now_ms() < deadline; i++) {
		if (i == 100) {
			printf("churning: %zu connections\n", i);
			fflush(stdout);
		}
		if ((fd = socket(ai->ai_family, SOCK_STREAM, 0)) == -1)
			err(1, "socket");
		/*
		 * A server that has stopped accepting leaves connect() waiting
		 * once its backlog is full: the timeout bounds each wait.
		 */
		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ==
			    -1 ||
		    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) ==
			    -1)
			err(1, "setsockopt");
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
			/* The server has gone, or stopped accepting. */
			if ((e = errno) != ECONNREFUSED && e != EINPROGRESS &&
			    e != EAGAIN)
				err(1, "connect to %s port %s", addr, port);
			close(fd);
			if (e == ECONNREFUSED)
				break;
			continue;
		}
		if (write(fd, "x", 1) == -1 && errno != ECONNRESET &&
		    errno != EPIPE)
			err(1, "write");
		close(fd);
	}
	freeaddrinfo(ai);
	printf("churned: %zu connections\n", i);
}

/* Send what the socket takes now; return the number of bytes sent. */
static size_t
send_some(struct conn *c)
{
	unsigned char buf[CHUNK];
	size_t len, before = c->sent;
	ssize_t n;

	while (c->sent < c->total) {
		len = c->total - c->sent < CHUNK ? c->total - c->sent : CHUNK;
		payload_fill(c->seed, c->sent, buf, len);
		if ((n = write(c->fd, buf, len)) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			err(1, "write");
		}
		c->sent += (size_t)n;
		if ((size_t)n < len)
			break;
	}
	return c->sent - before;
}

/* Read what has arrived and check it; return 0 at EOF, 1 otherwise. */
static int
receive_some(struct conn *c)
{
	unsigned char buf[CHUNK], want[CHUNK];
	ssize_t n;

	for (;;) {
		if ((n = read(c->fd, buf, sizeof(buf))) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			err(1, "read after %zu of %zu bytes", c->received,
			    c->total);
		}
		if (n == 0)
			return 0;
		if (c->received + (size_t)n > c->total)
			errx(1, "received %zu bytes more than were sent",
			     c->received + (size_t)n - c->total);
		payload_fill(c->seed, c->received, want, (size_t)n);
		if (memcmp(buf, want, (size_t)n) != 0)
			errx(1, "mismatch in bytes %zu..%zu", c->received,
			     c->received + (size_t)n);
		c->received += (size_t)n;
		if (read_delay_ms > 0) {
			/* A slow reader: the server's echo backs up. */
			poll(NULL, 0, (int)read_delay_ms);
			return 1;
		}
	}
}

/*
 * Run every connection until it has got all its bytes back: send while
 * there is something to send (unless reading is all that is left), read
 * whatever arrives.  With half, shut the write side down after the last byte
 * and require the echo to be complete before EOF.
 */
static void
run(struct conn *conns, size_t nconn, int half, long deadline)
{
	struct pollfd *pfd;
	size_t i, left = nconn;
	int rc;

	if ((pfd = calloc(nconn, sizeof(*pfd))) == NULL)
		err(1, "calloc");
	while (left > 0) {
		long wait = deadline - now_ms();

		for (i = 0; i < nconn; i++) {
			struct conn *c = &conns[i];

			if (half && c->sent == c->total && !c->shut) {
				if (shutdown(c->fd, SHUT_WR) == -1)
					err(1, "shutdown");
				c->shut = 1;
			}
			pfd[i].fd = c->done ? -1 : c->fd;
			pfd[i].events = POLLIN;
			if (c->sent < c->total)
				pfd[i].events |= POLLOUT;
		}
		if (wait <= 0)
			break;
		if ((rc = poll(pfd, nconn, (int)wait)) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "poll");
		}
		for (i = 0; i < nconn && rc > 0; i++) {
			struct conn *c = &conns[i];

			if (pfd[i].revents == 0)
				continue;
			if (pfd[i].revents & POLLOUT)
				send_some(c);
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				if (receive_some(c) == 0) {
					if (c->received < c->need)
						errx(1,
						     "EOF after %zu of %zu "
						     "bytes: %zu lost",
						     c->received, c->need,
						     c->need - c->received);
					c->eof = 1;
					c->done = 1;
					left--;
				}
			}
			if (!half && !c->done && c->received == c->total) {
				c->done = 1;
				left--;
			}
		}
	}
	free(pfd);
	if (left > 0) {
		for (i = 0; i < nconn; i++)
			if (!conns[i].done)
				break;
		fprintf(stderr,
			"echoclient: timeout: %zu of %zu connections "
			"unfinished; the first sent %zu and got back %zu of "
			"%zu bytes\n",
			left, nconn, conns[i].sent, conns[i].received,
			conns[i].total);
		exit(3);
	}
}

/* Send without reading until the server stops taking data; return the count. */
static size_t
push_unread(struct conn *c, long deadline)
{
	struct pollfd pfd;
	long last = now_ms();

	while (c->sent < c->total && now_ms() - last < stall_ms &&
	       now_ms() < deadline) {
		pfd.fd = c->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 50) == -1 && errno != EINTR)
			err(1, "poll");
		if (send_some(c) > 0)
			last = now_ms();
	}
	return c->sent;
}

/* Wait, bounded, until fd is readable; exit 3 on a timeout. */
static void
wait_readable(int fd, long deadline, const char *what)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int rc;

	do {
		long wait = deadline - now_ms();

		if (wait <= 0)
			errx(3, "timeout waiting for %s", what);
		rc = poll(&pfd, 1, (int)wait);
	} while (rc == 0 || (rc == -1 && errno == EINTR));
	if (rc == -1)
		err(1, "poll");
}

/* After the whole echo, the server must close: expect EOF, not data. */
static void
expect_eof(struct conn *c, long deadline)
{
	char byte;
	ssize_t n;

	if (c->eof)
		return;
	wait_readable(c->fd, deadline, "EOF");
	if ((n = read(c->fd, &byte, 1)) == -1)
		err(1, "read after the echo, instead of EOF");
	if (n > 0)
		errx(1, "more bytes than were sent, instead of EOF");
}

/*
 * Hold nconn connections open at once and echo one short line on each, all
 * in flight together; report how long the connects and the echoes took.
 */
static void
idle_echo(struct conn *conns, size_t nconn, long start, long deadline)
{
	long connected = now_ms(), echoed;
	size_t i;

	for (i = 0; i < nconn; i++)
		conns[i].total = 8;
	run(conns, nconn, 0, deadline);
	echoed = now_ms();
	printf("idle: %zu connections open; connecting took %ld ms, one echo "
	       "on each %ld ms\n",
	       nconn, connected - start, echoed - connected);
	fflush(stdout);
}

/*
 * After the server has been told to stop: wait late_ms, then send one more
 * byte.  The server may echo it or, closing already, discard it; what was
 * sent before must come back either way.
 */
static void
send_late_byte(struct conn *c)
{
	unsigned char byte;

	poll(NULL, 0, (int)late_ms);
	payload_fill(c->seed, c->total, &byte, 1);
	if (write(c->fd, &byte, 1) == 1) {
		c->need = c->total;
		c->total++;
		c->sent++;
	} else if (errno != EAGAIN && errno != EWOULDBLOCK)
		err(1, "write of the late byte");
}

/* Print the usage, with the defaults, to stderr and exit with status. */
static _Noreturn void
usage(int status)
{
	fprintf(stderr,
		"usage: echoclient [-hw] [-a addr] [-d ms] [-l ms] [-r bytes]\n"
		"                  [-S ms] [-T ms] -p port mode args\n"
		"  -a addr   the server's address (default 127.0.0.1)\n"
		"  -d ms     pause this long after each read (default 0)\n"
		"  -l ms     hold: this long after the line on stdin, send "
		"one\n"
		"            more byte, which may or may not come back\n"
		"            (default: none)\n"
		"  -p port   the server's port (no default)\n"
		"  -r bytes  the socket's receive buffer, SO_RCVBUF\n"
		"            (default: the system's)\n"
		"  -S ms     how long noread waits for a write to go through\n"
		"            (default 500)\n"
		"  -T ms     give up after this long (default 30000)\n"
		"  -w        hold: shut down writing before waiting\n"
		"  -h        show this help\n"
		"modes (sizes take a K, M or G suffix):\n"
		"  stream BYTES     send and read at once; check every byte\n"
		"  halfclose BYTES  send, shut down writing, read to EOF\n"
		"  clients N BYTES  N connections at once, each halfclose\n"
		"  noread BYTES     send without reading until the server\n"
		"                   stops taking data (-S), then read all\n"
		"  lateread BYTES   the same, but send only what the server\n"
		"                   took, and shut down writing, then read\n"
		"  hold BYTES       like lateread, but do not shut down;\n"
		"                   read once a line arrives on stdin, then\n"
		"                   expect the whole echo and EOF\n"
		"  idle N           open N connections, echo a line on each,\n"
		"                   keep them until a line arrives on stdin\n"
		"  rst BYTES        send, then reset without reading\n"
		"  churn N          N times: connect, send a byte, reset;\n"
		"                   stop early when the server refuses\n"
		"Exit status: 0 every byte came back, 1 a mismatch, lost\n"
		"bytes or an error, 2 a usage error, 3 a timeout.\n");
	exit(status);
}

/* Parse what, a size from 0 to max, or exit with a usage error. */
static uint64_t
size_arg(const char *what, const char *s, uint64_t max)
{
	uint64_t n;

	if (parse_size(s, max, &n) == -1) {
		warnx("%s: not a size from 0 to %" PRIu64 ": %s", what, max, s);
		usage(2);
	}
	return n;
}

/* Parse the options and run the mode. */
int
main(int argc, char *argv[])
{
	struct conn *conns;
	struct linger lg;
	long start;
	enum mode mode;
	size_t i, nconn = 1, bytes;
	long deadline;
	int ch;

	while ((ch = getopt(argc, argv, "a:d:hl:p:r:S:T:w")) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 'd':
			read_delay_ms = (long)size_arg("-d", optarg, MAX_MS);
			break;
		case 'h':
			usage(0);
			break;
		case 'l':
			late_ms = (long)size_arg("-l", optarg, MAX_MS);
			break;
		case 'p':
			port = optarg;
			break;
		case 'r':
			rcvbuf = (int)size_arg("-r", optarg, 1 << 30);
			break;
		case 'S':
			stall_ms = (long)size_arg("-S", optarg, MAX_MS);
			break;
		case 'T':
			timeout_ms = (long)size_arg("-T", optarg, MAX_MS);
			break;
		case 'w':
			shut_early = 1;
			break;
		default:
			usage(2);
		}
	}
	argc -= optind;
	argv += optind;
	if (port == NULL) {
		warnx("no port given (-p)");
		usage(2);
	}
	if (argc < 2) {
		warnx("no mode, or no size after it");
		usage(2);
	}
	if (strcmp(argv[0], "churn") == 0) {
		/* one connection at a time, none of them checked */
		signal(SIGPIPE, SIG_IGN);
		churn((size_t)size_arg("churn", argv[1], MAX_CONNS),
		      now_ms() + timeout_ms);
		return 0;
	}
	if (strcmp(argv[0], "stream") == 0)
		mode = STREAM;
	else if (strcmp(argv[0], "halfclose") == 0)
		mode = HALFCLOSE;
	else if (strcmp(argv[0], "noread") == 0)
		mode = NOREAD;
	else if (strcmp(argv[0], "lateread") == 0)
		mode = LATEREAD;
	else if (strcmp(argv[0], "hold") == 0)
		mode = HOLD;
	else if (strcmp(argv[0], "rst") == 0)
		mode = RST;
	else if (strcmp(argv[0], "idle") == 0) {
		mode = IDLE;
		nconn = (size_t)size_arg("idle", argv[1], MAX_CONNS);
	} else if (strcmp(argv[0], "clients") == 0 && argc == 3) {
		mode = CLIENTS;
		nconn = (size_t)size_arg("clients", argv[1], MAX_CONNS);
		argv++;
	} else {
		warnx("unknown mode, or wrong arguments: %s", argv[0]);
		usage(2);
	}
	bytes = mode == IDLE ? 8
			     : (size_t)size_arg(argv[0], argv[1], MAX_BYTES);

	signal(SIGPIPE, SIG_IGN);
	/* Thousands of connections need more than the usual 1024. */
	raise_nofile(nconn);
	start = now_ms();
	deadline = start + timeout_ms;
	if ((conns = calloc(nconn, sizeof(*conns))) == NULL)
		err(1, "calloc");
	for (i = 0; i < nconn; i++) {
		conns[i].fd = dial();
		conns[i].seed = payload_mix(i + 1) ^ (uint64_t)getpid();
		conns[i].total = conns[i].need = bytes;
	}

	switch (mode) {
	case STREAM:
		run(conns, 1, 0, deadline);
		break;
	case HALFCLOSE:
	case CLIENTS:
		run(conns, nconn, 1, deadline);
		break;
	case NOREAD:
		printf("sent unread: %zu\n", push_unread(&conns[0], deadline));
		fflush(stdout);
		run(conns, 1, 1, deadline);
		break;
	case LATEREAD:
		/* What the server took before it stopped is all we send. */
		conns[0].total = push_unread(&conns[0], deadline);
		conns[0].need = conns[0].total;
		printf("sent unread: %zu\n", conns[0].total);
		fflush(stdout);
		run(conns, 1, 1, deadline);
		bytes = conns[0].total;
		break;
	case HOLD:
		/* Leave the echo unread until a line arrives on stdin. */
		conns[0].total = push_unread(&conns[0], deadline);
		conns[0].need = conns[0].total;
		if (shut_early && shutdown(conns[0].fd, SHUT_WR) == -1)
			err(1, "shutdown");
		printf("sent unread: %zu\n", conns[0].total);
		fflush(stdout);
		wait_readable(STDIN_FILENO, deadline, "a line on stdin");
		if (late_ms >= 0)
			send_late_byte(&conns[0]);
		run(conns, 1, 0, deadline);
		expect_eof(&conns[0], deadline);
		bytes = conns[0].total;
		break;
	case IDLE:
		/* Hold them, idle, until a line arrives on stdin. */
		idle_echo(conns, nconn, start, deadline);
		wait_readable(STDIN_FILENO, deadline, "a line on stdin");
		break;
	case RST:
		push_unread(&conns[0], deadline);
		lg.l_onoff = 1;
		lg.l_linger = 0;
		if (setsockopt(conns[0].fd, SOL_SOCKET, SO_LINGER, &lg,
			       sizeof(lg)) == -1)
			err(1, "setsockopt SO_LINGER");
		break;
	}
	for (i = 0; i < nconn; i++)
		close(conns[i].fd);
	if (mode != RST && mode != IDLE)
		printf("ok: %zu connection%s, %zu bytes each, all echoed\n",
		       nconn, nconn == 1 ? "" : "s", bytes);
	free(conns);
	return 0;
}
