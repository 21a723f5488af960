/*
 * attack: hostile clients for an echo server on 127.0.0.1, each a mode that
 * reports what the server did with it on one line.  Every loop is bounded by
 * a count and by -T; it exits 0 when it could measure, 1 on an error, 2 on a
 * usage error.  Whether what it measured is good is for the caller to say.
 */

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <linux/sockios.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"

#define MAX_MS	  86400000 /* a day, for -T and the modes' periods */
#define MAX_CONNS 100000

static const char *port;
static long timeout_ms = 30000;

/* Connect to the server on 127.0.0.1; the socket is then non-blocking. */
static int
dial(void)
{
	return dial_to("127.0.0.1", port, 0);
}

/* Connect as dial() does, but with a receive buffer of rcvbuf bytes. */
static int
dial_small(int rcvbuf)
{
	return dial_to("127.0.0.1", port, rcvbuf);
}

/*
 * What the server did to a connection, seen from a read: 1 data, 0 a FIN,
 * -1 a reset, -2 nothing yet.  Data read is thrown away; *got counts it.
 */
static int
peek_end(int fd, size_t *got)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		if ((n = read(fd, buf, sizeof(buf))) > 0) {
			*got += (size_t)n;
			continue;
		}
		if (n == 0)
			return 0;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -2;
		if (errno == ECONNRESET)
			return -1;
		err(1, "read");
	}
}

/*
 * The connections an attack holds, and when the server let each one go: a
 * reset on a connection is the server's only sure word that it let go.
 */
struct herd {
	struct pollfd *pfd; /* fd -1: let go, and closed */
	long *since;	    /* from when each one's time counts; -1: not yet */
	size_t n, gone;
	long next; /* when the next byte is due */
	long last; /* the longest from since to let go, in ms; -1: none */
};

/* n connections, none yet open. */
static void
herd_init(struct herd *h, size_t n)
{
	memset(h, 0, sizeof(*h));
	h->n = n;
	h->last = -1;
	if ((h->pfd = calloc(n, sizeof(*h->pfd))) == NULL ||
	    (h->since = calloc(n, sizeof(*h->since))) == NULL)
		err(1, "calloc");
}

/*
 * Poll the herd until the server let every connection go, or -T has passed
 * since start; is_gone(h, i, arg) says whether connection i was let go this
 * round, and h->next, which a period moves on each round it is reached, when
 * a byte is due.
 */
static void
herd_watch(struct herd *h, long start, long period,
	   int (*is_gone)(struct herd *, size_t, void *), void *arg)
{
	size_t i;

	h->next = now_ms();
	while (h->gone < h->n && now_ms() - start < timeout_ms) {
		if (poll(h->pfd, h->n, 20) == -1 && errno != EINTR)
			err(1, "poll");
		for (i = 0; i < h->n; i++) {
			if (h->pfd[i].fd < 0 || !is_gone(h, i, arg))
				continue;
			if (h->since[i] != -1 &&
			    now_ms() - h->since[i] > h->last)
				h->last = now_ms() - h->since[i];
			close(h->pfd[i].fd);
			h->pfd[i].fd = -1;
			h->gone++;
		}
		if (now_ms() >= h->next)
			h->next += period;
	}
}

/* Close the connections the server kept, and free the herd. */
static void
herd_free(struct herd *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (h->pfd[i].fd >= 0)
			close(h->pfd[i].fd);
	free(h->since);
	free(h->pfd);
}

/* What trickle and linger count besides the connections let go. */
struct trickle {
	int after_fin; /* linger: time counts from the server's FIN */
	size_t fins;   /* connections the server sent a FIN */
	size_t got;    /* bytes echoed */
};

/*
 * trickle, linger: read what connection i has; let go if that is a reset, or
 * if its byte, when due, meets one.
 */
static int
trickle_gone(struct herd *h, size_t i, void *arg)
{
	struct trickle *t = arg;
	struct pollfd *p = &h->pfd[i];
	int end = -2;

	if (p->revents & POLLERR)
		end = -1;
	else if (p->revents & POLLIN)
		end = peek_end(p->fd, &t->got);
	if (end == 0) {
		/* Half-closed: no more POLLIN, or it spins. */
		t->fins++;
		p->events = 0;
		if (t->after_fin)
			h->since[i] = now_ms();
	}
	if (end == -2 && h->since[i] != -1 && now_ms() >= h->next &&
	    write(p->fd, "x", 1) == -1) {
		if (errno != EPIPE && errno != ECONNRESET && errno != EAGAIN)
			err(1, "write");
		if (errno != EAGAIN)
			end = -1;
	}
	return end == -1;
}

/*
 * trickle N MS: N connections each send one byte every MS ms and read what
 * comes back.  A FIN says only that the server sends no more; it has let go
 * of a connection when a byte meets a reset.  Report how many it let go and
 * when the last went, from its connect; stop once all are gone, or at -T.
 * Once all are connected it says so on stderr.
 *
 * linger N MS: the same, but each connection stays silent until the
 * server's FIN (an idle timeout), and only then sends a byte every MS ms;
 * when the last went is counted from its FIN.
 */
static void
trickle(size_t n, long period, int after_fin)
{
	const char *mode = after_fin ? "linger" : "trickle";
	struct trickle t = {.after_fin = after_fin};
	struct herd h;
	long start = now_ms();
	size_t i;

	herd_init(&h, n);
	for (i = 0; i < n; i++) {
		h.pfd[i].fd = dial();
		h.pfd[i].events = POLLIN;
		h.since[i] = after_fin ? -1 : now_ms();
	}
	/* For a caller that waits for them all before it goes on. */
	fprintf(stderr, "%s: %zu connected\n", mode, n);
	herd_watch(&h, start, period, trickle_gone, &t);
	printf("%s: %zu of %zu let go (a reset), %zu sent a FIN first; "
	       "the last went %ld ms after its %s; %zu bytes echoed\n",
	       mode, h.gone, n, t.fins, h.last, after_fin ? "FIN" : "connect",
	       t.got);
	herd_free(&h);
}

/*
 * The send and receive queues of the TCP socket on 127.0.0.1 from local port
 * lport to remote port rport, as /proc/net/tcp shows them to anyone; -1 if
 * there is none.
 */
static int
tcp_queues(unsigned lport, unsigned rport, unsigned long *tx, unsigned long *rx)
{
	char line[512];
	unsigned lp, rp;
	FILE *f;
	int rc = -1;

	if ((f = fopen("/proc/net/tcp", "r")) == NULL)
		err(1, "/proc/net/tcp");
	while (rc == -1 && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, " %*u: %*x:%x %*x:%x %*x %lx:%lx", &lp, &rp,
			   tx, rx) == 4 &&
		    lp == lport && rp == rport)
			rc = 0;
	fclose(f);
	return rc;
}

/* The local port of socket fd. */
static unsigned
local_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		err(1, "getsockname");
	return ntohs(sin.sin_port);
}

/*
 * Send on fd until the server has read all of it and holds
 * at least held bytes of its echo in the process itself: what it read minus
 * what waits in its socket and in ours (the kernel's queues, from
 * /proc/net/tcp).  The kernel may hold megabytes, so only this count says
 * that the echo waits in the server.  Return what was sent.
 */
static size_t
fill_server(int fd, size_t held, long deadline)
{
	static char buf[65536];
	unsigned me = local_port(fd), srv = (unsigned)atoi(port);
	unsigned long c_rx, s_tx, s_rx;
	size_t sent = 0, chunk;
	int outq, inq;
	ssize_t w;

	memset(buf, 's', sizeof(buf));
	for (;;) {
		if (now_ms() > deadline)
			errx(1,
			     "stall: the server did not take %zu bytes "
			     "within -T",
			     held);
		/* Until the server has read everything we sent. */
		if (ioctl(fd, SIOCOUTQ, &outq) == -1 ||
		    ioctl(fd, SIOCINQ, &inq) == -1)
			err(1, "ioctl");
		if (outq != 0) {
			poll(NULL, 0, 2);
			continue;
		}
		if (tcp_queues(srv, me, &s_tx, &s_rx) == -1)
			errx(1,
			     "stall: the connection is not in /proc/net/tcp");
		if (s_rx != 0) {
			poll(NULL, 0, 2);
			continue;
		}
		c_rx = (unsigned long)inq;
		if (sent >= s_tx + c_rx + held)
			return sent;
		/*
		 * What is missing, at most 64 KiB: the kernels take part of
		 * it, so it takes a few rounds, each one quick.
		 */
		chunk = s_tx + c_rx + held - sent;
		if (chunk > sizeof(buf))
			chunk = sizeof(buf);
		if ((w = write(fd, buf, chunk)) > 0)
			sent += (size_t)w;
		else if (errno != EAGAIN)
			err(1, "write");
	}
}

/* stall: let go if connection i shows a reset, or its due byte meets one. */
static int
stall_gone(struct herd *h, size_t i, void *arg)
{
	(void)arg;
	/* A reset shows as an error, with or without a byte. */
	if (h->pfd[i].revents & (POLLERR | POLLHUP))
		return 1;
	if (now_ms() < h->next || write(h->pfd[i].fd, "x", 1) != -1 ||
	    errno == EAGAIN)
		return 0;
	if (errno != EPIPE && errno != ECONNRESET)
		err(1, "write");
	return 1;
}

/*
 * stall N HELD MS: N connections with a tiny receive buffer send until HELD
 * bytes of each one's echo wait in the server process (below its
 * high-water mark, so it still reads them), never read, then send one byte
 * every MS ms.  Report how many the server let go (a reset) and when the
 * last went, counted from the moment its HELD bytes waited: the echo it
 * could take was all taken by then.  Once they all wait it says so on
 * stderr; it stops at -T.
 */
static void
stall(size_t n, size_t held, long period)
{
	struct herd h;
	long start = now_ms();
	size_t i;

	herd_init(&h, n);
	for (i = 0; i < n; i++) {
		h.pfd[i].fd = dial_small(1); /* the kernel's minimum */
		fill_server(h.pfd[i].fd, held, start + timeout_ms);
		h.since[i] = now_ms();
		h.pfd[i].events = 0; /* errors only, from now */
	}
	fprintf(stderr, "stall: %zu connections hold %zu bytes\n", n, held);
	herd_watch(&h, start, period, stall_gone, NULL);
	printf("stall: %zu of %zu let go (a reset); the last went %ld ms after "
	       "its echo stopped\n",
	       h.gone, n, h.last);
	herd_free(&h);
}

/* Wait, bounded by deadline, for a line on stdin; exit 1 without one. */
static void
wait_stdin(long deadline)
{
	struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
	long wait;
	int rc;

	do {
		if ((wait = deadline - now_ms()) <= 0)
			errx(1, "no line on stdin within -T");
		rc = poll(&pfd, 1, (int)wait);
	} while (rc == 0 || (rc == -1 && errno == EINTR));
	if (rc == -1)
		err(1, "poll");
}

/*
 * owed N: N connections each send one byte; once a line arrives on stdin,
 * each is read to its end.  Report how many got their byte then a FIN, a
 * reset (with or without the byte), a FIN without the byte, or no end
 * within -T.
 */
static void
owed(size_t n)
{
	struct pollfd pfd;
	long deadline = now_ms() + timeout_ms;
	size_t i, got, echo_fin = 0, resets = 0, lost = 0, open_ = 0;
	int *fds, rc;

	if ((fds = calloc(n, sizeof(*fds))) == NULL)
		err(1, "calloc");
	for (i = 0; i < n; i++) {
		fds[i] = dial();
		if (write(fds[i], "x", 1) != 1)
			err(1, "write");
	}
	printf("owed: %zu connections sent a byte\n", n);
	fflush(stdout);
	wait_stdin(deadline);
	for (i = 0; i < n; i++) {
		got = 0;
		pfd.fd = fds[i];
		pfd.events = POLLIN;
		while ((rc = peek_end(fds[i], &got)) == -2 &&
		       now_ms() < deadline)
			if (poll(&pfd, 1, 50) == -1 && errno != EINTR)
				err(1, "poll");
		if (rc == -1)
			resets++;
		else if (rc == 0 && got == 1)
			echo_fin++;
		else if (rc == 0)
			lost++;
		else
			open_++;
		close(fds[i]);
	}
	printf("owed: %zu echo then FIN, %zu reset, %zu FIN without the "
	       "echo, %zu no end\n",
	       echo_fin, resets, lost, open_);
	free(fds);
}

/*
 * cut N FROM STEP: N connections, the i-th sending FROM + i * STEP bytes
 * without reading, then shutting down writing; the sizes straddle what the
 * kernels' buffers and the server's own hold.  Once a line arrives on stdin
 * each is read to its end.  Report how many got the whole echo and a FIN,
 * a reset, or a FIN before the whole echo: a cut the client cannot tell.
 */
static void
cut(size_t n, size_t from, size_t step)
{
	static char buf[65536];
	struct pollfd *pfd;
	size_t *sent, *total, i, got, whole = 0, resets = 0, silent = 0;
	size_t open_ = 0, busy;
	long deadline = now_ms() + timeout_ms, last;
	ssize_t w;
	int rc;

	if ((pfd = calloc(n, sizeof(*pfd))) == NULL ||
	    (sent = calloc(n, sizeof(*sent))) == NULL ||
	    (total = calloc(n, sizeof(*total))) == NULL)
		err(1, "calloc");
	memset(buf, 'c', sizeof(buf));
	for (i = 0; i < n; i++) {
		pfd[i].fd = dial();
		pfd[i].events = POLLOUT;
		total[i] = from + i * step;
	}
	/* Send until every one is done, or nothing moved for 500 ms. */
	for (last = now_ms(); now_ms() - last < 500 && now_ms() < deadline;) {
		busy = 0;
		if (poll(pfd, n, 50) == -1 && errno != EINTR)
			err(1, "poll");
		for (i = 0; i < n; i++) {
			if (sent[i] == total[i])
				continue;
			busy++;
			w = write(pfd[i].fd, buf,
				  total[i] - sent[i] < sizeof(buf)
					  ? total[i] - sent[i]
					  : sizeof(buf));
			if (w == -1 && errno != EAGAIN)
				err(1, "write");
			if (w > 0) {
				sent[i] += (size_t)w;
				last = now_ms();
			}
			if (sent[i] == total[i]) {
				if (shutdown(pfd[i].fd, SHUT_WR) == -1)
					err(1, "shutdown");
				pfd[i].fd = ~pfd[i].fd; /* poll skips it */
			}
		}
		if (busy == 0)
			break;
	}
	for (i = 0; i < n; i++)
		if (pfd[i].fd < 0)
			pfd[i].fd = ~pfd[i].fd;
	printf("cut: %zu connections sent %zu to %zu bytes unread\n", n,
	       total[0], total[n - 1]);
	fflush(stdout);
	wait_stdin(deadline);
	for (i = 0; i < n; i++) {
		got = 0;
		pfd[i].events = POLLIN;
		while ((rc = peek_end(pfd[i].fd, &got)) == -2 &&
		       now_ms() < deadline)
			if (poll(&pfd[i], 1, 50) == -1 && errno != EINTR)
				err(1, "poll");
		if (rc == -1)
			resets++;
		else if (rc == 0 && got == sent[i])
			whole++;
		else if (rc == 0)
			silent++;
		else
			open_++;
		close(pfd[i].fd);
	}
	printf("cut: %zu whole echo then FIN, %zu reset, %zu FIN before the "
	       "whole echo, %zu no end\n",
	       whole, resets, silent, open_);
	free(total);
	free(sent);
	free(pfd);
}

/*
 * backlog N: N connections that send nothing, most of them left waiting in
 * the server's backlog; once a line arrives on stdin, all close at once, and
 * a new client sends a byte.  Report how long after the close its echo came
 * back: the server had to take and drop the N first.
 */
static void
backlog(size_t n)
{
	struct pollfd pfd;
	long deadline = now_ms() + timeout_ms, closed;
	size_t i, got = 0;
	int *fds, fd, rc;

	if ((fds = calloc(n, sizeof(*fds))) == NULL)
		err(1, "calloc");
	for (i = 0; i < n; i++)
		fds[i] = dial();
	printf("backlog: %zu connections open\n", n);
	fflush(stdout);
	wait_stdin(deadline);
	for (i = 0; i < n; i++)
		close(fds[i]);
	closed = now_ms();
	fd = dial();
	if (write(fd, "x", 1) != 1)
		err(1, "write");
	pfd.fd = fd;
	pfd.events = POLLIN;
	while ((rc = peek_end(fd, &got)) == -2 && got == 0 &&
	       now_ms() < deadline)
		if (poll(&pfd, 1, 10) == -1 && errno != EINTR)
			err(1, "poll");
	if (got == 1)
		printf("backlog: %zu closed; a new client echoed %ld ms "
		       "after\n",
		       n, now_ms() - closed);
	else
		printf("backlog: %zu closed; a new client got %s within -T\n",
		       n, rc == -1 ? "a reset" : "no echo");
	close(fd);
	free(fds);
}

/* churn N: connect and close at once, N times in a row; report how long. */
static void
churn(size_t n)
{
	long start = now_ms();
	size_t i;

	for (i = 0; i < n && now_ms() - start < timeout_ms; i++)
		close(dial());
	printf("churn: %zu connects and closes in %ld ms\n", i,
	       now_ms() - start);
}

/* Print the usage to stderr and exit with status. */
static _Noreturn void
usage(int status)
{
	fprintf(stderr,
		"usage: attack [-h] [-T ms] -p port mode args\n"
		"  -p port  the server's port on 127.0.0.1 (no default)\n"
		"  -T ms    give up after this long (default 30000)\n"
		"modes:\n"
		"  trickle N MS  N connections send a byte every MS ms;\n"
		"                report when the server closed them\n"
		"  linger N MS   the same, but silent until the server's FIN\n"
		"  stall N HELD MS  N connections that never read send until\n"
		"                HELD bytes of echo wait in the server, then\n"
		"                a byte every MS ms; report when the\n"
		"                server reset them\n"
		"  owed N        N connections send a byte; after a line\n"
		"                on stdin, report how each one ended\n"
		"  backlog N     N connections wait unserved; after a line\n"
		"                on stdin all close, and a new client\n"
		"                reports when its echo came\n"
		"  churn N       connect and close at once, N times\n"
		"  cut N FROM STEP  N connections send FROM, FROM + STEP, ...\n"
		"                bytes unread and shut down writing; after a\n"
		"                line on stdin, report how each one ended\n");
	exit(status);
}

/* Parse a number from 0 to max, or exit with a usage error. */
static long
number_arg(const char *what, const char *s, long max)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || n > max) {
		warnx("%s: not a number from 0 to %ld: %s", what, max, s);
		usage(2);
	}
	return n;
}

/* Parse the options and run the mode. */
int
main(int argc, char *argv[])
{
	size_t n;
	int ch;

	while ((ch = getopt(argc, argv, "hp:T:")) != -1) {
		switch (ch) {
		case 'h':
			usage(0);
		case 'p':
			port = optarg;
			break;
		case 'T':
			timeout_ms = (long)number_arg("-T", optarg, MAX_MS);
			break;
		default:
			usage(2);
		}
	}
	argc -= optind;
	argv += optind;
	if (port == NULL || argc < 2)
		usage(2);
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		err(1, "signal");
	n = (size_t)number_arg(argv[0], argv[1], MAX_CONNS);
	raise_nofile(n);
	if (strcmp(argv[0], "trickle") == 0 && argc == 3)
		trickle(n, (long)number_arg("trickle", argv[2], MAX_MS), 0);
	else if (strcmp(argv[0], "linger") == 0 && argc == 3)
		trickle(n, (long)number_arg("linger", argv[2], MAX_MS), 1);
	else if (strcmp(argv[0], "stall") == 0 && argc == 4)
		stall(n, (size_t)number_arg("stall", argv[2], 1L << 30),
		      (long)number_arg("stall", argv[3], MAX_MS));
	else if (strcmp(argv[0], "owed") == 0 && argc == 2)
		owed(n);
	else if (strcmp(argv[0], "backlog") == 0 && argc == 2)
		backlog(n);
	else if (strcmp(argv[0], "churn") == 0 && argc == 2)
		churn(n);
	else if (strcmp(argv[0], "cut") == 0 && argc == 4)
		cut(n, (size_t)number_arg("cut", argv[2], 1L << 30),
		    (size_t)number_arg("cut", argv[3], 1L << 30));
	else
		usage(2);
	return 0;
}
