#include "core/bus.h"
#include "common/xalloc.h"

#include <stdlib.h>

struct bus_sub {
	bus_cb cb;
	void *arg;
	int dead;
	struct bus_sub *next;
};

struct bus {
	struct bus_sub *subs;
	int publishing;
	int count;
};

struct bus *bus_new(void)
{
	return xcalloc(1, sizeof(struct bus));
}

void bus_free(struct bus *b)
{
	while (b->subs) {
		struct bus_sub *s = b->subs;
		b->subs = s->next;
		free(s);
	}
	free(b);
}

struct bus_sub *bus_subscribe(struct bus *b, bus_cb cb, void *arg)
{
	struct bus_sub *s = xcalloc(1, sizeof(*s));

	s->cb = cb;
	s->arg = arg;
	s->next = b->subs;
	b->subs = s;
	b->count++;
	return s;
}

/* Unlinks dead subscriptions; only outside a publish, so callbacks may
 * unsubscribe (themselves or others) safely. */
static void bus_sweep(struct bus *b)
{
	struct bus_sub **pp = &b->subs;

	while (*pp) {
		struct bus_sub *s = *pp;
		if (s->dead) {
			*pp = s->next;
			free(s);
		} else {
			pp = &s->next;
		}
	}
}

void bus_unsubscribe(struct bus *b, struct bus_sub *sub)
{
	sub->dead = 1;
	b->count--;
	if (!b->publishing)
		bus_sweep(b);
}

void bus_publish(struct bus *b, const struct event *ev)
{
	b->publishing++;
	for (struct bus_sub *s = b->subs; s; s = s->next)
		if (!s->dead)
			s->cb(ev, s->arg);
	if (--b->publishing == 0)
		bus_sweep(b);
}

int bus_count(const struct bus *b)
{
	return b->count;
}
