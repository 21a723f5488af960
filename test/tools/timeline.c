/*
 * timeline: run one chapter's fixed scenario against an echo server and
 * print every event with its time, one tab-separated line each, for
 * test/proofs/timeline.sh to draw.
 *
 * It starts the server itself (-p 0 -v), so that the server's log lines and
 * the clients' events are stamped on one clock: milliseconds since the
 * server said it was listening.  Every wait is bounded; the server is
 * stopped (SIGTERM, then SIGKILL) however the run ends.
 */

#include <sys/types.h>
#include <sys/resource.h>
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

#define MAX_CLIENTS  64
#define MSG_LEN	     16		/* one echo is this many bytes */
#define START_MS     5000	/* the server must listen within this */
#define STOP_MS	     3000	/* and exit within this after SIGTERM */
#define FLOOD	     (64 << 20) /* what a non-reading client sends at most */
#define FILL_WAIT_MS 2000	/* a held client not echoed in this: full */

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
	int row; /* of the picture: several clients may share one */
	int fd;
	int port; /* our local port: the server's log names it */
	long next;
	size_t sent, echoed, flooded;
	int shut, ended, reading;
};

/*
 * A scenario: its clients, the server's extra flags, when to signal.  From
 * fill ms on (0: never), held clients take every descriptor the server has
 * (its limit is nofile); the other clients' times, release_ms and end_ms
 * then count from the pause, and at release_ms the held clients close.
 */
struct scenario {
	const char *name;
	const char *flags[4];
	long signal_ms; /* -1: none; else SIGTERM then */
	long end_ms;
	int nclients;
	struct client c[MAX_CLIENTS];
	int fill, nofile;
	long release_ms;
};

/*
 * The chapters' lessons.  step1: four clients, one thread.  step3: two
 * workers, two clients that hold them silently and two that wait for the
 * 10 s timeout to free them.  step4: a busy, a quiet and a non-reading
 * client, then SIGTERM: the drain and its deadline.  step5: step3's four
 * clients on two threads, all served at once.  step5-emfile: at 32
 * descriptors, held clients take them all; three clients arrive during the
 * accept pause, 0.3 s apart, and are served once the held ones close.
 */
#define C(k, st, ev, sp, nm)                                                   \
	{                                                                      \
		.kind = (k), .start = (st), .every = (ev), .stop = (sp),       \
		.name = (nm)                                                   \
	}
/* clang-format off */
static struct scenario scenarios[] = {
	{.name = "step1", .flags = {NULL}, .signal_ms = -1, .end_ms = 2300,
	 .nclients = 4,
	 .c = {C(TALK, 0, 200, 2000, "client 1"),
	       C(TALK, 50, 200, 2000, "client 2"),
	       C(TALK, 100, 200, 2000, "client 3"),
	       C(TALK, 150, 200, 2000, "client 4")}},
	{.name = "step3", .flags = {"-t", "2", NULL}, .signal_ms = -1,
	 .end_ms = 12000, .nclients = 4,
	 .c = {C(HOLD, 0, 0, 0, "client 1 (silent)"),
	       C(HOLD, 0, 0, 0, "client 2 (silent)"),
	       C(TALK, 300, 500, 11300, "client 3"),
	       C(TALK, 300, 500, 11300, "client 4")}},
	{.name = "step4", .flags = {"-t", "4", NULL}, .signal_ms = 1000,
	 .end_ms = 2800, .nclients = 3,
	 .c = {C(TALK, 0, 20, 100000, "busy"),
	       C(HOLD, 0, 0, 0, "quiet"),
	       C(NOREAD, 0, 0, 0, "not reading")}},
	{.name = "step5", .flags = {"-t", "2", NULL}, .signal_ms = -1,
	 .end_ms = 2300, .nclients = 4,
	 .c = {C(TALK, 0, 200, 2000, "client 1"),
	       C(TALK, 10, 200, 2000, "client 2"),
	       C(TALK, 20, 200, 2000, "client 3"),
	       C(TALK, 30, 200, 2000, "client 4")}},
	{.name = "step5-emfile", .flags = {"-t", "2", NULL}, .signal_ms = -1,
	 .end_ms = 2500, .nclients = 3,
	 .c = {C(TALK, 300, 200, 2200, "arrives in the pause"),
	       C(TALK, 600, 200, 2200, "arrives in the pause"),
	       C(TALK, 900, 200, 2200, "arrives in the pause")},
	 .fill = 200, .nofile = 32, .release_ms = 1500},
};
/* clang-format on */

static struct timespec t0;
static pid_t server = -1;
static int paused; /* the server logged that it stopped accepting */

/* A descriptor read a line at a time. */
struct lines {
	int fd;
	size_t len;
	char buf[4096];
};

/* Milliseconds since t0, on a clock that never jumps. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec - t0.tv_sec) * 1e3 + (ts.tv_nsec - t0.tv_nsec) / 1e6;
}

/* Print one event at t: time, row (0: the server), what, detail. */
static void
event_at(double t, int row, const char *what, const char *detail)
{
	printf("%.1f\t%d\t%s\t%s\n", t, row, what, detail ? detail : "");
	fflush(stdout);
}

/* Print one event that happens now. */
static void
event(int row, const char *what, const char *detail)
{
	event_at(now(), row, what, detail);
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
	event(c->row,
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
				event(c->row, "echo", what);
			}
		}
		if (c->kind == NOREAD && c->echoed >= MSG_LEN) {
			c->reading = 0;
			event(c->row, "noread", "stops reading");
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
	event(c->row, "send", NULL);
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
	event(c->row, "flooded", what);
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
			row = s->c[i].row;
	}
	if (strstr(line, "pausing until a connection closes") != NULL)
		paused = 1;
	event(row, "log", line);
}

/*
 * Read what l->fd has and call fn(arg, line) for every whole line; a line
 * too long for the buffer is taken as it is.  Returns 0 at EOF or on an
 * error, 1 while more may come.
 */
static int
read_lines(struct lines *l, void (*fn)(void *, char *), void *arg)
{
	ssize_t n;
	char *nl;

	if ((n = read(l->fd, l->buf + l->len, sizeof(l->buf) - 1 - l->len)) <=
	    0)
		return n == -1 && (errno == EAGAIN || errno == EINTR) ? 1 : 0;
	l->len += (size_t)n;
	l->buf[l->len] = '\0';
	while ((nl = strchr(l->buf, '\n')) != NULL) {
		*nl = '\0';
		fn(arg, l->buf);
		l->len -= (size_t)(nl + 1 - l->buf);
		memmove(l->buf, nl + 1, l->len + 1);
	}
	if (l->len == sizeof(l->buf) - 1) {
		fn(arg, l->buf);
		l->len = 0;
	}
	return 1;
}

/* read_lines()'s fn for the server's stderr: one log event per line. */
static void
log_line(void *arg, char *line)
{
	server_line(arg, line);
}

/* read_lines()'s fn for the server's stdout: *arg, the port it names. */
static void
listening_line(void *arg, char *line)
{
	int *port = arg;
	char *colon = strrchr(line, ':');

	if (*port != 0)
		return;
	if (strncmp(line, "listening on ", 13) != 0 || colon == NULL ||
	    (*port = atoi(colon + 1)) <= 0)
		*port = -1;
}

/* Start the server; return its port; its stderr is log->fd. */
static int
start_server(struct scenario *s, char **argv, struct lines *log)
{
	static struct lines out;
	char *args[32];
	int outp[2], errp[2], i, n = 0, port = 0;
	double deadline;

	args[n++] = argv[0];
	for (i = 1; argv[i] != NULL && n < 24; i++)
		args[n++] = argv[i];
	args[n++] = "-p";
	args[n++] = "0";
	args[n++] = "-v";
	for (i = 0; s->flags[i] != NULL; i++)
		args[n++] = (char *)s->flags[i];
	args[n] = NULL;
	if (pipe(outp) == -1 || pipe(errp) == -1)
		err(1, "pipe");
	if ((server = fork()) == -1)
		err(1, "fork");
	if (server == 0) {
		struct rlimit rl;

		dup2(outp[1], 1);
		dup2(errp[1], 2);
		close(outp[0]);
		close(outp[1]);
		close(errp[0]);
		close(errp[1]);
		/* the scenario's descriptor limit, as ulimit -n sets it */
		if (s->nofile > 0) {
			if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
				err(127, "getrlimit");
			rl.rlim_cur = (rlim_t)s->nofile;
			if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
				err(127, "setrlimit");
		}
		execv(args[0], args);
		err(127, "%s", args[0]);
	}
	close(outp[1]);
	close(errp[1]);
	/* The "listening on" line, bounded; it starts the clock. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	deadline = START_MS;
	out.fd = outp[0];
	while (port == 0 && now() < deadline) {
		struct pollfd pfd = {.fd = out.fd, .events = POLLIN};

		if (poll(&pfd, 1, (int)(deadline - now()) + 1) <= 0)
			continue;
		if (read_lines(&out, listening_line, &port) == 0)
			break;
	}
	if (port <= 0) {
		stop_server();
		errx(1, "%s: no \"listening on\" line within %d ms", args[0],
		     START_MS);
	}
	/* Nothing else comes on stdout; let it go. */
	close(out.fd);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	log->fd = errp[0];
	fcntl(log->fd, F_SETFL, fcntl(log->fd, F_GETFL) | O_NONBLOCK);
	return port;
}

/* The server's CPU time so far (user and system), in ms, or -1. */
static long
server_cpu(void)
{
	char path[64], buf[1024], *p;
	unsigned long user, sys;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)server);
	if ((fd = open(path, O_RDONLY)) == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* after the name, in parentheses: fields 3 to 13, then 14 and 15 */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &user, &sys) != 2)
		return -1;
	return (long)((user + sys) * 1000 /
		      (unsigned long)sysconf(_SC_CLK_TCK));
}

/* A "cpu" event: the server's CPU time now, in ms, and why it is taken. */
static void
cpu_event(const char *when)
{
	char what[64];

	snprintf(what, sizeof(what), "%ld\t%s", server_cpu(), when);
	event(0, "cpu", what);
}

/*
 * Take every descriptor the server has: connect held clients, each echoed
 * before the next, until the server logs that it pauses accepting or one is
 * not echoed within FILL_WAIT_MS.  That last one waits on its own row;
 * return the time it connected, the pause.
 */
static double
fill(struct scenario *s, int port, struct lines *log)
{
	char what[64];
	double since;

	for (;;) {
		struct client *c = &s->c[s->nclients];
		struct pollfd pfd[2];

		if (s->nclients == MAX_CLIENTS)
			errx(1, "%d held clients and the server still accepts",
			     MAX_CLIENTS);
		memset(c, 0, sizeof(*c));
		c->kind = HOLD;
		c->name = "held";
		c->row = 1;
		since = now();
		c->fd = dial(port, &c->port);
		c->reading = 1;
		s->nclients++;
		send_message(s, s->nclients - 1);
		while (c->echoed < MSG_LEN && !paused &&
		       now() < since + FILL_WAIT_MS) {
			pfd[0].fd = c->fd;
			pfd[0].events = POLLIN;
			pfd[1].fd = log->fd;
			pfd[1].events = POLLIN;
			if (poll(pfd, 2,
				 (int)(since + FILL_WAIT_MS - now()) + 1) ==
				    -1 &&
			    errno != EINTR)
				err(1, "poll");
			if (pfd[0].revents & (POLLIN | POLLERR | POLLHUP))
				receive(s, s->nclients - 1);
			if (c->ended)
				errx(1, "a held client was closed: %s",
				     "is the server out of descriptors "
				     "already?");
			if (pfd[1].revents & (POLLIN | POLLHUP))
				read_lines(log, log_line, s);
		}
		/* its row is known now: the last one waits on its own */
		if (c->echoed < MSG_LEN)
			c->row = 2;
		snprintf(what, sizeof(what), "127.0.0.1:%d", c->port);
		event_at(since, c->row, "connect", what);
		if (c->row == 2)
			return since;
	}
}

/* The held clients close: the server gets its descriptors back. */
static void
release(struct scenario *s)
{
	char what[64];
	int i, n = 0;

	cpu_event("release");
	for (i = 0; i < s->nclients; i++)
		if (s->c[i].row == 1 && !s->c[i].ended)
			n++;
	snprintf(what, sizeof(what), "%d", n);
	event(0, "release", what);
	for (i = 0; i < s->nclients; i++) {
		struct client *c = &s->c[i];

		if (c->row != 1 || c->ended)
			continue;
		close(c->fd);
		c->ended = 1;
		event(c->row, "close", NULL);
	}
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

/* Due actions: connect, send, finish sending, signal, release. */
static void
act(struct scenario *s, int port, int *signalled, int *released)
{
	char what[64];
	int i, n;

	for (i = 0; i < s->nclients; i++) {
		struct client *c = &s->c[i];

		if (c->fd < 0 && now() >= c->start) {
			c->fd = dial(port, &c->port);
			c->reading = 1;
			snprintf(what, sizeof(what), "127.0.0.1:%d", c->port);
			event(c->row, "connect", what);
			send_message(s, i);
			c->next = c->start + c->every;
			continue;
		}
		if (c->kind != TALK || c->fd < 0 || c->ended || c->shut)
			continue;
		if (now() >= c->stop) {
			shutdown(c->fd, SHUT_WR);
			c->shut = 1;
			event(c->row, "shut", NULL);
		} else if (now() >= c->next) {
			send_message(s, i);
			c->next += c->every;
		}
	}
	if (!*released && s->release_ms > 0 && now() >= s->release_ms) {
		*released = 1;
		release(s);
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
	static struct lines log;
	size_t i;
	int port, signalled = 0, released = 0, logopen = 1, held = 0;

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
	/* with fill, rows 1 and 2 are the held clients' and the last's */
	for (i = 0; i < (size_t)s->nclients; i++) {
		s->c[i].fd = -1;
		s->c[i].row = (int)i + 1 + (s->fill > 0 ? 2 : 0);
	}
	/* however the run ends, err() included, the server is stopped */
	if (atexit(stop_server) != 0)
		errx(1, "atexit failed");
	port = start_server(s, argv + 2, &log);
	printf("# scenario\t%s\n", s->name);
	if (s->nofile > 0)
		printf("# nofile\t%d\n", s->nofile);
	for (i = 0; i < (size_t)s->nclients; i++)
		printf("# client\t%d\t%s\n", s->c[i].row, s->c[i].name);
	event(0, "listening", NULL);
	if (s->fill > 0) {
		double pause;

		poll(NULL, 0, s->fill);
		pause = fill(s, port, &log);

		for (i = 0; i < (size_t)s->nclients; i++)
			if (s->c[i].row == 1)
				held++;
		printf("# client\t1\t%d held clients\n", held);
		printf("# client\t2\tthe one too many\n");
		cpu_event("pause");
		/* the rest of the scenario counts from the pause */
		for (i = 0; i < (size_t)s->nclients; i++)
			if (s->c[i].fd < 0) {
				s->c[i].start += (long)pause;
				s->c[i].stop += (long)pause;
			}
		s->release_ms += (long)pause;
		s->end_ms += (long)pause;
	}
	while (now() < s->end_ms) {
		long wake = s->end_ms, t;
		int n = 0, j;

		act(s, port, &signalled, &released);
		if (s->signal_ms >= 0 && !signalled && s->signal_ms < wake)
			wake = s->signal_ms;
		if (s->release_ms > 0 && !released && s->release_ms < wake)
			wake = s->release_ms;
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
		pfd[n].fd = logopen ? log.fd : -1;
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
			logopen = read_lines(&log, log_line, s);
	}
	event(0, "end", NULL);
	stop_server();
	/* What the server logged while it stopped; it has exited. */
	fcntl(log.fd, F_SETFL, fcntl(log.fd, F_GETFL) & ~O_NONBLOCK);
	while (read_lines(&log, log_line, s) > 0)
		;
	return 0;
}
