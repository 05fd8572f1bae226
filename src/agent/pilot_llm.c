/* The streamed answers of the two wire formats, reduced to one llm_turn:
 * text, tool calls with their JSON arguments, usage and why it stopped.
 *   Anthropic Messages: message_start (usage.input_tokens),
 *     content_block_start (text | tool_use id/name), content_block_delta
 *     (text_delta | input_json_delta), content_block_stop, message_delta
 *     (stop_reason, usage.output_tokens), message_stop, ping, error.
 *   OpenAI Chat Completions: data: chunks with choices[0].delta (content,
 *     tool_calls[index] id/function.name/function.arguments), finish_reason,
 *     a last chunk with usage (stream_options.include_usage), data: [DONE]. */
#include "agent/pilot.h"

#include <stdio.h>
#include <string.h>

void llm_turn_init(struct llm_turn *t, enum llm_format fmt)
{
	memset(t, 0, sizeof(*t));
	t->fmt = fmt;
	for (int i = 0; i < 64; i++)
		t->block_call[i] = -1;
}

void llm_turn_release(struct llm_turn *t)
{
	buf_release(&t->text);
	for (int i = 0; i < t->ncalls; i++) {
		buf_release(&t->calls[i].args);
		json_decref(t->calls[i].input);
	}
	t->ncalls = 0;
}

static int turn_fail(struct llm_turn *t, const char *kind, const char *fmt, const char *detail)
{
	snprintf(t->error_kind, sizeof(t->error_kind), "%s", kind);
	snprintf(t->error, sizeof(t->error), fmt, detail);
	return -1;
}

static void turn_text(struct llm_turn *t, const char *s, size_t n)
{
	buf_append(&t->text, s, n);
	if (t->on_text && n)
		t->on_text(s, n, t->arg);
}

static struct llm_tool_call *turn_call_new(struct llm_turn *t, const char *id, const char *name)
{
	struct llm_tool_call *c;

	if (t->ncalls >= (int)(sizeof(t->calls) / sizeof(t->calls[0])))
		return NULL;
	c = &t->calls[t->ncalls++];
	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", id ? id : "");
	snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
	return c;
}

static int anthropic_block_start(struct llm_turn *t, json_t *j)
{
	json_int_t idx = json_integer_value(json_object_get(j, "index"));
	json_t *b = json_object_get(j, "content_block");
	const char *type = json_string_value(json_object_get(b, "type"));
	struct llm_tool_call *c;

	if (idx < 0 || idx >= 64 || !type)
		return turn_fail(t, "malformed", "%s", "content_block_start without index or type");
	if (!strcmp(type, "text")) {
		t->block_kind[idx] = 1;
		const char *s = json_string_value(json_object_get(b, "text"));
		if (s)
			turn_text(t, s, strlen(s));
	} else if (!strcmp(type, "tool_use")) {
		c = turn_call_new(t, json_string_value(json_object_get(b, "id")),
				  json_string_value(json_object_get(b, "name")));
		if (!c)
			return turn_fail(t, "malformed", "%s", "too many tool calls in one answer");
		t->block_kind[idx] = 2;
		t->block_call[idx] = t->ncalls - 1;
	}
	return 0;
}

static int anthropic_block_delta(struct llm_turn *t, json_t *j)
{
	json_int_t idx = json_integer_value(json_object_get(j, "index"));
	json_t *d = json_object_get(j, "delta");
	const char *type = json_string_value(json_object_get(d, "type")), *s;

	if (idx < 0 || idx >= 64 || !type)
		return turn_fail(t, "malformed", "%s", "content_block_delta without index or type");
	if (!strcmp(type, "text_delta") && (s = json_string_value(json_object_get(d, "text"))))
		turn_text(t, s, strlen(s));
	else if (!strcmp(type, "input_json_delta") && t->block_kind[idx] == 2 &&
		 (s = json_string_value(json_object_get(d, "partial_json"))))
		buf_puts(&t->calls[t->block_call[idx]].args, s);
	return 0;
}

int llm_anthropic_event(const char *event, const char *data, size_t len, void *arg)
{
	struct llm_turn *t = arg;
	json_error_t e;
	json_t *j = json_loadb(data, len, 0, &e), *u;
	const char *type;
	int r = 0;

	if (!j || !json_is_object(j)) {
		json_decref(j);
		return turn_fail(t, "malformed", "malformed JSON in the stream: %s", e.text);
	}
	type = json_string_value(json_object_get(j, "type"));
	if (!type)
		type = event;
	if (!strcmp(type, "message_start")) {
		u = json_object_get(json_object_get(j, "message"), "usage");
		t->input_tokens += json_integer_value(json_object_get(u, "input_tokens"));
		t->output_tokens += json_integer_value(json_object_get(u, "output_tokens"));
	} else if (!strcmp(type, "content_block_start")) {
		r = anthropic_block_start(t, j);
	} else if (!strcmp(type, "content_block_delta")) {
		r = anthropic_block_delta(t, j);
	} else if (!strcmp(type, "message_delta")) {
		const char *stop = json_string_value(
		    json_object_get(json_object_get(j, "delta"), "stop_reason"));
		if (stop)
			snprintf(t->stop, sizeof(t->stop), "%s", stop);
		u = json_object_get(j, "usage");
		/* output_tokens here is the message's running total. */
		if (json_is_integer(json_object_get(u, "output_tokens")))
			t->output_tokens = json_integer_value(json_object_get(u, "output_tokens"));
	} else if (!strcmp(type, "message_stop")) {
		t->done = 1;
	} else if (!strcmp(type, "error")) {
		json_t *err = json_object_get(j, "error");
		const char *et = json_string_value(json_object_get(err, "type"));
		const char *msg = json_string_value(json_object_get(err, "message"));

		snprintf(t->error_kind, sizeof(t->error_kind), "%s",
			 et && !strcmp(et, "overloaded_error") ? "overloaded" : "provider");
		snprintf(t->error, sizeof(t->error), "%s: %s", et ? et : "error", msg ? msg : "");
		r = -1;
	}
	json_decref(j);
	return r;
}

static int openai_tool_delta(struct llm_turn *t, json_t *tc)
{
	json_int_t idx = json_integer_value(json_object_get(tc, "index"));
	json_t *f = json_object_get(tc, "function");
	const char *id = json_string_value(json_object_get(tc, "id"));
	const char *name = json_string_value(json_object_get(f, "name"));
	const char *args = json_string_value(json_object_get(f, "arguments"));

	if (idx < 0 || idx >= 16)
		return turn_fail(t, "malformed", "%s", "tool call index out of range");
	while (t->ncalls <= idx)
		if (!turn_call_new(t, NULL, NULL))
			return turn_fail(t, "malformed", "%s", "too many tool calls");
	if (id)
		snprintf(t->calls[idx].id, sizeof(t->calls[idx].id), "%s", id);
	if (name)
		snprintf(t->calls[idx].name, sizeof(t->calls[idx].name), "%s", name);
	if (args)
		buf_puts(&t->calls[idx].args, args);
	return 0;
}

int llm_openai_event(const char *event, const char *data, size_t len, void *arg)
{
	struct llm_turn *t = arg;
	json_error_t e;
	json_t *j, *choice, *delta, *u, *tc, *err;
	const char *s;
	size_t i;
	int r = 0;

	(void)event;
	if (len == 6 && !memcmp(data, "[DONE]", 6)) {
		t->done = 1;
		return 0;
	}
	j = json_loadb(data, len, 0, &e);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return turn_fail(t, "malformed", "malformed JSON in the stream: %s", e.text);
	}
	if ((err = json_object_get(j, "error"))) {
		s = json_string_value(json_object_get(err, "message"));
		turn_fail(t, "provider", "provider error in the stream: %s", s ? s : "?");
		json_decref(j);
		return -1;
	}
	choice = json_array_get(json_object_get(j, "choices"), 0);
	delta = json_object_get(choice, "delta");
	if ((s = json_string_value(json_object_get(delta, "content"))))
		turn_text(t, s, strlen(s));
	json_array_foreach(json_object_get(delta, "tool_calls"), i, tc) {
		if ((r = openai_tool_delta(t, tc)))
			break;
	}
	if ((s = json_string_value(json_object_get(choice, "finish_reason"))))
		snprintf(t->stop, sizeof(t->stop), "%s", s);
	if (json_is_object(u = json_object_get(j, "usage"))) {
		t->input_tokens = json_integer_value(json_object_get(u, "prompt_tokens"));
		t->output_tokens = json_integer_value(json_object_get(u, "completion_tokens"));
	}
	json_decref(j);
	return r;
}

int llm_turn_finish(struct llm_turn *t)
{
	json_error_t e;

	if (*t->error)
		return -1;
	if (!t->done) {
		turn_fail(t, "cut", "%s", "the stream ended before the answer was complete");
		return -1;
	}
	for (int i = 0; i < t->ncalls; i++) {
		struct llm_tool_call *c = &t->calls[i];

		if (!*c->id || !*c->name)
			return turn_fail(t, "malformed", "%s", "a tool call without id or name");
		c->input = c->args.len ? json_loadb(c->args.data, c->args.len, 0, &e) : json_object();
		if (!json_is_object(c->input)) {
			json_decref(c->input);
			c->input = NULL;
			return turn_fail(t, "malformed", "malformed tool call arguments: %s", c->name);
		}
	}
	return 0;
}
