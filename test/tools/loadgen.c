/*
 * loadgen: the load generator that `make bench` drives the servers with.
 *
 * It opens many connections to an echo server at once and runs one load over
 * them, all from one thread and one epoll loop:
 *
 *   pingpong  each of C connections keeps P messages of S bytes in flight
 *             for D seconds: messages per second, MB/s, and the round-trip
 *             latency of every message (p50, p99, p99.9);
 *   bulk      N MiB streamed over C connections; each one shuts down its
 *             write side after its last byte and reads the echo to EOF;
 *   idle      C connections held open at once, then one small message on
 *             each: how many came back, and how long that took.
 *
 * Every byte a connection sends is a function of the connection and of the
 * byte's offset in its stream, so every echoed byte is checked.  A
 * connection that never gets an echo is "starved" (a server that serves only
 * T clients at a time starves the others): that is reported, not an error.
 * Latency runs from the moment a message is queued to the moment its last
 * byte is back, on the client's clock, so it includes the client's own time.
 *
 * It prints a few lines for people and one line for scripts: RESULT followed
 * by key=value pairs.  Exit status: 0 if every echo was right, 1 on a
 * mismatch, lost bytes or a connection error, 2 on a usage error, 3 if the
 * hard deadline (-T) passed first.
 */

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"

#define CHUNK	     65536 /* the most one read() or write() moves */
#define MAX_DIALING  256   /* connects in progress at once */
#define MAX_EVENTS   256
#define MAX_WARNINGS 5	/* problems printed; the rest are only counted */
#define HIST_SUB     64 /* latency buckets per power of two: 1.6% wide */
#define HIST_SIZE    (HIST_SUB * 32)
#define NSEC	     1000000000.0

enum mode { PINGPONG, BULK, IDLE };

/* One connection and how far its stream has got. */
struct conn {
	int fd;
	int events;	   /* what epoll watches it for; 0: not in it */
	int dialing;	   /* its connect() is in progress */
	int closed;	   /* an error closed it, or it never connected */
	int shut;	   /* bulk: its write side is shut down */
	int done;	   /* bulk, idle: its whole echo is back */
	uint64_t seed;	   /* its bytes are a function of seed and offset */
	uint64_t msg_size; /* bytes per message; bulk: the whole stream */
	uint64_t queued;   /* bytes it should have sent by now */
	uint64_t sent;
	uint64_t received; /* bytes echoed and checked */
	uint64_t echoes;   /* messages whose echo is complete */
	uint64_t bad_msg;  /* 1 + the last message counted as a mismatch */
	uint64_t *sent_at; /* pingpong: when each message in flight left */
};

/* The options; 0 means "the mode's default". */
static enum mode mode;
static const char *addr = "127.0.0.1";
static const char *port;
static double limit_s = 60;
static size_t nconns;
static size_t inflight = 1;
static size_t size;
static double duration_s = 5, warmup_s = 0.5, wait_s = 5, hold_s;
static size_t bulk_mib = 64;

/* The run. */
static struct conn *conns;
static int epfd;
static size_t left;	  /* connections neither done nor closed */
static uint64_t deadline; /* the hard deadline, in now_ns() time */
static int measuring;	  /* pingpong: the warm-up is over */
static uint64_t errors, mismatches, measured, last_echo;
static uint64_t hist[HIST_SIZE];

/* Nanoseconds on a clock that never jumps. */
static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Milliseconds from now until t, rounded up, between 0 and 1000. */
static int
ms_until(uint64_t t)
{
	uint64_t now = now_ns();

	if (now >= t)
		return 0;
	if (t - now >= 1000000000u)
		return 1000;
	return (int)((t - now + 999999) / 1000000);
}

/* Count an error on c, say what it was (the first few times), close c. */
static void
conn_fail(struct conn *c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (++errors <= MAX_WARNINGS)
		warnx("connection %zu: %s", (size_t)(c - conns), msg);
	else if (errors == MAX_WARNINGS + 1)
		warnx("more errors: counted, not shown");
	close(c->fd);
	c->fd = -1;
	c->events = 0;
	c->closed = 1;
	c->dialing = 0;
	if (!c->done)
		left--;
}

/* c is finished: its echo is complete. */
static void
conn_done(struct conn *c)
{
	c->done = 1;
	left--;
}

/*
 * Make epoll watch c for these events, if that changes anything.  None
 * takes c out of the set: epoll reports a hang-up or an error even to a
 * descriptor that asks for no events.
 */
static void
watch(struct conn *c, int events)
{
	struct epoll_event ev;
	int op = events == 0	  ? EPOLL_CTL_DEL
		 : c->events == 0 ? EPOLL_CTL_ADD
				  : EPOLL_CTL_MOD;

	if (c->events == events)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = (uint32_t)events;
	ev.data.ptr = c;
	if (epoll_ctl(epfd, op, c->fd, &ev) == -1)
		err(1, "epoll_ctl");
	c->events = events;
}

/* Count a latency of us microseconds: exact below 128, then 1.6% wide. */
static void
hist_add(uint64_t us)
{
	unsigned shift = 0;
	size_t i;

	while ((us >> shift) >= 2 * HIST_SUB)
		shift++;
	i = (size_t)shift * HIST_SUB + (size_t)(us >> shift);
	hist[i < HIST_SIZE ? i : HIST_SIZE - 1]++;
}

/* The latency in microseconds that a fraction q of the messages beat. */
static uint64_t
hist_quantile(double q)
{
	uint64_t total = 0, want, seen = 0;
	unsigned shift;
	size_t i;

	for (i = 0; i < HIST_SIZE; i++)
		total += hist[i];
	if (total == 0)
		return 0;
	want = (uint64_t)(q * (double)total);
	if ((double)want < q * (double)total || want == 0)
		want++;
	for (i = 0; i < HIST_SIZE - 1; i++)
		if ((seen += hist[i]) >= want)
			break;
	if (i < 2 * HIST_SUB)
		return i;
	/* The bucket's highest value: report the worse end. */
	shift = (unsigned)(i / HIST_SUB - 1);
	return ((uint64_t)(i - shift * HIST_SUB) << shift) +
	       ((uint64_t)1 << shift) - 1;
}

/* Start connecting c without waiting for the connect to finish. */
static void
dial_start(struct conn *c, const struct addrinfo *ai)
{
	if ((c->fd = socket(ai->ai_family, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	if (fcntl(c->fd, F_SETFL, O_NONBLOCK) == -1)
		err(1, "fcntl");
	watch(c, EPOLLOUT);
	c->dialing = 1;
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == -1 &&
	    errno != EINPROGRESS)
		conn_fail(c, "connect: %s", strerror(errno));
}

/* c's connect has finished, one way or the other. */
static void
dial_done(struct conn *c)
{
	socklen_t len = sizeof(int);
	int error = 0, on = 1;

	c->dialing = 0;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		conn_fail(c, "connect: %s", strerror(error));
		return;
	}
	/* A message goes out when it is written, as a real client's would. */
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1)
		err(1, "setsockopt TCP_NODELAY");
	/*
	 * Out of the set until the load starts (send_some() puts it back):
	 * epoll is level-triggered, so a connection the server has already
	 * closed would wake the dial loop again and again while others are
	 * still connecting.
	 */
	watch(c, 0);
}

/*
 * Connect all nconns connections, MAX_DIALING at a time, and return how many
 * are open.  Those not connected by give_up are left out: a server that
 * accepts no more has a full backlog, and the kernel drops further SYNs.
 */
static size_t
dial_all(uint64_t give_up)
{
	struct epoll_event ev[MAX_EVENTS];
	struct addrinfo *ai = resolve(addr, port);
	struct conn *c;
	size_t next = 0, dialing = 0, open = 0, k;
	int i, n;

	left = nconns;
	while (next < nconns || dialing > 0) {
		while (next < nconns && dialing < MAX_DIALING) {
			dial_start(&conns[next], ai);
			dialing += conns[next++].dialing;
		}
		if (dialing == 0)
			continue;
		if (now_ns() >= deadline)
			errx(3,
			     "deadline: %zu of %zu connections still "
			     "connecting after %.1f s",
			     dialing + nconns - next, nconns, limit_s);
		if (now_ns() >= give_up)
			break;
		if ((n = epoll_wait(epfd, ev, MAX_EVENTS, ms_until(give_up))) ==
		    -1) {
			if (errno == EINTR)
				continue;
			err(1, "epoll_wait");
		}
		for (i = 0; i < n; i++) {
			c = ev[i].data.ptr;
			if (!c->dialing)
				continue;
			dial_done(c);
			dialing--;
			open += !c->closed;
		}
	}
	/* Give up on the rest. */
	for (k = 0; k < nconns; k++) {
		c = &conns[k];
		if (k >= next || c->dialing) {
			if (c->fd >= 0)
				close(c->fd);
			c->fd = -1;
			c->dialing = 0;
			c->closed = 1;
			left--;
		}
	}
	freeaddrinfo(ai);
	return open;
}

/* Write what c has queued, as far as the socket takes it now. */
static void
send_some(struct conn *c)
{
	unsigned char buf[CHUNK];
	size_t len;
	ssize_t n;

	while (c->sent < c->queued) {
		len = c->queued - c->sent < CHUNK ? c->queued - c->sent : CHUNK;
		payload_fill(c->seed, c->sent, buf, len);
		if ((n = write(c->fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_fail(c, "write: %s", strerror(errno));
			return;
		}
		c->sent += (uint64_t)n;
	}
	if (mode == BULK && c->sent == c->queued && !c->shut) {
		/* The half-close: the server must echo the rest, then close. */
		if (shutdown(c->fd, SHUT_WR) == -1) {
			conn_fail(c, "shutdown: %s", strerror(errno));
			return;
		}
		c->shut = 1;
	}
	watch(c, c->sent < c->queued ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* Message msg of c is back: time it and, in pingpong, queue the next one. */
static void
message_done(struct conn *c, uint64_t msg, uint64_t now)
{
	uint64_t *queued_at;

	c->echoes++;
	last_echo = now;
	if (mode == IDLE) {
		/* Nothing more to read: stop watching it. */
		watch(c, 0);
		conn_done(c);
		return;
	}
	if (mode != PINGPONG)
		return;
	queued_at = &c->sent_at[msg % inflight];
	if (measuring) {
		hist_add((now - *queued_at) / 1000);
		measured++;
	}
	*queued_at = now;
	c->queued += c->msg_size;
}

/* Compare n echoed bytes with what c sent; finish the messages they end. */
static void
check(struct conn *c, const unsigned char *buf, size_t n, uint64_t now)
{
	unsigned char want[CHUNK];
	uint64_t msg, end;
	size_t off = 0, len;

	if (n > c->sent - c->received) {
		mismatches++;
		conn_fail(c, "%" PRIu64 " bytes came back that were never sent",
			  n - (c->sent - c->received));
		return;
	}
	payload_fill(c->seed, c->received, want, n);
	while (off < n) {
		msg = c->received / c->msg_size;
		end = (msg + 1) * c->msg_size;
		len = end - c->received < n - off ? end - c->received : n - off;
		if (memcmp(buf + off, want + off, len) != 0 &&
		    c->bad_msg != msg + 1) {
			c->bad_msg = msg + 1;
			if (++mismatches <= MAX_WARNINGS)
				warnx("connection %zu: message %" PRIu64
				      " came back changed",
				      (size_t)(c - conns), msg);
		}
		off += len;
		c->received += len;
		if (c->received == end)
			message_done(c, msg, now);
	}
}

/* Read what has arrived on c and check it. */
static void
read_some(struct conn *c, uint64_t now)
{
	unsigned char buf[CHUNK];
	ssize_t n;

	if ((n = read(c->fd, buf, sizeof(buf))) == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_fail(c, "read: %s", strerror(errno));
		return;
	}
	if (n > 0) {
		check(c, buf, (size_t)n, now);
		return;
	}
	/* EOF: right only after our half-close, with every byte back. */
	if (c->shut && c->received == c->queued) {
		close(c->fd);
		c->fd = -1;
		conn_done(c);
	} else
		conn_fail(c,
			  "the server closed the connection; %" PRIu64
			  " bytes sent were never echoed",
			  c->sent - c->received);
}

/* Run the loop until every connection is done or closed, or until t. */
static void
pump(uint64_t t, uint64_t measure_from)
{
	struct epoll_event ev[MAX_EVENTS];
	struct conn *c;
	uint64_t now;
	int i, n;

	while (left > 0 && (now = now_ns()) < t) {
		measuring = now >= measure_from;
		if ((n = epoll_wait(epfd, ev, MAX_EVENTS, ms_until(t))) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "epoll_wait");
		}
		for (i = 0; i < n; i++) {
			c = ev[i].data.ptr;
			if (c->closed || c->done)
				continue;
			if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				read_some(c, now_ns());
			if (c->closed || c->done || c->sent == c->queued)
				continue;
			/* Write unless the socket is full and still says so. */
			if ((ev[i].events & EPOLLOUT) ||
			    !(c->events & EPOLLOUT))
				send_some(c);
		}
	}
}

/* The fraction of the wall-clock time since start that this process ran. */
static double
cpu_share(uint64_t start)
{
	struct rusage ru;
	double cpu;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		err(1, "getrusage");
	cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	      (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	return cpu / ((double)(now_ns() - start) / NSEC);
}

/* pingpong: P messages in flight per connection for D seconds. */
static void
run_pingpong(uint64_t start)
{
	uint64_t *times, begin, from, total = 0, p50, p99, p999;
	size_t i, k, open, starved = 0;
	double secs;

	if ((times = calloc(nconns * inflight, sizeof(*times))) == NULL)
		err(1, "calloc");
	for (i = 0; i < nconns; i++) {
		conns[i].msg_size = size;
		conns[i].sent_at = times + i * inflight;
	}
	open = dial_all(deadline);
	begin = now_ns();
	from = begin + (uint64_t)(warmup_s * NSEC);
	for (i = 0; i < nconns; i++) {
		if (conns[i].closed)
			continue;
		for (k = 0; k < inflight; k++)
			conns[i].sent_at[k] = begin;
		conns[i].queued = (uint64_t)inflight * size;
		send_some(&conns[i]);
	}
	pump(from + (uint64_t)(duration_s * NSEC), from);
	/* Every connection may have closed before the warm-up was over. */
	secs = now_ns() > from ? (double)(now_ns() - from) / NSEC : 0;
	if (secs == 0)
		secs = 1e-9;
	for (i = 0; i < nconns; i++) {
		total += conns[i].echoes;
		starved += !conns[i].closed && conns[i].echoes == 0;
	}
	p50 = hist_quantile(0.5);
	p99 = hist_quantile(0.99);
	p999 = hist_quantile(0.999);
	printf("pingpong: %zu connections (%zu open), %zu x %zu B in flight "
	       "each, %.2f s after a %.2f s warm-up\n",
	       nconns, open, inflight, size, secs, warmup_s);
	printf("  %.0f messages/s, %.2f MB/s echoed\n", (double)measured / secs,
	       (double)measured * (double)size / secs / 1e6);
	printf("  latency: p50 %" PRIu64 " us, p99 %" PRIu64
	       " us, p99.9 %" PRIu64 " us\n",
	       p50, p99, p999);
	printf("  starved: %zu of %zu connections never got an echo\n", starved,
	       nconns);
	printf("  errors: %" PRIu64 ", mismatches: %" PRIu64 "\n", errors,
	       mismatches);
	printf("RESULT mode=pingpong conns=%zu open=%zu inflight=%zu size=%zu "
	       "seconds=%.3f msgs=%" PRIu64 " total_msgs=%" PRIu64
	       " msgs_per_s=%.0f mb_per_s=%.3f p50_us=%" PRIu64
	       " p99_us=%" PRIu64 " p999_us=%" PRIu64
	       " starved=%zu errors=%" PRIu64 " mismatches=%" PRIu64
	       " lost=0 cpu=%.2f\n",
	       nconns, open, inflight, size, secs, measured, total,
	       (double)measured / secs,
	       (double)measured * (double)size / secs / 1e6, p50, p99, p999,
	       starved, errors, mismatches, cpu_share(start));
	free(times);
}

/* bulk: N MiB over the connections, each half-closed, each read to EOF. */
static void
run_bulk(uint64_t start)
{
	uint64_t total = (uint64_t)bulk_mib << 20, echoed = 0, lost = 0;
	uint64_t begin;
	size_t i, open;
	double secs;

	for (i = 0; i < nconns; i++) {
		conns[i].msg_size = total / nconns;
		if (i == nconns - 1)
			conns[i].msg_size += total % nconns;
	}
	open = dial_all(deadline);
	begin = now_ns();
	for (i = 0; i < nconns; i++) {
		if (conns[i].closed)
			continue;
		conns[i].queued = conns[i].msg_size;
		send_some(&conns[i]);
	}
	pump(deadline, 0);
	secs = (double)(now_ns() - begin) / NSEC;
	for (i = 0; i < nconns; i++) {
		echoed += conns[i].received;
		if (!conns[i].done)
			lost += conns[i].sent - conns[i].received;
	}
	printf("bulk: %zu MiB over %zu connection%s (%zu open) in %.2f s\n",
	       bulk_mib, nconns, nconns == 1 ? "" : "s", open, secs);
	printf("  %.1f MB/s echoed (each byte counted once)\n",
	       (double)echoed / secs / 1e6);
	printf("  lost: %" PRIu64 " bytes sent but never echoed\n", lost);
	printf("  errors: %" PRIu64 ", mismatches: %" PRIu64 "\n", errors,
	       mismatches);
	printf("RESULT mode=bulk conns=%zu open=%zu bytes=%" PRIu64
	       " seconds=%.3f mb_per_s=%.1f lost=%" PRIu64 " errors=%" PRIu64
	       " mismatches=%" PRIu64 " unfinished=%zu cpu=%.2f\n",
	       nconns, open, echoed, secs, (double)echoed / secs / 1e6, lost,
	       errors, mismatches, left, cpu_share(start));
	if (left > 0) {
		fflush(stdout);
		errx(3, "deadline: %zu connections unfinished after %.1f s",
		     left, limit_s);
	}
}

/* idle: hold every connection open, then one small echo on each. */
static void
run_idle(uint64_t start)
{
	uint64_t t0, t1, until;
	size_t i, open, echoed = 0, starved;
	struct timespec ts;

	for (i = 0; i < nconns; i++)
		conns[i].msg_size = size;
	t0 = now_ns();
	until = t0 + (uint64_t)(wait_s * NSEC);
	open = dial_all(until < deadline ? until : deadline);
	t1 = now_ns();
	printf("idle: %zu of %zu connections open in %.0f ms\n", open, nconns,
	       (double)(t1 - t0) / 1e6);
	if (open + errors < nconns)
		printf("  %zu gave up connecting after %.1f s\n",
		       nconns - open - (size_t)errors, wait_s);
	fflush(stdout);
	for (i = 0; i < nconns; i++) {
		if (conns[i].closed)
			continue;
		conns[i].queued = size;
		send_some(&conns[i]);
	}
	until = t1 + (uint64_t)(wait_s * NSEC);
	pump(until < deadline ? until : deadline, 0);
	for (i = 0; i < nconns; i++)
		echoed += conns[i].done;
	if (echoed == 0)
		last_echo = t1;
	/* Starved: neither echoed nor closed by an error. */
	starved = nconns - echoed - (size_t)errors;
	printf("  %zu of %zu echoed in %.0f ms; %zu starved (not connected "
	       "or not echoed within %.1f s)\n",
	       echoed, nconns, (double)(last_echo - t1) / 1e6, starved, wait_s);
	printf("  errors: %" PRIu64 ", mismatches: %" PRIu64 "\n", errors,
	       mismatches);
	printf("RESULT mode=idle conns=%zu open=%zu echoed=%zu starved=%zu "
	       "connect_ms=%.0f echo_ms=%.0f errors=%" PRIu64
	       " mismatches=%" PRIu64 " lost=0 cpu=%.2f\n",
	       nconns, open, echoed, starved, (double)(t1 - t0) / 1e6,
	       (double)(last_echo - t1) / 1e6, errors, mismatches,
	       cpu_share(start));
	fflush(stdout);
	/* Someone may want to look at the server while all are open. */
	if (hold_s > 0) {
		ts.tv_sec = (time_t)hold_s;
		ts.tv_nsec = (long)((hold_s - (double)ts.tv_sec) * NSEC);
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
}

/* Print the usage, with the defaults, to stderr and exit with status. */
static _Noreturn void
usage(int status)
{
	fprintf(stderr,
		"usage: loadgen [-h] [-a addr] [-T seconds] -p port\n"
		"               mode [mode options]\n"
		"  -a addr     the server's address (default 127.0.0.1;\n"
		"              IPv6 works)\n"
		"  -p port     the server's port (no default)\n"
		"  -T seconds  deadline for the whole run (default 60)\n"
		"  -h          show this help\n"
		"pingpong [-c conns] [-P n] [-s bytes] [-d seconds]\n"
		"         [-W seconds]: each connection keeps messages in\n"
		"         flight; the echoes are timed\n"
		"  -c conns    connections (default 10)\n"
		"  -P n        messages in flight on each (default 1)\n"
		"  -s bytes    bytes per message (default 64)\n"
		"  -d seconds  how long to measure (default 5)\n"
		"  -W seconds  warm-up before that, not measured\n"
		"              (default 0.5)\n"
		"bulk [-c conns] [-n MiB]: stream the bytes; each connection\n"
		"         shuts down writing after its share and reads\n"
		"         the echo to EOF\n"
		"  -c conns    connections (default 1)\n"
		"  -n MiB      mebibytes in all (default 64)\n"
		"idle [-c conns] [-s bytes] [-w seconds] [-H seconds]: open\n"
		"         the connections at once, then one message on each\n"
		"  -c conns    connections (default 1000)\n"
		"  -s bytes    bytes of the message (default 16)\n"
		"  -w seconds  how long to wait for the connects, then for\n"
		"              the echoes (default 5)\n"
		"  -H seconds  then hold them open this long (default 0)\n"
		"Sizes take a K, M or G suffix; seconds may have a fraction.\n"
		"A connection that never gets an echo is starved: reported,\n"
		"not an error.  Exit status: 0 every echo was right,\n"
		"1 a mismatch, lost bytes or a connection error, 2 a usage\n"
		"error, 3 the deadline passed first.\n");
	exit(status);
}

/* Report a usage error and exit 2. */
static _Noreturn void
bad_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	usage(2);
}

/* Parse option opt's count or size, from min to max, or exit 2. */
static size_t
size_opt(int opt, const char *s, size_t min, size_t max)
{
	uint64_t n;

	if (parse_size(s, max, &n) == -1 || n < min)
		bad_usage("-%c: not a number from %zu to %zu: %s", opt, min,
			  max, s);
	return (size_t)n;
}

/* Parse a number of seconds, possibly with a fraction. */
static double
parse_seconds(int opt, const char *s, double min)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !(d >= min) || d > 86400)
		bad_usage("-%c: not a number of seconds (at least %g): %s", opt,
			  min, s);
	return d;
}

/* Parse the options, run the mode, report, and exit with its status. */
int
main(int argc, char *argv[])
{
	const char *modes[] = {"pingpong", "bulk", "idle"};
	const char *mode_opts[] = {"c:d:hP:s:W:", "c:hn:", "c:hH:s:w:"};
	uint64_t start = now_ns();
	size_t i;
	int ch;

	/* "+": options before the mode are ours; the mode's come after it. */
	while ((ch = getopt(argc, argv, "+a:hp:T:")) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 'h':
			usage(0);
			break;
		case 'p':
			port = optarg;
			break;
		case 'T':
			limit_s = parse_seconds(ch, optarg, 0.1);
			break;
		default:
			usage(2);
		}
	}
	if (port == NULL)
		bad_usage("no port given (-p)");
	if (optind >= argc)
		bad_usage("no mode given");
	for (mode = PINGPONG; mode <= IDLE; mode++)
		if (strcmp(argv[optind], modes[mode]) == 0)
			break;
	if (mode > IDLE)
		bad_usage("unknown mode: %s", argv[optind]);

	/* Start getopt over on the mode's own options. */
	argc -= optind;
	argv += optind;
	optind = 1;
	while ((ch = getopt(argc, argv, mode_opts[mode])) != -1) {
		switch (ch) {
		case 'c':
			nconns = size_opt(ch, optarg, 1, 1 << 20);
			break;
		case 'd':
			duration_s = parse_seconds(ch, optarg, 0.01);
			break;
		case 'H':
			hold_s = parse_seconds(ch, optarg, 0);
			break;
		case 'h':
			usage(0);
			break;
		case 'n':
			bulk_mib = size_opt(ch, optarg, 1, 1 << 20);
			break;
		case 'P':
			inflight = size_opt(ch, optarg, 1, 1024);
			break;
		case 's':
			size = size_opt(ch, optarg, 1, 64 << 20);
			break;
		case 'W':
			warmup_s = parse_seconds(ch, optarg, 0);
			break;
		case 'w':
			wait_s = parse_seconds(ch, optarg, 0.01);
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc)
		bad_usage("unexpected argument: %s", argv[optind]);
	if (nconns == 0)
		nconns = mode == PINGPONG ? 10 : mode == BULK ? 1 : 1000;
	if (size == 0)
		size = mode == PINGPONG ? 64 : 16;
	if (mode == PINGPONG && warmup_s + duration_s >= limit_s)
		bad_usage("-W and -d add up to more than the deadline -T %g",
			  limit_s);
	if (mode == BULK && ((uint64_t)bulk_mib << 20) < nconns)
		bad_usage("fewer bytes than connections");

	raise_nofile(nconns);
	signal(SIGPIPE, SIG_IGN);
	deadline = start + (uint64_t)(limit_s * NSEC);
	if ((conns = calloc(nconns, sizeof(*conns))) == NULL)
		err(1, "calloc");
	for (i = 0; i < nconns; i++) {
		conns[i].fd = -1;
		conns[i].seed = payload_mix((uint64_t)getpid() << 24 ^ i);
	}
	if ((epfd = epoll_create1(0)) == -1)
		err(1, "epoll_create1");

	if (mode == PINGPONG)
		run_pingpong(start);
	else if (mode == BULK)
		run_bulk(start);
	else
		run_idle(start);

	for (i = 0; i < nconns; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	close(epfd);
	free(conns);
	return errors > 0 || mismatches > 0;
}
