/* The agent's stream table: opens the kinds the host asks for, routes
 * DATA, WINDOW and CLOSE frames to them, and ends them all when the
 * session ends. The protocol's counting is src/guest/stream.c; this file
 * adds the agent's objects and the port queue. */
#include "agent/stream.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct ch_session sess;
static int sess_ready;
/* Streams that ended: freed at the next stream_poll, once the callbacks of
 * the current poll round (which may still point at them) have run. */
static struct astream *dead;

static const struct stream_kind *const kinds[] = {
    &stream_kind_exec,
    &stream_kind_pty,
    &stream_kind_file_read,
    &stream_kind_file_write,
};

static struct ch_session *session(void)
{
	if (!sess_ready) {
		ch_session_init(&sess, 0);
		sess_ready = 1;
	}
	return &sess;
}

int stream_count(void)
{
	return (int)session()->count;
}

static struct astream *stream_of(uint32_t id)
{
	struct ch_stream *st = ch_stream_find(session(), id);

	return st ? st->owner : NULL;
}

/* Takes s out of the session now (its id may be reused by a new session)
 * and frees it later. */
static void stream_release(struct astream *s, int aborted)
{
	ch_stream_remove(session(), &s->ch);
	s->done = 1;
	s->aborted = aborted;
	s->dead_next = dead;
	dead = s;
}

static void stream_reap(void)
{
	struct astream *s;

	while ((s = dead)) {
		dead = s->dead_next;
		if (s->kind && s->kind->free)
			s->kind->free(s, s->aborted);
		free(s);
	}
}

size_t stream_room(struct astream *s, size_t want)
{
	struct buf *out = agent_stream_out(s->gen);

	if (!out || s->done || out->len >= STREAM_OUT_HIGH)
		return 0;
	return ch_stream_sendable(&s->ch, want);
}

void stream_send(struct astream *s, const void *data, size_t len)
{
	struct buf *out = agent_stream_out(s->gen);

	if (out && !s->done)
		ch_stream_data_append(out, &s->ch, data, len);
}

void stream_send_tagged(struct astream *s, uint8_t tag, const void *data, size_t len)
{
	struct buf *out = agent_stream_out(s->gen);

	if (out && !s->done)
		ch_stream_tagged_append(out, &s->ch, tag, data, len);
}

void stream_consumed(struct astream *s, size_t n)
{
	struct buf *out = agent_stream_out(s->gen);

	if (out && !s->done)
		ch_stream_consumed(&s->ch, out, n);
}

void stream_finish(struct astream *s, json_t *result)
{
	struct buf *out = agent_stream_out(s->gen);

	if (s->done)
		return;
	if (out)
		ch_close_append(out, s->ch.id, result);
	s->done = 1;
}

void stream_fail(struct astream *s, const char *why)
{
	json_t *j = json_pack("{s:s}", "error", why);

	log_info("event=stream-fail stream=%u kind=%s why=\"%s\"", s->ch.id,
		 s->kind ? s->kind->name : "-", why);
	stream_finish(s, j);
	json_decref(j);
}

/* A refusal before the stream exists: CLOSE with the reason. */
static void open_refuse(uint64_t gen, uint32_t id, const char *why)
{
	struct buf *out = agent_stream_out(gen);

	log_info("event=stream-refused stream=%u why=\"%s\"", id, why);
	if (out && id)
		ch_close_error_append(out, id, why);
}

static const struct stream_kind *kind_find(const char *name)
{
	size_t i;

	for (i = 0; name && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kinds[i]->name, name))
			return kinds[i];
	return NULL;
}

void stream_open_request(json_t *msg, uint64_t gen)
{
	json_t *jid = json_object_get(msg, "stream"), *opened;
	json_int_t id = json_is_integer(jid) ? json_integer_value(jid) : 0;
	const struct stream_kind *kind = kind_find(json_string_value(json_object_get(msg, "kind")));
	struct astream *s;
	char why[256] = "";

	if (id <= 0 || id > UINT32_MAX || !ch_stream_id_is_peers(session(), (uint32_t)id)) {
		agent_send_error(gen, json_object_get(msg, "id"),
				 "\"stream\" must be an odd stream id chosen by the host");
		return;
	}
	if (!kind) {
		open_refuse(gen, (uint32_t)id, "unknown stream kind");
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->gen = gen;
	if (!ch_stream_add(session(), &s->ch, (uint32_t)id, s)) {
		free(s);
		open_refuse(gen, (uint32_t)id,
			    stream_of((uint32_t)id) ? "stream id already in use"
						    : "too many streams");
		return;
	}
	opened = json_object();
	if (kind->open(s, msg, opened, why, sizeof(why))) {
		struct buf *out = agent_stream_out(gen);
		json_t *r = json_pack("{s:s, s:O?}", "error", why[0] ? why : "cannot open", "errno",
				      json_object_get(opened, "errno"));

		log_info("event=stream-refused stream=%u kind=%s why=\"%s\"", s->ch.id, kind->name,
			 why);
		if (out)
			ch_close_append(out, s->ch.id, r);
		json_decref(r);
		stream_release(s, 1);
		json_decref(opened);
		return;
	}
	s->kind = kind;
	json_object_set_new(opened, "type", json_string("opened"));
	json_object_set_new(opened, "stream", json_integer(id));
	agent_send(gen, opened);
	json_decref(opened);
	log_info("event=stream-open stream=%u kind=%s", s->ch.id, kind->name);
}

void stream_resize_request(json_t *msg, uint64_t gen)
{
	json_t *jid = json_object_get(msg, "stream");
	json_t *jc = json_object_get(msg, "cols"), *jr = json_object_get(msg, "rows");
	struct astream *s =
	    json_is_integer(jid) ? stream_of((uint32_t)json_integer_value(jid)) : NULL;

	if (!s || s->done || !s->kind->resize) {
		agent_send_error(gen, json_object_get(msg, "id"), "no terminal on that stream");
		return;
	}
	if (!json_is_integer(jc) || !json_is_integer(jr) || json_integer_value(jc) < 1 ||
	    json_integer_value(jc) > 1000 || json_integer_value(jr) < 1 ||
	    json_integer_value(jr) > 1000) {
		agent_send_error(gen, json_object_get(msg, "id"),
				 "\"cols\" and \"rows\" must be integers 1..1000");
		return;
	}
	s->kind->resize(s, (int)json_integer_value(jc), (int)json_integer_value(jr));
}

static void frame_data(struct astream *s, const struct ch_frame *f)
{
	if (ch_stream_received(&s->ch, f->len)) {
		stream_fail(s, "flow control violated: more data than the window allows");
		return;
	}
	if (s->kind->data)
		s->kind->data(s, f->payload, f->len);
	else
		stream_consumed(s, f->len);
}

void stream_frame(const struct ch_frame *f, uint64_t gen)
{
	struct astream *s = stream_of(f->stream);

	if (!s || s->gen != gen || s->done) {
		/* Late frames of a stream that just ended are normal; log only. */
		log_debug("event=drop type=%u stream=%u reason=\"no such stream\"", f->type,
			  f->stream);
		return;
	}
	switch (f->type) {
	case CH_DATA:
		frame_data(s, f);
		break;
	case CH_WINDOW:
		if (ch_stream_window(&s->ch, f))
			stream_fail(s, "malformed WINDOW frame");
		break;
	case CH_CLOSE:
		/* The host ends it: no answer, just clean up. */
		log_info("event=stream-closed-by-host stream=%u", s->ch.id);
		stream_release(s, 1);
		break;
	default:
		log_warnx("event=drop type=%u stream=%u reason=\"unknown frame type\"", f->type,
			  f->stream);
	}
}

void stream_poll(struct agent_poll *p)
{
	struct ch_stream *st, *next;

	stream_reap();
	for (st = session()->streams; st; st = next) {
		struct astream *s = st->owner;

		next = st->next;
		if (!s->done && s->kind->poll)
			s->kind->poll(s, p);
		if (s->done) {
			stream_release(s, 0);
			agent_poll_wake(p, agent_now_ms());
		}
	}
}

void stream_session_end(const char *why)
{
	struct ch_stream *st;
	int n = 0;

	while ((st = session()->streams)) {
		stream_release(st->owner, 1);
		n++;
	}
	if (n)
		log_info("event=streams-ended count=%d why=\"%s\"", n, why);
	ch_session_init(&sess, 0);
}
