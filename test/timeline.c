/*
 * timeline: run one chapter's fixed scenario against an echo server and
 * print every event with its time, one tab-separated line each, for
 * test/timeline.sh to draw.
 *
 * It starts the server itself (-p 0 -v), so that the server's log lines and
 * the clients' events are stamped on one clock: milliseconds since the
 * server said it was listening.  Every wait is bounded; the server is
 * stopped (SIGTERM, then SIGKILL) however the run ends.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <dirent.h>
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

#define MAX_CLIENTS 8
#define MSG_LEN	    16	       /* one echo is this many bytes */
#define START_MS    5000       /* the server must listen within this */
#define STOP_MS	    3000       /* and exit within this after SIGTERM */
#define FLOOD	    (64 << 20) /* what a non-reading client sends at most */

/* What a client does; see the scenarios below. */
enum kind {
	TALK,	/* a message every every_ms from start to stop, then EOF */
	HOLD,	/* one message, then silence until the server closes */
	NOREAD, /* one message read back, then send without reading */
};

/* One client of a scenario, and how far it has got. */
struct client {
	enum kind kind;
	long start, every, stop; /* ms */
	const char *name;
	int fd;
	int port; /* our local port: the server's log names it */
	long next;
	size_t sent, echoed, flooded;
	int shut, ended, reading;
};

/* A scenario: its clients, the server's extra flags, when to signal. */
struct scenario {
	const char *name;
	const char *flags[4];
	long signal_ms; /* -1: none; else SIGTERM then */
	long end_ms;
	int nclients;
	struct client c[MAX_CLIENTS];
};

/*
 * The chapters' lessons.  step1: four clients, one thread.  step3: two
 * workers, two clients that hold them silently and two that wait for the
 * 10 s timeout to free them.  step4: a busy, a quiet and a non-reading
 * client, then SIGTERM: the drain and its deadline.  step5: step3's four
 * clients on two threads, all served at once.
 */
#define C(k, st, ev, sp, nm)                                                   \
	{                                                                      \
		.kind = (k), .start = (st), .every = (ev), .stop = (sp),       \
		.name = (nm)                                                   \
	}
/* clang-format off */
static struct scenario scenarios[] = {
	{"step1", {NULL}, -1, 2300, 4,
	 {C(TALK, 0, 200, 2000, "client 1"),
	  C(TALK, 50, 200, 2000, "client 2"),
	  C(TALK, 100, 200, 2000, "client 3"),
	  C(TALK, 150, 200, 2000, "client 4")}},
	{"step3", {"-t", "2", NULL}, -1, 12000, 4,
	 {C(HOLD, 0, 0, 0, "client 1 (silent)"),
	  C(HOLD, 0, 0, 0, "client 2 (silent)"),
	  C(TALK, 300, 500, 11300, "client 3"),
	  C(TALK, 300, 500, 11300, "client 4")}},
	{"step4", {"-t", "4", NULL}, 1000, 2800, 3,
	 {C(TALK, 0, 20, 100000, "busy"),
	  C(HOLD, 0, 0, 0, "quiet"),
	  C(NOREAD, 0, 0, 0, "not reading")}},
	{"step5", {"-t", "2", NULL}, -1, 2300, 4,
	 {C(TALK, 0, 200, 2000, "client 1"),
	  C(TALK, 10, 200, 2000, "client 2"),
	  C(TALK, 20, 200, 2000, "client 3"),
	  C(TALK, 30, 200, 2000, "client 4")}},
};
/* clang-format on */

static struct timespec t0;
static pid_t server = -1;

/* Milliseconds since t0, on a clock that never jumps. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec - t0.tv_sec) * 1e3 + (ts.tv_nsec - t0.tv_nsec) / 1e6;
}

/* Print one event: time, row (0: the server), what, detail. */
static void
event(int row, const char *what, const char *detail)
{
	printf("%.1f\t%d\t%s\t%s\n", now(), row, what, detail ? detail : "");
	fflush(stdout);
}

/* Stop the server, bounded: SIGTERM, then SIGKILL. */
static void
stop_server(void)
{
	int status, i;

	if (server <= 0)
		return;
	kill(server, SIGTERM);
	for (i = 0; i < STOP_MS / 10; i++) {
		if (waitpid(server, &status, WNOHANG) == server) {
			server = -1;
			return;
		}
		poll(NULL, 0, 10);
	}
	kill(server, SIGKILL);
	waitpid(server, &status, 0);
	server = -1;
	warnx("the server ignored SIGTERM for %d ms: killed", STOP_MS);
}

/* The number of threads the server has now, or -1. */
static int
server_threads(void)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)server);
	if ((dir = opendir(path)) == NULL)
		return -1;
	while ((d = readdir(dir)) != NULL)
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* Connect to 127.0.0.1:port; the socket is non-blocking once connected. */
static int
dial(int port, int *local)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		err(1, "connect to 127.0.0.1 port %d", port);
	if (getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		err(1, "getsockname");
	*local = ntohs(sin.sin_port);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		err(1, "fcntl");
	return fd;
}

/* The client's connection ended: how, from the socket's error. */
static void
ended(struct scenario *s, int i, int error)
{
	struct client *c = &s->c[i];

	if (c->ended)
		return;
	c->ended = 1;
	event(i + 1,
	      error == ECONNRESET ? "reset"
	      : error		  ? "error"
				  : "eof",
	      error ? strerror(error) : NULL);
}

/* Read what arrived; an echo event for every whole message. */
static void
receive(struct scenario *s, int i)
{
	struct client *c = &s->c[i];
	char buf[4096], what[32];
	ssize_t n;

	for (;;) {
		if ((n = read(c->fd, buf, sizeof(buf))) == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				ended(s, i, errno);
			return;
		}
		if (n == 0) {
			ended(s, i, 0);
			return;
		}
		while (n > 0) {
			size_t part = MSG_LEN - c->echoed % MSG_LEN;

			part = (size_t)n < part ? (size_t)n : part;
			c->echoed += part;
			n -= (ssize_t)part;
			if (c->echoed % MSG_LEN == 0) {
				snprintf(what, sizeof(what), "%zu",
					 c->echoed / MSG_LEN);
				event(i + 1, "echo", what);
			}
		}
		if (c->kind == NOREAD && c->echoed >= MSG_LEN) {
			c->reading = 0;
			event(i + 1, "noread", "stops reading");
			return;
		}
	}
}

/* Send one message; a write error ends the client. */
static void
send_message(struct scenario *s, int i)
{
	struct client *c = &s->c[i];
	char msg[MSG_LEN];
	ssize_t n;

	memset(msg, 'a' + i, sizeof(msg));
	msg[MSG_LEN - 1] = '\n';
	if ((n = write(c->fd, msg, sizeof(msg))) == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			ended(s, i, errno);
		return;
	}
	c->sent += (size_t)n;
	event(i + 1, "send", NULL);
}

/* A non-reading client sends what the server takes, up to FLOOD bytes. */
static void
flood(struct scenario *s, int i)
{
	struct client *c = &s->c[i];
	static char buf[65536];
	char what[32];
	ssize_t n;

	while (c->flooded < FLOOD) {
		if ((n = write(c->fd, buf, sizeof(buf))) == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				ended(s, i, errno);
			break;
		}
		c->flooded += (size_t)n;
	}
	snprintf(what, sizeof(what), "%zu", c->flooded);
	event(i + 1, "flooded", what);
}

/* Match a server log line to a client by the port it names. */
static void
server_line(struct scenario *s, char *line)
{
	char port[16];
	int i, row = 0;

	for (i = 0; i < s->nclients; i++) {
		if (s->c[i].port == 0)
			continue;
		snprintf(port, sizeof(port), ":%d:", s->c[i].port);
		if (strstr(line, port) != NULL)
			row = i + 1;
	}
	event(row, "log", line);
}

/* Read the server's stderr; one log event per whole line. */
static int
read_log(struct scenario *s, int fd, char *buf, size_t *len, size_t size)
{
	ssize_t n;
	char *nl;

	if ((n = read(fd, buf + *len, size - 1 - *len)) <= 0)
		return n == -1 && errno == EAGAIN ? 1 : 0;
	*len += (size_t)n;
	buf[*len] = '\0';
	while ((nl = strchr(buf, '\n')) != NULL) {
		*nl = '\0';
		server_line(s, buf);
		*len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, *len + 1);
	}
	if (*len == size - 1) /* a line too long: take it as it is */
		*len = 0;
	return 1;
}

/* Start the server; return its port; its stderr is *logfd. */
static int
start_server(struct scenario *s, char **argv, int *logfd)
{
	char *args[32], line[256];
	int out[2], errp[2], i, n = 0, port = 0;
	size_t len = 0;
	double deadline;
	FILE *fp;

	args[n++] = argv[0];
	for (i = 1; argv[i] != NULL && n < 24; i++)
		args[n++] = argv[i];
	args[n++] = "-p";
	args[n++] = "0";
	args[n++] = "-v";
	for (i = 0; s->flags[i] != NULL; i++)
		args[n++] = (char *)s->flags[i];
	args[n] = NULL;
	if (pipe(out) == -1 || pipe(errp) == -1)
		err(1, "pipe");
	if ((server = fork()) == -1)
		err(1, "fork");
	if (server == 0) {
		dup2(out[1], 1);
		dup2(errp[1], 2);
		close(out[0]);
		close(out[1]);
		close(errp[0]);
		close(errp[1]);
		execv(args[0], args);
		err(127, "%s", args[0]);
	}
	close(out[1]);
	close(errp[1]);
	/* The "listening on" line, bounded; it starts the clock. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	deadline = START_MS;
	while (port == 0 && now() < deadline) {
		struct pollfd pfd = {.fd = out[0], .events = POLLIN};
		ssize_t r;

		if (poll(&pfd, 1, (int)(deadline - now()) + 1) <= 0)
			continue;
		if ((r = read(out[0], line + len, sizeof(line) - 1 - len)) <= 0)
			break;
		len += (size_t)r;
		line[len] = '\0';
		if (strchr(line, '\n') != NULL) {
			char *colon = strrchr(line, ':');

			if (strncmp(line, "listening on ", 13) != 0 ||
			    colon == NULL || (port = atoi(colon + 1)) <= 0)
				break;
		}
	}
	if (port <= 0) {
		stop_server();
		errx(1, "%s: no \"listening on\" line within %d ms", args[0],
		     START_MS);
	}
	/* Nothing else comes on stdout; let it go. */
	if ((fp = fdopen(out[0], "r")) != NULL)
		fclose(fp);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	*logfd = errp[0];
	fcntl(*logfd, F_SETFL, fcntl(*logfd, F_GETFL) | O_NONBLOCK);
	return port;
}

/* The client's next timed action, in ms, or -1. */
static long
next_action(struct client *c)
{
	if (c->ended || c->shut)
		return -1;
	if (c->fd < 0)
		return c->start;
	if (c->kind == TALK)
		return c->next;
	return -1;
}

/* Due actions: connect, send, finish sending, signal. */
static void
act(struct scenario *s, int port, int *signalled)
{
	char what[64];
	int i, n;

	for (i = 0; i < s->nclients; i++) {
		struct client *c = &s->c[i];

		if (c->fd < 0 && now() >= c->start) {
			c->fd = dial(port, &c->port);
			c->reading = 1;
			snprintf(what, sizeof(what), "127.0.0.1:%d", c->port);
			event(i + 1, "connect", what);
			send_message(s, i);
			c->next = c->start + c->every;
			continue;
		}
		if (c->kind != TALK || c->fd < 0 || c->ended || c->shut)
			continue;
		if (now() >= c->stop) {
			shutdown(c->fd, SHUT_WR);
			c->shut = 1;
			event(i + 1, "shut", NULL);
		} else if (now() >= c->next) {
			send_message(s, i);
			c->next += c->every;
		}
	}
	if (!*signalled && s->signal_ms >= 0 && now() >= s->signal_ms) {
		*signalled = 1;
		kill(server, SIGTERM);
		event(0, "signal", "SIGTERM");
	}
	if (!*signalled && s->c[s->nclients - 1].fd >= 0 &&
	    (n = server_threads()) > 0) {
		/* once every client is connected: the server's threads */
		static int said;

		if (!said) {
			said = 1;
			snprintf(what, sizeof(what), "%d", n);
			event(0, "threads", what);
		}
	}
}

/* Print the usage to stderr and exit with status. */
static _Noreturn void
usage(int status)
{
	size_t i;

	fprintf(stderr, "usage: timeline SCENARIO SERVER [ARGS...]\n"
			"  runs SERVER -p 0 -v [ARGS] with the scenario's "
			"flags and prints\n"
			"  \"ms<TAB>row<TAB>event<TAB>detail\" lines; "
			"scenarios:");
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		fprintf(stderr, " %s", scenarios[i].name);
	fprintf(stderr, "\n");
	exit(status);
}

/* Run the scenario until its end, then stop the server. */
int
main(int argc, char *argv[])
{
	struct scenario *s = NULL;
	struct pollfd pfd[MAX_CLIENTS + 1];
	char logbuf[4096];
	size_t loglen = 0, i;
	int port, logfd, signalled = 0, logopen = 1;

	if (argc < 3)
		usage(argc == 2 && strcmp(argv[1], "-h") == 0 ? 0 : 2);
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (strcmp(argv[1], scenarios[i].name) == 0)
			s = &scenarios[i];
	if (s == NULL) {
		warnx("unknown scenario: %s", argv[1]);
		usage(2);
	}
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < (size_t)s->nclients; i++)
		s->c[i].fd = -1;
	port = start_server(s, argv + 2, &logfd);
	printf("# scenario\t%s\n", s->name);
	for (i = 0; i < (size_t)s->nclients; i++)
		printf("# client\t%zu\t%s\n", i + 1, s->c[i].name);
	event(0, "listening", NULL);
	while (now() < s->end_ms) {
		long wake = s->end_ms, t;
		int n = 0, j;

		act(s, port, &signalled);
		if (s->signal_ms >= 0 && !signalled && s->signal_ms < wake)
			wake = s->signal_ms;
		for (j = 0; j < s->nclients; j++) {
			struct client *c = &s->c[j];

			if ((t = next_action(c)) >= 0 && t < wake)
				wake = t;
			if (c->fd < 0 || c->ended)
				continue;
			pfd[n].fd = c->fd;
			/* not reading: POLLERR and POLLHUP still come */
			pfd[n].events = c->reading ? POLLIN : 0;
			if (c->kind == NOREAD && !c->reading &&
			    c->flooded < FLOOD)
				pfd[n].events |= POLLOUT;
			n++;
		}
		pfd[n].fd = logopen ? logfd : -1;
		pfd[n].events = POLLIN;
		t = wake - (long)now();
		if (poll(pfd, (nfds_t)n + 1, t > 0 ? (int)t : 0) == -1 &&
		    errno != EINTR)
			err(1, "poll");
		for (j = 0, n = 0; j < s->nclients; j++) {
			struct client *c = &s->c[j];
			int e = 0;
			socklen_t len = sizeof(e);

			if (c->fd < 0 || c->ended)
				continue;
			if (pfd[n].revents & POLLIN)
				receive(s, j);
			else if (pfd[n].revents & (POLLERR | POLLHUP)) {
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e,
					   &len);
				ended(s, j, e);
			} else if (pfd[n].revents & POLLOUT)
				flood(s, j);
			n++;
		}
		if (pfd[n].revents & (POLLIN | POLLHUP))
			logopen = read_log(s, logfd, logbuf, &loglen,
					   sizeof(logbuf));
	}
	event(0, "end", NULL);
	stop_server();
	/* What the server logged while it stopped; it has exited. */
	fcntl(logfd, F_SETFL, fcntl(logfd, F_GETFL) & ~O_NONBLOCK);
	while (read_log(s, logfd, logbuf, &loglen, sizeof(logbuf)) > 0)
		;
	return 0;
}
