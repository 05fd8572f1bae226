/* The event bus: stored events fan out to live subscribers (SSE streams,
 * the console later) on the loop thread. Publishing never blocks: a slow
 * subscriber is the subscriber's problem (the SSE layer drops it and the
 * client resumes with Last-Event-ID). */
#ifndef BUREAU_BUS_H
#define BUREAU_BUS_H

#include "store/store.h"

struct bus;
struct bus_sub;

typedef void (*bus_cb)(const struct event *ev, void *arg);

struct bus *bus_new(void);
void bus_free(struct bus *b);
/* The subscription lives until bus_unsubscribe. */
struct bus_sub *bus_subscribe(struct bus *b, bus_cb cb, void *arg);
void bus_unsubscribe(struct bus *b, struct bus_sub *sub);
void bus_publish(struct bus *b, const struct event *ev);
int bus_count(const struct bus *b);

#endif
