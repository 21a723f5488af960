/*
 * echoserver: a multi-threaded libevent echo server, one event base per thread.
 *
 * T worker threads each run one event base for their whole life and serve any
 * number of connections, as memcached does.  The echo is written with
 * read(2) and write(2) straight from the worker's buffer; libevent runs the
 * loops, the timers and the wakeups.  The main thread's loop accepts
 * connections and hands each socket to a worker, round robin, through that
 * worker's queue and a cross-thread wakeup; the worker creates the connection
 * on its own base, and no other thread touches it again.  SIGINT or SIGTERM
 * reaches sighandler() as an event and stops the accept loop; every
 * connection echoes what it owes and closes lingering on its worker's
 * thread, all by one deadline; the workers are joined and runServer()
 * returns 0.  Out of descriptors it pauses accepting; -i closes idle
 * clients and -c refuses clients over a limit, both lingering; and what the
 * kernel holds for a client that does not read is capped.
 */

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>

#ifdef __linux__
#include <linux/sockios.h> /* SIOCOUTQ */
#include <linux/tcp.h>	   /* TCP_NOTSENT_LOWAT, TCP_INFO */
#endif

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#define SERVER_ADDR    "127.0.0.1"
#define SERVER_PORT    "5555"
#define LISTEN_BACKLOG 4096
#define NUM_THREADS    8 /* if the number of online CPUs is unknown */

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

/*
 * A lingering close waits this long for the client's EOF (-i, -c), counted
 * from the close: what the client sends meanwhile does not move it.
 */
#define LINGER_SECONDS 2

/*
 * The descriptors the server needs besides its clients', measured on Linux
 * with libevent 2.1: OWN_FDS for the process (standard streams, the accept
 * loop's base, the listening socket), WORKER_FDS for each worker's base (its
 * epoll, wakeup and signal descriptors), and SPARE_FDS for the unforeseen (a
 * sanitizer's, a library's).  budget_descriptors() shares the rest of
 * RLIMIT_NOFILE out: -c served clients, refused clients lingering, and
 * sockets handed to a worker not yet picked up.
 */
#define OWN_FDS	   10
#define WORKER_FDS 4
#define SPARE_FDS  8

/*
 * Out of descriptors, accepting pauses until a connection closes; and, in
 * case a descriptor is freed otherwise (a raised limit), tries again after
 * this long.
 */
#define ACCEPT_RETRY_MS 100

/*
 * How much one read takes; the buffer is the worker's, not the client's.  A
 * bulk stream moves with less CPU per byte at 256 KiB than at 64 KiB.
 */
#define READ_SIZE (256 * 1024)

/*
 * What a client that does not read can make the kernel hold for it.  Its
 * receive buffer is capped at RCVBUF_CAP (the kernel doubles the value for
 * its bookkeeping).  Until it has taken UNCAP_TAKEN bytes of echo, echo
 * written but not yet sent stops at UNSENT_CAP (TCP_NOTSENT_LOWAT): a
 * write() then takes no more, and the rest waits in the process, where
 * HIGH_WATER bounds it.  After that the kernel sizes the send buffer itself,
 * as a bulk stream needs.
 */
#define RCVBUF_CAP  (256 * 1024)
#define UNSENT_CAP  (128 * 1024)
#define UNCAP_TAKEN (1024 * 1024)

struct worker;

/* One connected client; only its worker's thread touches it. */
typedef struct client {
	int fd;
	unsigned echo_end; /* -i: reset unless echo is taken by, now_ms() */
	struct worker *worker;
	struct event *read_ev;		/* persistent; its timeout is -i's */
	struct event *write_ev;		/* added only while echo waits */
	struct evbuffer *output_buffer; /* echo the socket did not take */
	int unacked; /* -i: echo sent, not yet acknowledged */
	/* Bit-fields: one word for the flags, so linger_end costs nothing. */
	unsigned reading : 1;	/* read_ev is added */
	unsigned closing : 1;	/* reading no more: finish once echoed */
	unsigned eof : 1;	/* the client sent EOF: nothing more comes */
	unsigned draining : 1;	/* shutting down: finish once it is quiet */
	unsigned lingering : 1; /* shut: discard until the client's EOF */
	unsigned refused : 1;	/* over -c: never echoed, not counted */
	unsigned capped : 1;	/* UNSENT_CAP is set: see client_cap() */
	long linger_end;	/* lingering: when to give up, in now_ms() */
	char peer[64];		/* "addr:port", for -v */
	TAILQ_ENTRY(client) entry;
} client_t;

/* One worker thread: its base, its clients, and the sockets handed to it. */
struct worker {
	pthread_t thread;
	int id;
	struct event_base *base;
	struct event *wakeup_ev;       /* the main thread makes it active */
	const struct timeval *idle_tv; /* -i; NULL: no idle timeout */

	pthread_mutex_t mutex; /* guards incoming and stopping */
	int *incoming;	       /* accepted sockets not yet picked up */
	size_t nincoming, incoming_cap;
	int stopping;

	/* Touched only by the worker's own thread. */
	TAILQ_HEAD(, client) clients;
	int nclients;
	int nrefused; /* refused clients lingering */
	int draining;
	char buf[READ_SIZE];
};

/* The accept loop's base, and the workers it hands connections to. */
static struct event_base *evbase_accept;
static struct worker *workers;
static struct addrinfo *listen_ai;
static const char *listen_addr = SERVER_ADDR, *listen_port = SERVER_PORT;
static int numThreads;
static int verbose;
static int idle_seconds;       /* -i; 0: never */
static int max_clients;	       /* -c; 0: no limit */
static int refused_linger_max; /* per worker: refused clients that linger */
static size_t incoming_max;    /* per worker: sockets not yet picked up */
static atomic_int nclients;    /* live clients, all workers */
static atomic_int exit_status; /* runServer()'s return */
static struct evconnlistener *listener; /* on evbase_accept */
static struct event *retry_ev;		/* resumes a paused listener */
static atomic_int accept_paused;	/* out of descriptors: not accepting */
static long pause_start, pause_last;	/* accept loop's, in now_ms() */
static int pause_tries; /* accept loop's: accept()s that failed */

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

/* Lock a mutex; it fails only on a bug, so stop the server if it does. */
static void
mutex_lock(pthread_mutex_t *m)
{
	int rc;

	if ((rc = pthread_mutex_lock(m)) != 0)
		errx(1, "pthread_mutex_lock: %s", strerror(rc));
}

/* Unlock a mutex; it fails only on a bug, so stop the server if it does. */
static void
mutex_unlock(pthread_mutex_t *m)
{
	int rc;

	if ((rc = pthread_mutex_unlock(m)) != 0)
		errx(1, "pthread_mutex_unlock: %s", strerror(rc));
}

/* The time on CLOCK_MONOTONIC, which every Linux has. */
static void
monotonic_now(struct timespec *ts)
{
	if (clock_gettime(CLOCK_MONOTONIC, ts) == -1)
		err(1, "clock_gettime");
}

/* Milliseconds on CLOCK_MONOTONIC. */
static long
now_ms(void)
{
	struct timespec ts;

	monotonic_now(&ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Make close() send a reset instead of a FIN: SO_LINGER, no time. */
static void
reset_on_close(client_t *client)
{
	struct linger reset = {1, 0};

	/* Should it fail, close() sends a FIN: logged, nothing more to do. */
	if (setsockopt(client->fd, SOL_SOCKET, SO_LINGER, &reset,
		       sizeof(reset)) == -1)
		logx("%s: setsockopt SO_LINGER: %s", client->peer,
		     strerror(errno));
}

/*
 * Close a client's connection and free everything that belongs to it.  A
 * worker that is shutting down stops its loop once its last client is gone.
 * A connection cut with echo still owed ends with a reset, not a FIN: a FIN
 * would tell the client that it has had all its echo.
 */
static void
closeAndFreeClient(client_t *client)
{
	struct worker *w = client->worker;

	if (verbose)
		logx("worker %d: %s: closed", w->id, client->peer);
	TAILQ_REMOVE(&w->clients, client, entry);
	if (client->read_ev != NULL)
		event_free(client->read_ev);
	if (client->write_ev != NULL)
		event_free(client->write_ev);
	if (client->output_buffer != NULL &&
	    evbuffer_get_length(client->output_buffer) > 0)
		reset_on_close(client);
	/* Nothing to do if it fails: the descriptor is released anyway. */
	close(client->fd);
	/* A descriptor is free: accept at once, not when the pause ends. */
	if (atomic_load(&accept_paused))
		event_active(retry_ev, EV_TIMEOUT, 0);
	if (client->output_buffer != NULL)
		evbuffer_free(client->output_buffer);
	if (!client->refused)
		atomic_fetch_sub(&nclients, 1);
	else if (client->lingering)
		w->nrefused--;
	free(client);
	/* It fails only without a base. */
	if (--w->nclients == 0 && w->draining)
		event_base_loopbreak(w->base);
}

/*
 * Start (or restart, with a new timeout) reading from the client: while it
 * lingers, until its linger_end; while draining, a quiet moment ends it;
 * else the idle timeout, if any.  Returns -1 if it could not, and closed the
 * client: it would never be read again.
 */
static int
client_read(client_t *client)
{
	static const struct timeval quiet = {0, DRAIN_QUIET_MS * 1000};
	const struct timeval *tv = client->worker->idle_tv;
	struct timeval left;
	long ms;

	if (client->lingering) {
		/* What is left of it: see echo_read_cb(). */
		if ((ms = client->linger_end - now_ms()) <= 0) {
			closeAndFreeClient(client);
			return -1;
		}
		left.tv_sec = ms / 1000;
		left.tv_usec = ms % 1000 * 1000;
		tv = &left;
	} else if (client->draining)
		tv = &quiet;
	if (event_add(client->read_ev, tv) == -1) {
		logx("%s: cannot watch the connection", client->peer);
		closeAndFreeClient(client);
		return -1;
	}
	client->reading = 1;
	return 0;
}

/* Read no more from the client, until client_read() again. */
static void
client_stop_reading(client_t *client)
{
	event_del(client->read_ev); /* fails only on an event never made */
	client->reading = 0;
}

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
	client->linger_end = now_ms() + LINGER_SECONDS * 1000;
	if (client->refused)
		client->worker->nrefused++;
	event_del(client->write_ev); /* fails only on an event never made */
	/* Its timeout goes too: event_add() with none keeps the old one. */
	client_stop_reading(client);
	if (shutdown(client->fd, SHUT_WR) == -1) {
		closeAndFreeClient(client);
		return;
	}
	client_read(client);
}

/*
 * Read no more and close once the echo is sent: at once if the client sent
 * its EOF, else lingering, since it may still send.
 */
static void
client_finish(client_t *client, int eof)
{
	client->eof = eof;
	if (client->output_buffer == NULL ||
	    evbuffer_get_length(client->output_buffer) == 0) {
		if (eof)
			closeAndFreeClient(client);
		else
			client_linger(client);
		return;
	}
	client->closing = 1;
	client_stop_reading(client);
}

/*
 * The bytes sent on socket fd that its client has not acknowledged yet.  Its
 * kernel may hold megabytes of them: what was written is not what was taken.
 * Should it fail, or where the system cannot tell (SIOCOUTQ is Linux's), 0:
 * the client then looks as if it took them.
 */
static int
echo_unacked(int fd)
{
#ifdef SIOCOUTQ
	int outq;

	return ioctl(fd, SIOCOUTQ, &outq) == -1 ? 0 : outq;
#else
	(void)fd;
	return 0;
#endif
}

/*
 * Bound what the kernel holds for the client should it never read: its
 * receive buffer for good, echo not yet sent until client_uncap().  A
 * failure costs memory, not the echo: the client is served all the same.
 */
static void
client_cap(client_t *client)
{
	int rcvbuf = RCVBUF_CAP, unsent = UNSENT_CAP;

	if (setsockopt(client->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		       sizeof(rcvbuf)) == -1)
		logx("%s: setsockopt SO_RCVBUF: %s", client->peer,
		     strerror(errno));
#ifdef __linux__
	if (setsockopt(client->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &unsent,
		       sizeof(unsent)) == -1)
		logx("%s: setsockopt TCP_NOTSENT_LOWAT: %s", client->peer,
		     strerror(errno));
	else
		client->capped = 1;
#else
	(void)unsent; /* TCP_NOTSENT_LOWAT is Linux's */
#endif
}

/*
 * Lift UNSENT_CAP once the client has taken UNCAP_TAKEN bytes of echo: its
 * side has acknowledged them, read or held in its own buffers.  A bulk
 * stream then moves with fewer system calls, the kernel queueing megabytes.
 */
static void
client_uncap(client_t *client)
{
#ifdef __linux__
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int unsent = 0; /* the system's default: no cap */

	if (getsockopt(client->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) +
			    sizeof(ti.tcpi_bytes_acked) ||
	    ti.tcpi_bytes_acked < UNCAP_TAKEN)
		return;
	if (setsockopt(client->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &unsent,
		       sizeof(unsent)) == 0)
		client->capped = 0;
#endif
}

/*
 * -i, echo waiting: wait for the socket until the client's deadline, which
 * only the client taking echo moves (see echo_write_cb()).  A write callback
 * restarts libevent's timeout whatever moved, so set what is left of it.
 * Returns -1 if the deadline has passed or it could not, and closed the
 * client, with a reset: echo is owed.
 */
static int
client_echo_deadline(client_t *client)
{
	struct timeval left;
	long ms;

	/* Kept in 32 bits: -i is under a day, 2^31 ms is 24 days. */
	if ((ms = (int)(client->echo_end - (unsigned)now_ms())) > 0) {
		left.tv_sec = ms / 1000;
		left.tv_usec = ms % 1000 * 1000;
		if (event_add(client->write_ev, &left) == 0)
			return 0;
	}
	if (verbose)
		logx("%s: not reading", client->peer);
	closeAndFreeClient(client);
	return -1;
}

/*
 * The hot path: send what just arrived straight back with write(2), and keep
 * in an evbuffer only what the socket would not take.  Once anything waits
 * there, later data queues behind it so that the echo stays in order.
 */
static void
client_echo(client_t *client, const char *data, size_t len)
{
	ssize_t n = 0;
	int queued = client->output_buffer != NULL &&
		     evbuffer_get_length(client->output_buffer) > 0;

	if (!queued) {
		if ((n = write(client->fd, data, len)) == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR) {
				if (verbose)
					logx("%s: %s", client->peer,
					     strerror(errno));
				closeAndFreeClient(client);
				return;
			}
			n = 0;
		}
		if ((size_t)n == len)
			return;
	}
	/* Made on first need: most clients never need one. */
	if (client->output_buffer == NULL &&
	    (client->output_buffer = evbuffer_new()) == NULL) {
		logx("evbuffer_new failed");
		closeAndFreeClient(client);
		return;
	}
	/*
	 * Watched from when echo first waits; then echo_write_cb() restarts
	 * the timeout each time the client has taken some.  What the client
	 * sends meanwhile must not restart it, or it could trickle a byte now
	 * and then and never read.
	 */
	if (!queued && client->worker->idle_tv != NULL) {
		client->echo_end = (unsigned)(now_ms() + idle_seconds * 1000L);
		client->unacked = echo_unacked(client->fd);
	}
	if (evbuffer_add(client->output_buffer, data + n, len - (size_t)n) ==
		    -1 ||
	    (!queued &&
	     event_add(client->write_ev, client->worker->idle_tv) == -1)) {
		logx("%s: cannot queue the echo", client->peer);
		closeAndFreeClient(client);
		return;
	}
	/* Backpressure: the client is not reading, so stop reading it. */
	if (evbuffer_get_length(client->output_buffer) >= HIGH_WATER)
		client_stop_reading(client);
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

/* Data, EOF or silence from the client. */
static void
echo_read_cb(evutil_socket_t fd, short ev, void *arg)
{
	client_t *client = arg;
	struct worker *w = client->worker;
	size_t room = sizeof(w->buf);
	ssize_t n;

	if ((ev & EV_TIMEOUT) && !client->lingering && input_waiting(fd))
		ev = EV_READ;
	if (ev & EV_TIMEOUT) {
		if (client->lingering) {
			/* No EOF within the bound: give up on it. */
			closeAndFreeClient(client);
			return;
		}
		/* Idle for -i seconds, or quiet while shutting down. */
		if (verbose && !client->draining)
			logx("worker %d: %s: idle", w->id, client->peer);
		client_finish(client, 0);
		return;
	}
	/*
	 * Never more than the room left under the high-water mark: a client
	 * that does not read makes us hold that much of its echo, no more.
	 * Reading stops at the mark, so the room is never 0 here.
	 */
	if (client->output_buffer != NULL &&
	    HIGH_WATER - evbuffer_get_length(client->output_buffer) < room)
		room = HIGH_WATER - evbuffer_get_length(client->output_buffer);
	if ((n = read(fd, w->buf, room)) == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		if (verbose)
			logx("%s: %s", client->peer, strerror(errno));
		closeAndFreeClient(client);
		return;
	}
	if (n == 0) {
		/*
		 * A half-close is not a hang-up: the client may still be
		 * reading.  Echo the rest and close only when it is sent.  A
		 * lingering client's EOF is what we waited for.
		 */
		if (client->lingering)
			closeAndFreeClient(client);
		else
			client_finish(client, 1);
		return;
	}
	if (client->lingering) {
		/*
		 * Discarded: we have said we send nothing more.  libevent
		 * has just restarted the timeout; put back what is left of
		 * it, or a client that trickles would linger for ever.
		 */
		client_read(client);
		return;
	}
	client_echo(client, w->buf, (size_t)n);
}

/* The socket takes data again: send what waits, then resume or close. */
static void
echo_write_cb(evutil_socket_t fd, short ev, void *arg)
{
	client_t *client = arg;
	int idle = client->worker->idle_tv != NULL, unacked = 0, n;
	size_t left;

	if (ev & EV_TIMEOUT) {
		/*
		 * Nothing of the echo was read for -i seconds.  A reset says
		 * so; a FIN after a cut echo would look like a clean end.
		 */
		if (verbose)
			logx("%s: not reading", client->peer);
		closeAndFreeClient(client);
		return;
	}
	if (client->capped)
		client_uncap(client);
	/*
	 * The socket takes more when the client took some, but also when its
	 * kernel grew the buffer: only fewer bytes unacknowledged than after
	 * our last write say that the client took echo.
	 */
	if (idle && (unacked = echo_unacked(fd)) < client->unacked)
		client->echo_end = (unsigned)(now_ms() + idle_seconds * 1000L);
	if ((n = evbuffer_write(client->output_buffer, fd)) == -1 &&
	    errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		if (verbose)
			logx("%s: %s", client->peer, strerror(errno));
		closeAndFreeClient(client);
		return;
	}
	if ((left = evbuffer_get_length(client->output_buffer)) == 0) {
		event_del(client->write_ev); /* fails only on an event never
						made */
		if (client->closing) {
			client->closing = 0;
			if (client->eof)
				closeAndFreeClient(client);
			else
				client_linger(client);
			return;
		}
	}
	if (left > 0 && idle) {
		client->unacked = unacked + (n > 0 ? n : 0);
		if (client_echo_deadline(client) == -1)
			return;
	}
	if (!client->reading && !client->closing && left <= LOW_WATER)
		client_read(client);
}

/*
 * Shutdown: go on echoing until the client has been quiet for a moment, then
 * close lingering once the echo is sent.
 */
static void
client_drain(client_t *client)
{
	client->draining = 1;
	/* The quiet period replaces the read timeout. */
	if (client->reading && !client->lingering)
		client_read(client);
}

/*
 * Shutdown, on the worker's own thread: drain every client.  The loop stops
 * at the deadline whatever happens, and worker_main() closes at once every
 * connection still open then.
 */
static void
worker_drain(struct worker *w)
{
	struct timeval left = {0, 0};
	struct timespec now;
	client_t *client, *next;
	long ns;

	w->draining = 1;
	monotonic_now(&now);
	ns = (drain_deadline.tv_sec - now.tv_sec) * 1000000000L +
	     (drain_deadline.tv_nsec - now.tv_nsec);
	if (ns > 0) {
		left.tv_sec = ns / 1000000000L;
		left.tv_usec = ns % 1000000000L / 1000;
	}
	if (event_base_loopexit(w->base, &left) == -1) {
		/* Without the deadline the drain could last for ever. */
		logx("worker %d: event_base_loopexit failed", w->id);
		event_base_loopbreak(w->base); /* fails only without a base */
		return;
	}
	for (client = TAILQ_FIRST(&w->clients); client != NULL; client = next) {
		next = TAILQ_NEXT(client, entry);
		client_drain(client);
	}
	if (w->nclients == 0)
		event_base_loopbreak(w->base); /* fails only without a base */
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
 * Count one more client, unless -c are there already; return 0 then.  The
 * count never goes over -c, not even for a moment: a client counted and
 * taken back could make another worker refuse one under the limit.
 */
static int
client_count_in(void)
{
	int n = atomic_load(&nclients);

	do {
		if (max_clients > 0 && n >= max_clients)
			return 0;
	} while (!atomic_compare_exchange_weak(&nclients, &n, n + 1));
	return 1;
}

/*
 * On the worker's thread: create the connection for a handed-over socket, on
 * the worker's own base.  One over the -c limit is closed at once, without
 * an echo: lingering, or with a reset if refused_linger_max already linger.
 */
static void
client_new(struct worker *w, int fd)
{
	struct sockaddr_storage client_addr;
	socklen_t client_len = sizeof(client_addr);
	client_t *client;

	if ((client = calloc(1, sizeof(*client))) == NULL) {
		logx("calloc: %s", strerror(errno));
		close(fd);
		return;
	}
	client->fd = fd;
	client->worker = w;
	client->refused = !client_count_in();
	TAILQ_INSERT_TAIL(&w->clients, client, entry);
	w->nclients++;
	if (verbose &&
	    getpeername(fd, (struct sockaddr *)&client_addr, &client_len) == 0)
		format_addr((struct sockaddr *)&client_addr, client_len,
			    client->peer, sizeof(client->peer));
	client->read_ev = event_new(w->base, fd, EV_READ | EV_PERSIST,
				    echo_read_cb, client);
	client->write_ev = event_new(w->base, fd, EV_WRITE | EV_PERSIST,
				     echo_write_cb, client);
	if (client->read_ev == NULL || client->write_ev == NULL) {
		logx("event_new failed");
		closeAndFreeClient(client);
		return;
	}
	if (verbose)
		logx("worker %d: %s: %s", w->id, client->peer,
		     client->refused ? "over the limit" : "connected");
	if (client->refused) {
		if (w->nrefused < refused_linger_max)
			client_linger(client);
		else {
			reset_on_close(client);
			closeAndFreeClient(client);
		}
		return;
	}
	client_cap(client);
	if (client_read(client) == -1)
		return;
	/* A client that arrives during the drain is drained too. */
	if (w->draining)
		client_drain(client);
}

/* The main thread woke us: pick up new sockets, or start shutting down. */
static void
wakeup_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct worker *w = arg;
	int *incoming, stopping;
	size_t i, n;

	(void)fd;
	(void)ev;
	mutex_lock(&w->mutex);
	incoming = w->incoming;
	n = w->nincoming;
	w->incoming = NULL;
	w->nincoming = w->incoming_cap = 0;
	stopping = w->stopping;
	mutex_unlock(&w->mutex);

	/* The queue has room again: see on_accept(). */
	if (n > 0 && atomic_load(&accept_paused))
		event_active(retry_ev, EV_TIMEOUT, 0);
	for (i = 0; i < n; i++)
		client_new(w, incoming[i]);
	free(incoming);
	if (stopping && !w->draining)
		worker_drain(w);
}

static void server_fail(const char *what);

/*
 * The body of a worker thread: one loop for all its clients, kept running
 * while it has none; then it closes whatever the deadline cut short.  A loop
 * that fails stops the server: the main thread would go on handing it
 * sockets that no one serves.
 */
static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	if (event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY) == -1)
		server_fail("a worker's event_base_loop");
	while (!TAILQ_EMPTY(&w->clients))
		closeAndFreeClient(TAILQ_FIRST(&w->clients));
	return NULL;
}

/* On the main thread: queue a socket for worker w and wake its loop. */
static int
worker_hand_off(struct worker *w, int fd)
{
	int *grown, full;
	size_t cap;

	mutex_lock(&w->mutex);
	if (w->nincoming == w->incoming_cap) {
		cap = w->incoming_cap ? 2 * w->incoming_cap : 16;
		if ((grown = realloc(w->incoming, cap * sizeof(*grown))) ==
		    NULL) {
			mutex_unlock(&w->mutex);
			return -1;
		}
		w->incoming = grown;
		w->incoming_cap = cap;
	}
	w->incoming[w->nincoming++] = fd;
	full = w->nincoming >= incoming_max;
	mutex_unlock(&w->mutex);
	/* libevent locks the base and wakes its loop: see runServer(). */
	event_active(w->wakeup_ev, EV_READ, 0);
	return full;
}

/* On the main thread: tell worker w to drain and stop, and wake it. */
static void
worker_stop(struct worker *w)
{
	mutex_lock(&w->mutex);
	w->stopping = 1;
	mutex_unlock(&w->mutex);
	event_active(w->wakeup_ev, EV_READ, 0);
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
	int rc;

	for (i = 0; i < w->nincoming; i++)
		close(w->incoming[i]);
	free(w->incoming);
	event_free(w->wakeup_ev);
	event_base_free(w->base);
	if ((rc = pthread_mutex_destroy(&w->mutex)) != 0)
		errx(1, "pthread_mutex_destroy: %s", strerror(rc));
}

/* The listener accepted a client: hand it to the next worker in turn. */
static void
on_accept(struct evconnlistener *l, evutil_socket_t client_fd,
	  struct sockaddr *sa, int len, void *arg)
{
	static const struct timeval retry = {0, ACCEPT_RETRY_MS * 1000};
	static unsigned int next;
	struct worker *w = &workers[next++ % (unsigned int)numThreads];
	int rc, room;

	(void)sa;
	(void)len;
	(void)arg;
	/* A second without running out ends the pause: say what it cost. */
	if (pause_tries > 0 && now_ms() - pause_last >= 1000) {
		logx("accepting again: %d accept()s out of descriptors over "
		     "%ld ms",
		     pause_tries, pause_last - pause_start);
		pause_tries = 0;
	}
	/* From here on only the worker touches the connection. */
	if ((rc = worker_hand_off(w, client_fd)) == -1) {
		logx("cannot queue a connection");
		close(client_fd);
	}
	/*
	 * That worker's queue is full: accept no more until it picks the
	 * queue up (wakeup_cb()), or a connection closes; the descriptors
	 * queued sockets hold are bounded too.
	 */
	if (rc != 1)
		return;
	atomic_store(&accept_paused, 1);
	if (evconnlistener_disable(l) == -1 ||
	    event_add(retry_ev, &retry) == -1) {
		server_fail("pausing the listener");
		return;
	}
	/* Picked up before the pause was set, the worker did not resume it. */
	mutex_lock(&w->mutex);
	room = w->nincoming < incoming_max;
	mutex_unlock(&w->mutex);
	if (room)
		event_active(retry_ev, EV_TIMEOUT, 0);
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
 * Something the server needs failed at run time: stop the way a signal does,
 * so that every connection is still drained, but return 1.
 */
static void
server_fail(const char *what)
{
	logx("%s failed; stopping", what);
	atomic_store(&exit_status, 1);
	killServer();
}

/*
 * accept() failed.  Out of descriptors the client stays in the backlog, the
 * listening socket stays readable, and the loop would call accept() again at
 * once, forever: stop listening until a connection closes.
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
	/*
	 * One line for the pause, however often accepting stops and starts
	 * while it lasts: see on_accept().
	 */
	pause_last = now_ms();
	if (pause_tries++ == 0) {
		pause_start = pause_last;
		logx("accept: %s: pausing until a connection closes",
		     strerror(e));
	}
	atomic_store(&accept_paused, 1);
	if (evconnlistener_disable(l) == -1 ||
	    event_add(retry_ev, &retry) == -1)
		server_fail("pausing the listener");
}

/*
 * A connection closed (a worker made this active), or the pause after running
 * out of descriptors is over: accept again.
 */
static void
retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	atomic_store(&accept_paused, 0);
	if (evconnlistener_enable(listener) == -1)
		server_fail("resuming the listener");
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
	/* Whoever waits for the line must get it, or learn that it did not. */
	if (printf("listening on %s\n", where) < 0 || fflush(stdout) == EOF)
		err(1, "stdout");
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
		"              CPUs, %d)\n"
		"  -v          log connections and disconnections to stderr\n"
		"  -h          show this help\n",
		SERVER_ADDR, SERVER_PORT, numThreads);
}

/* A usage error: say what was wrong, then the usage, and exit 2. */
static void
usage_error(const char *what, const char *arg)
{
	warnx("%s: '%s'", what, arg);
	usage();
	exit(2);
}

/* Parse the options and resolve the address; exit 2 on a usage error. */
static void
parse_options(int argc, char *argv[], const char **addr, const char **port)
{
	struct addrinfo hints;
	int ch, rc;

	while ((ch = getopt(argc, argv, "a:c:hi:p:t:v")) != -1) {
		switch (ch) {
		case 'a':
			*addr = optarg;
			break;
		case 'c':
			if ((max_clients = (int)parse_number(optarg, 1 << 30)) <
			    0)
				usage_error("invalid connection limit", optarg);
			break;
		case 'h':
			usage();
			exit(0);
		case 'i':
			if ((idle_seconds = (int)parse_number(optarg, 86400)) <
			    0)
				usage_error("invalid idle timeout", optarg);
			break;
		case 'p':
			*port = optarg;
			if (parse_number(optarg, 65535) == -1)
				usage_error("invalid port", optarg);
			break;
		case 't':
			if ((numThreads = (int)parse_number(optarg, 1024)) < 1)
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
	if ((rc = getaddrinfo(*addr, *port, &hints, &listen_ai)) != 0) {
		warnx("invalid address %s: %s", *addr, gai_strerror(rc));
		usage();
		exit(2);
	}
}

/*
 * The main thread, once its loop is over: a second SIGINT or SIGTERM changes
 * nothing, and once the signal events are freed, one would end the process
 * by its default action, not with runServer()'s status.  Blocked, it waits,
 * and exit() drops it; the workers' threads are joined by then.
 */
static void
block_stop_signals(void)
{
	sigset_t set;
	int rc;

	if (sigemptyset(&set) == -1 || sigaddset(&set, SIGINT) == -1 ||
	    sigaddset(&set, SIGTERM) == -1)
		err(1, "sigaddset");
	if ((rc = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0)
		errx(1, "pthread_sigmask: %s", strerror(rc));
}

/*
 * Share the descriptors RLIMIT_NOFILE allows out, before any base is made:
 * exit 1 if the threads alone need more; lower -c, saying so, if it takes
 * more than half of what is left; and give the rest, in halves, to refused
 * clients lingering and to sockets queued for a worker, on every worker.
 */
static void
budget_descriptors(void)
{
	struct rlimit rl;
	long limit, room, spare;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		err(1, "getrlimit");
	limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX
			? INT_MAX
			: (long)rl.rlim_cur;
	room = limit - OWN_FDS - SPARE_FDS - (long)WORKER_FDS * numThreads;
	if (room < 2L * numThreads)
		errx(1,
		     "%d threads need %ld descriptors, and the limit is %ld "
		     "(ulimit -n)",
		     numThreads, limit - room + 2L * numThreads, limit);
	if (max_clients > room / 2) {
		warnx("-c %d: %ld descriptors (ulimit -n) allow %ld; -c %ld",
		      max_clients, limit, room / 2, room / 2);
		max_clients = (int)(room / 2);
	}
	spare = max_clients > 0 ? room - max_clients : room / 2;
	refused_linger_max = (int)(spare / 2 / numThreads);
	incoming_max = (size_t)(spare / 2 / numThreads);
	if (incoming_max < 1)
		incoming_max = 1;
}

/*
 * Listen, start the workers and run the accept loop until killServer() ends
 * it; then free what the main thread owns and return 0, or 1 if
 * server_fail() ended it.
 */
static int
runServer(void)
{
	struct event *ev_sigint, *ev_sigterm;
	int i, listen_fd, rc;

	/* A client that vanishes must cost a write error, not the process. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		err(1, "signal");
	budget_descriptors();

	/*
	 * Before any base exists: the main thread wakes the workers' bases,
	 * and that needs their locks.
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
	if ((workers = calloc((size_t)numThreads, sizeof(*workers))) == NULL)
		err(1, "calloc");
	for (i = 0; i < numThreads; i++)
		worker_start(&workers[i], i);
	/* Backlog 0: listen_on() has called listen() with a large one. */
	listener = evconnlistener_new(evbase_accept, on_accept, NULL,
				      LEV_OPT_CLOSE_ON_FREE, 0, listen_fd);
	retry_ev = evtimer_new(evbase_accept, retry_cb, NULL);
	if (listener == NULL || retry_ev == NULL)
		errx(1, "cannot watch the listening socket");
	evconnlistener_set_error_cb(listener, accept_error_cb);
	print_listening(listen_fd);

	if (event_base_dispatch(evbase_accept) == -1)
		errx(1, "event_base_dispatch failed");
	block_stop_signals();

	/*
	 * Accept no one new, then ask every worker to finish its connections,
	 * all by one deadline.  Each worker drains on its own thread.
	 */
	evconnlistener_free(listener);
	monotonic_now(&drain_deadline);
	drain_deadline.tv_sec += DRAIN_SECONDS;
	if (verbose)
		logx("Stopping workers.");
	for (i = 0; i < numThreads; i++)
		worker_stop(&workers[i]);

	/* Wait for every worker before freeing what they use, libevent last. */
	for (i = 0; i < numThreads; i++) {
		if ((rc = pthread_join(workers[i].thread, NULL)) != 0)
			errx(1, "pthread_join: %s", strerror(rc));
		worker_free(&workers[i]);
	}
	free(workers);
	/* Only now: a worker's closing connection may make it active. */
	event_free(retry_ev);
	event_free(ev_sigterm);
	event_free(ev_sigint);
	event_base_free(evbase_accept);
	libevent_global_shutdown();
	return atomic_load(&exit_status);
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
