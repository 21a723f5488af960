/*
 * The 2012 article's read loop and what came after it, rewritten for the
 * tests from the facts of the record, one version per macro: READ_2012 (the
 * loop comment 1 could not compile), READ_REPLY (a reader's evbuffer_remove
 * loop spliced in), READ_2013 (the author's EVBUFFER_LENGTH fix).
 */
#include <event.h>

#if defined(READ_2012)
/* The 2012 loop: reads struct evbuffer's off field three times. */
void
read_2012(struct bufferevent *bev, struct evbuffer *out)
{
	char data[4096];
	int nbytes;

	while (bev->input->off > 0) {
		nbytes = (bev->input->off > 4096) ? 4096 : bev->input->off;
		evbuffer_remove(bev->input, data, nbytes);
		evbuffer_add(out, data, nbytes);
	}
}
#elif defined(READ_REPLY)
/* The reader's reply: remove up to 4096 bytes until a short read. */
void
read_reply(struct bufferevent *bev, struct evbuffer *out)
{
	char data[4096];
	int nbytes;

	do {
		nbytes = evbuffer_remove(bev->input, data, 4096);
		if (nbytes == -1)
			break;
		evbuffer_add(out, data, nbytes);
		if (nbytes < 4096)
			break;
	} while (nbytes > 0);
}
#elif defined(READ_2013)
/* The 2013 loop: the length through libevent's compatibility macro. */
void
read_2013(struct bufferevent *bev, struct evbuffer *out)
{
	char data[4096];
	int nbytes;

	while ((nbytes = EVBUFFER_LENGTH(bev->input)) > 0) {
		if (nbytes > 4096)
			nbytes = 4096;
		evbuffer_remove(bev->input, data, nbytes);
		evbuffer_add(out, data, nbytes);
	}
}
#endif
