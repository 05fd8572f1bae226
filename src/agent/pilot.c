/* bureau-pilot's main: the task queue, the agent loop (model call → tool
 * calls → results back to the model → ... → final answer), approvals and
 * persistence. See pilot.h for why it is its own program.
 *
 * Two threads: the main one reads the agent's lines (chat.send,
 * chat.interrupt, approval.decision) and never blocks on work; the worker
 * runs one task at a time. They share the state below under `lk`. */
#include "agent/pilot.h"
#include "common/buf.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PILOT_LINE_MAX (1024 * 1024)	 /* a line from the agent */
#define PILOT_HISTORY_MAX 400		 /* items kept in the conversation */
#define PILOT_SEEN_MAX 1000		 /* message ids remembered (deduplication) */
#define PILOT_MEMORY_MAX (16 * 1024)	 /* memory.md put in the system prompt */
#define PILOT_RETRY_AFTER_MAX_S 60
#define PILOT_CONNECT_TIMEOUT_S 30
#define PILOT_STALL_S 120		 /* no byte from the provider for that long */

static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t out_lk = PTHREAD_MUTEX_INITIALIZER;

static json_t *queue;	/* [{"msgId","message"}], the first is the current task */
static json_t *history; /* provider-neutral conversation items */
static json_t *seen;	/* message ids taken */
static volatile int interrupted;
static char pending_ref[64];	   /* the approval check waited on */
static char pending_decision[16];
static char pending_note[512];
static json_t *pending_check;	   /* to ask again after a reconnect */

static char config_dir[256] = "/etc/bureau";
static char state_dir[512];
static int have_display;

/* ---- output to the agent ---- */

static void emit(json_t *m)
{
	char *s = json_dumps(m, JSON_COMPACT);

	pthread_mutex_lock(&out_lk);
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
	pthread_mutex_unlock(&out_lk);
	free(s);
	json_decref(m);
}

static void emit_status(const char *status, const char *task)
{
	json_t *m = json_pack("{s:s, s:s}", "type", "pilot.status", "status", status);

	if (task)
		json_object_set_new(m, "task", json_stringn(task, strnlen(task, 500)));
	emit(m);
}

static void emit_message(const char *role, const char *reply_to, const char *content, json_t *data)
{
	json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "type", "chat.message", "role", role,
			      "replyTo", reply_to, "content", content);

	if (data)
		json_object_set_new(m, "data", data);
	emit(m);
}

/* ---- persistence ---- */

static void path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", state_dir, name);
}

static void save_json(const char *name, json_t *j)
{
	char path[600], tmp[620];

	path_of(path, sizeof(path), name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (json_dump_file(j, tmp, JSON_COMPACT) == 0)
		rename(tmp, path);
}

static void save_state(void)
{
	json_t *conv = json_pack("{s:O, s:O}", "history", history, "seen", seen);

	save_json("conversation.json", conv);
	save_json("queue.json", queue);
	json_decref(conv);
}

static json_t *load_json(const char *name, int array)
{
	char path[600];
	json_t *j;

	path_of(path, sizeof(path), name);
	j = json_load_file(path, 0, NULL);
	if (array ? !json_is_array(j) : !json_is_object(j)) {
		json_decref(j);
		j = array ? json_array() : json_object();
	}
	return j;
}

static void mkdirs(const char *path, mode_t mode)
{
	char tmp[600];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0755);
			*p = '/';
		}
	mkdir(tmp, mode);
}

static void state_load(void)
{
	json_t *conv;

	mkdirs(state_dir, 0700);
	conv = load_json("conversation.json", 0);
	history = json_incref(json_object_get(conv, "history"));
	seen = json_incref(json_object_get(conv, "seen"));
	json_decref(conv);
	if (!json_is_array(history))
		history = json_array();
	if (!json_is_array(seen))
		seen = json_array();
	queue = load_json("queue.json", 1);
}

static int seen_has(const char *id)
{
	size_t i;
	json_t *v;

	json_array_foreach(seen, i, v) if (!strcmp(json_string_value(v), id)) return 1;
	json_array_foreach(queue, i, v) if (!strcmp(json_string_value(json_object_get(v, "msgId")), id)) return 1;
	return 0;
}

/* Drops old screenshots and the oldest items (only at a user message, so
 * that no tool result loses its call). */
static void history_trim(void)
{
	size_t i, images = 0;
	json_t *item, *res, *r;

	for (i = json_array_size(history); i-- > 0;) {
		size_t k;
		item = json_array_get(history, i);
		res = json_object_get(item, "results");
		json_array_foreach(res, k, r) {
			if (json_object_get(r, "image") && ++images > PILOT_SCREENSHOTS_KEPT) {
				json_object_del(r, "image");
				json_object_set_new(r, "output", json_string("[an older screenshot, dropped]"));
			}
		}
	}
	while (json_array_size(history) > PILOT_HISTORY_MAX) {
		json_array_remove(history, 0);
		while (json_array_size(history) &&
		       strcmp(json_string_value(json_object_get(json_array_get(history, 0), "role")) ?: "",
			      "user"))
			json_array_remove(history, 0);
	}
	while (json_array_size(seen) > PILOT_SEEN_MAX)
		json_array_remove(seen, 0);
}

/* ---- the provider ---- */

struct provider {
	char name[32];
	char model[128];
	char url[1024];
	char key[512];
	char proxy[256];
	int retry_base_ms;
	enum llm_format fmt;
};

static int provider_load(struct provider *p, char *why, size_t wn)
{
	char path[300];
	json_t *j, *v;
	const char *name, *base, *model, *key;

	memset(p, 0, sizeof(*p));
	snprintf(path, sizeof(path), "%s/provider.json", config_dir);
	j = json_load_file(path, 0, NULL);
	name = json_string_value(json_object_get(j, "provider"));
	key = json_string_value(json_object_get(j, "apiKey"));
	if (!j || !name) {
		json_decref(j);
		snprintf(why, wn, "no AI provider is configured for this desktop (%s)", path);
		return -1;
	}
	base = json_string_value(json_object_get(j, "baseUrl"));
	model = json_string_value(json_object_get(j, "model"));
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->key, sizeof(p->key), "%s", key ? key : "");
	p->fmt = strcmp(name, "anthropic") ? LLM_OPENAI : LLM_ANTHROPIC;
	if (!strcmp(name, "anthropic"))
		snprintf(p->url, sizeof(p->url), "%s/v1/messages", base ? base : "https://api.anthropic.com");
	else if (!strcmp(name, "openai"))
		snprintf(p->url, sizeof(p->url), "%s/chat/completions", base ? base : "https://api.openai.com/v1");
	else if (!strcmp(name, "openrouter"))
		snprintf(p->url, sizeof(p->url), "%s/chat/completions", base ? base : "https://openrouter.ai/api/v1");
	else {
		json_decref(j);
		snprintf(why, wn, "unknown provider \"%.40s\"", name);
		return -1;
	}
	snprintf(p->model, sizeof(p->model), "%s",
		 model ? model
		       : p->fmt == LLM_ANTHROPIC ? "claude-sonnet-4-20250514"
		       : !strcmp(name, "openrouter") ? "openai/gpt-4o" : "gpt-4o");
	v = json_object_get(j, "proxy");
	snprintf(p->proxy, sizeof(p->proxy), "%s", json_is_string(v) ? json_string_value(v)
						     : getenv("BUREAU_PILOT_PROXY") ?: PILOT_PROXY_DEFAULT);
	v = json_object_get(j, "retryBaseMs");
	p->retry_base_ms = json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < 60000
				   ? (int)json_integer_value(v) : 1000;
	if (key)
		explicit_bzero((char *)key, strlen(key));
	json_decref(j);
	return 0;
}

static const char shell_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"command\":{\"type\":\"string\",\"description\":\"a /bin/sh command line\"},"
    "\"timeout\":{\"type\":\"integer\",\"description\":\"seconds, default 120\"},"
    "\"label\":{\"type\":\"string\",\"enum\":[\"purchase\",\"deployment\",\"credential_entry\",\"none\"]}},"
    "\"required\":[\"command\"]}";
static const char files_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"op\":{\"type\":\"string\",\"enum\":[\"read\",\"write\",\"edit\"]},"
    "\"path\":{\"type\":\"string\",\"description\":\"absolute path\"},"
    "\"content\":{\"type\":\"string\",\"description\":\"write: the whole new content\"},"
    "\"old\":{\"type\":\"string\",\"description\":\"edit: text that occurs exactly once\"},"
    "\"new\":{\"type\":\"string\",\"description\":\"edit: its replacement\"},"
    "\"label\":{\"type\":\"string\",\"enum\":[\"purchase\",\"deployment\",\"credential_entry\",\"none\"]}},"
    "\"required\":[\"op\",\"path\"]}";
static const char computer_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"action\":{\"type\":\"string\",\"enum\":[\"screenshot\",\"mouse_move\",\"left_click\","
    "\"right_click\",\"middle_click\",\"double_click\",\"left_click_drag\",\"type\",\"key\","
    "\"scroll\",\"cursor_position\"]},"
    "\"coordinate\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},"
    "\"start_coordinate\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},"
    "\"text\":{\"type\":\"string\"},"
    "\"scroll_direction\":{\"type\":\"string\",\"enum\":[\"up\",\"down\",\"left\",\"right\"]},"
    "\"scroll_amount\":{\"type\":\"integer\"},"
    "\"label\":{\"type\":\"string\",\"enum\":[\"purchase\",\"deployment\",\"credential_entry\",\"none\"]}},"
    "\"required\":[\"action\"]}";

static const struct {
	const char *name, *description, *schema;
	int display; /* offered only with a display */
} tool_defs[] = {
    {"shell", "Run a shell command as the desktop's user (output and exit status come back). "
	      "Set label for purchases, deployments or entering credentials.", shell_schema, 0},
    {"files", "Read, write or edit a file.", files_schema, 0},
    {"computer", "Use the screen: take a screenshot first (it reports the size), then mouse and keyboard.", computer_schema, 1},
};

static json_t *tools_json(enum llm_format fmt)
{
	json_t *a = json_array();

	for (size_t i = 0; i < sizeof(tool_defs) / sizeof(tool_defs[0]); i++) {
		json_t *schema;

		if (tool_defs[i].display && !have_display)
			continue;
		if (fmt == LLM_ANTHROPIC && tool_defs[i].display) {
			/* Anthropic's own computer-use tool: the model knows it. */
			int w, h;

			pilot_display_size(&w, &h);
			json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:i}", "type",
							   "computer_20250124", "name", "computer",
							   "display_width_px", w, "display_height_px", h));
			continue;
		}
		schema = json_loads(tool_defs[i].schema, 0, NULL);
		if (fmt == LLM_ANTHROPIC)
			json_array_append_new(a, json_pack("{s:s, s:s, s:o}", "name", tool_defs[i].name,
							   "description", tool_defs[i].description,
							   "input_schema", schema));
		else
			json_array_append_new(a, json_pack("{s:s, s:{s:s, s:s, s:o}}", "type", "function",
							   "function", "name", tool_defs[i].name,
							   "description", tool_defs[i].description,
							   "parameters", schema));
	}
	return a;
}

static char *system_prompt(void)
{
	struct buf b = BUF_INIT, mem = BUF_INIT;
	char path[600];
	FILE *f;

	buf_printf(&b, "You are the pilot, an AI agent working inside a Linux desktop of bureau. "
		       "You act with your tools and then report back briefly. The user's home is %s. "
		       "Some actions need a person's approval; when one is refused, say so and stop "
		       "or find another way. Label purchases, deployments and credential entry with "
		       "the tools' label field. You may keep notes for later tasks in %s/memory.md "
		       "(files tool).",
		   tool_home(), state_dir);
	path_of(path, sizeof(path), "memory.md");
	if ((f = fopen(path, "re"))) {
		char tmp[4096];
		size_t n;
		while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0 && mem.len < PILOT_MEMORY_MAX)
			buf_append(&mem, tmp, n);
		fclose(f);
		if (mem.len)
			buf_printf(&b, "\n\nYour notes (memory.md):\n%.*s", (int)(mem.len < PILOT_MEMORY_MAX ? mem.len : PILOT_MEMORY_MAX), mem.data);
	}
	buf_release(&mem);
	return buf_detach(&b, NULL);
}

/* The conversation in Anthropic's shape. */
static json_t *messages_anthropic(void)
{
	json_t *msgs = json_array(), *item, *c, *r;
	size_t i, k;

	json_array_foreach(history, i, item) {
		const char *role = json_string_value(json_object_get(item, "role"));
		json_t *content = json_array();

		if (!strcmp(role, "user")) {
			json_array_append_new(content, json_pack("{s:s, s:O}", "type", "text", "text",
								 json_object_get(item, "text")));
		} else if (!strcmp(role, "assistant")) {
			const char *t = json_string_value(json_object_get(item, "text"));
			if (t && *t)
				json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", t));
			json_array_foreach(json_object_get(item, "toolCalls"), k, c)
				json_array_append_new(content, json_pack("{s:s, s:O, s:O, s:O}", "type", "tool_use",
						"id", json_object_get(c, "id"), "name", json_object_get(c, "name"),
						"input", json_object_get(c, "input")));
			role = "assistant";
		} else {
			json_array_foreach(json_object_get(item, "results"), k, r) {
				json_t *rc = json_array();
				json_array_append_new(rc, json_pack("{s:s, s:O}", "type", "text", "text",
								    json_object_get(r, "output")));
				if (json_object_get(r, "image"))
					json_array_append_new(rc, json_pack("{s:s, s:{s:s, s:s, s:O}}", "type", "image",
							"source", "type", "base64", "media_type", "image/png",
							"data", json_object_get(r, "image")));
				json_array_append_new(content, json_pack("{s:s, s:O, s:o, s:b}", "type", "tool_result",
						"tool_use_id", json_object_get(r, "id"), "content", rc,
						"is_error", json_is_true(json_object_get(r, "isError"))));
			}
			role = "user";
		}
		json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", role, "content", content));
	}
	return msgs;
}

/* The conversation in OpenAI's shape: tool results are text; screenshots
 * follow as a user message with an image part. */
static json_t *messages_openai(const char *system)
{
	json_t *msgs = json_array(), *item, *c, *r;
	size_t i, k;

	json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", system));
	json_array_foreach(history, i, item) {
		const char *role = json_string_value(json_object_get(item, "role"));

		if (!strcmp(role, "user")) {
			json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "user", "content",
							      json_object_get(item, "text")));
		} else if (!strcmp(role, "assistant")) {
			json_t *m = json_pack("{s:s}", "role", "assistant"), *calls = json_array();
			const char *t = json_string_value(json_object_get(item, "text"));

			json_object_set_new(m, "content", t && *t ? json_string(t) : json_null());
			json_array_foreach(json_object_get(item, "toolCalls"), k, c)
				json_array_append_new(calls, json_pack("{s:O, s:s, s:{s:O, s:s}}", "id",
						json_object_get(c, "id"), "type", "function", "function", "name",
						json_object_get(c, "name"), "arguments",
						json_dumps(json_object_get(c, "input"), JSON_COMPACT) ?: "{}"));
			if (json_array_size(calls))
				json_object_set(m, "tool_calls", calls);
			json_decref(calls);
			json_array_append_new(msgs, m);
		} else {
			json_t *images = json_array();
			json_array_foreach(json_object_get(item, "results"), k, r) {
				json_array_append_new(msgs, json_pack("{s:s, s:O, s:O}", "role", "tool",
						"tool_call_id", json_object_get(r, "id"), "content",
						json_object_get(r, "output")));
				if (json_object_get(r, "image"))
					json_array_append_new(images, json_pack("{s:s, s:{s:o}}", "type", "image_url",
							"image_url", "url", json_sprintf("data:image/png;base64,%s",
							json_string_value(json_object_get(r, "image")))));
			}
			if (json_array_size(images)) {
				json_array_insert_new(images, 0, json_pack("{s:s, s:s}", "type", "text", "text",
							"The screenshot the tool took:"));
				json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "user", "content", images));
			}
			json_decref(images);
		}
	}
	return msgs;
}

static char *request_body(const struct provider *p)
{
	char *system = system_prompt(), *text;
	json_t *body;

	if (p->fmt == LLM_ANTHROPIC)
		body = json_pack("{s:s, s:i, s:b, s:s, s:o, s:o}", "model", p->model, "max_tokens",
				 PILOT_MAX_TOKENS, "stream", 1, "system", system, "messages",
				 messages_anthropic(), "tools", tools_json(LLM_ANTHROPIC));
	else
		body = json_pack("{s:s, s:b, s:{s:b}, s:o, s:o}", "model", p->model, "stream", 1,
				 "stream_options", "include_usage", 1, "messages",
				 messages_openai(system), "tools", tools_json(LLM_OPENAI));
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	free(system);
	return text;
}

/* ---- one call ---- */

struct call {
	struct llm_turn turn;
	struct sse_parser sse;
	CURL *curl;
	long status;
	struct buf errbody;
	int retry_after_s;
	int stream_failed;
	const char *reply_to;
};

static void on_text(const char *t, size_t n, void *arg)
{
	struct call *c = arg;

	emit(json_pack("{s:s, s:s, s:s%}", "type", "chat.delta", "replyTo", c->reply_to, "text", t, n));
}

static size_t on_body(char *b, size_t sz, size_t nm, void *arg)
{
	struct call *c = arg;
	size_t n = sz * nm;

	if (!c->status)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->status);
	if (c->status != 200) {
		if (c->errbody.len < 16384)
			buf_append(&c->errbody, b, n);
		return n;
	}
	if (c->stream_failed)
		return n;
	if (sse_feed(&c->sse, b, n, c->turn.fmt == LLM_ANTHROPIC ? llm_anthropic_event : llm_openai_event,
		     &c->turn)) {
		if (!*c->turn.error)
			snprintf(c->turn.error, sizeof(c->turn.error), "an event larger than the limit");
		if (!*c->turn.error_kind)
			snprintf(c->turn.error_kind, sizeof(c->turn.error_kind), "malformed");
		c->stream_failed = 1;
		return 0; /* abort the transfer */
	}
	return n;
}

static size_t on_header(char *b, size_t sz, size_t nm, void *arg)
{
	struct call *c = arg;
	size_t n = sz * nm;

	if (n > 12 && !strncasecmp(b, "retry-after:", 12))
		c->retry_after_s = atoi(b + 12);
	return n;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	return interrupted;
}

/* The provider's own words from an error body. */
static void error_message(struct call *c, char *out, size_t n)
{
	json_t *j = c->errbody.len ? json_loadb(c->errbody.data, c->errbody.len, 0, NULL) : NULL;
	const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));

	if (!m && json_is_string(json_object_get(j, "error")))
		m = json_string_value(json_object_get(j, "error"));
	snprintf(out, n, "%s", m ? m : c->errbody.len ? "(no message)" : "(empty body)");
	json_decref(j);
}

enum outcome { CALL_OK, CALL_RETRY, CALL_FAIL, CALL_STOPPED };

/* One HTTP exchange; fills code/msg on failure. */
static enum outcome call_once(const struct provider *p, const char *body, struct call *c,
			      char *code, size_t cn, char *msg, size_t mn)
{
	struct curl_slist *h = NULL;
	char hdr[700], detail[400];
	CURLcode rc;

	c->curl = curl_easy_init();
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: text/event-stream");
	if (p->fmt == LLM_ANTHROPIC) {
		snprintf(hdr, sizeof(hdr), "x-api-key: %s", p->key);
		h = curl_slist_append(h, hdr);
		h = curl_slist_append(h, "anthropic-version: 2023-06-01");
		if (have_display)
			h = curl_slist_append(h, "anthropic-beta: computer-use-2025-01-24");
	} else {
		snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", p->key);
		h = curl_slist_append(h, hdr);
	}
	explicit_bzero(hdr, sizeof(hdr));
	curl_easy_setopt(c->curl, CURLOPT_URL, p->url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, (long)PILOT_CONNECT_TIMEOUT_S);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, (long)PILOT_STALL_S);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	/* The only way out is bureaud's CONNECT proxy, for http:// too. */
	curl_easy_setopt(c->curl, CURLOPT_PROXY, p->proxy);
	curl_easy_setopt(c->curl, CURLOPT_HTTPPROXYTUNNEL, *p->proxy ? 1L : 0L);
	curl_easy_setopt(c->curl, CURLOPT_NOPROXY, "");
	rc = curl_easy_perform(c->curl);
	if (!c->status)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->status);
	curl_easy_cleanup(c->curl);
	curl_slist_free_all(h);
	if (interrupted)
		return CALL_STOPPED;
	if (c->status && c->status != 200) {
		error_message(c, detail, sizeof(detail));
		snprintf(msg, mn, "HTTP %ld from the provider: %s", c->status, detail);
		if (c->status == 401 || c->status == 403) {
			snprintf(code, cn, "auth");
			snprintf(msg, mn, "the provider refused the API key (HTTP %ld): %s", c->status, detail);
			return CALL_FAIL;
		}
		if (c->status == 429)
			return snprintf(code, cn, "rate_limited"), CALL_RETRY;
		if (c->status >= 500)
			return snprintf(code, cn, "provider_unavailable"), CALL_RETRY;
		return snprintf(code, cn, "request_rejected"), CALL_FAIL;
	}
	if (rc != CURLE_OK && !*c->turn.error) {
		snprintf(code, cn, c->status ? "stream_cut" : "network");
		snprintf(msg, mn, "%s: %s", c->status ? "the answer's stream broke off" : "cannot reach the provider",
			 curl_easy_strerror(rc));
		return CALL_RETRY;
	}
	if (llm_turn_finish(&c->turn)) {
		const char *k = c->turn.error_kind;
		snprintf(code, cn, "%s", !strcmp(k, "cut") ? "stream_cut" : !strcmp(k, "malformed") ? "malformed_response"
				   : !strcmp(k, "overloaded") ? "provider_unavailable" : "provider_error");
		snprintf(msg, mn, "%s", c->turn.error);
		return strcmp(k, "provider") ? CALL_RETRY : CALL_FAIL;
	}
	return CALL_OK;
}

static void sleep_ms_interruptible(int ms)
{
	for (int waited = 0; waited < ms && !interrupted; waited += 50)
		usleep(50 * 1000);
}

/* A model call with retries; on success the turn is the caller's. */
static enum outcome model_call(const struct provider *p, const char *reply_to, struct llm_turn *out,
			       char *code, size_t cn, char *msg, size_t mn)
{
	char *body = request_body(p);
	enum outcome o = CALL_FAIL;

	for (int attempt = 0; attempt <= PILOT_RETRIES; attempt++) {
		struct call c;
		int wait;

		memset(&c, 0, sizeof(c));
		llm_turn_init(&c.turn, p->fmt);
		c.turn.on_text = on_text;
		c.turn.arg = &c;
		c.reply_to = reply_to;
		sse_init(&c.sse);
		o = call_once(p, body, &c, code, cn, msg, mn);
		sse_release(&c.sse);
		buf_release(&c.errbody);
		if (o == CALL_OK) {
			*out = c.turn;
			out->on_text = NULL;
			emit(json_pack("{s:s, s:s, s:s, s:I, s:I}", "type", "pilot.usage", "provider", p->name,
				       "model", p->model, "inputTokens", (json_int_t)c.turn.input_tokens,
				       "outputTokens", (json_int_t)c.turn.output_tokens));
			break;
		}
		llm_turn_release(&c.turn);
		if (o != CALL_RETRY || attempt == PILOT_RETRIES)
			break;
		wait = c.retry_after_s > 0 ? 1000 * (c.retry_after_s < PILOT_RETRY_AFTER_MAX_S ? c.retry_after_s
											  : PILOT_RETRY_AFTER_MAX_S)
					   : p->retry_base_ms << attempt;
		fprintf(stderr, "bureau-pilot: %s (%s), retry %d in %d ms\n", msg, code, attempt + 1, wait);
		sleep_ms_interruptible(wait);
	}
	explicit_bzero(body, strlen(body));
	free(body);
	return o;
}

/* ---- approvals ---- */

/* Asks bureaud whether the action may run; waits for the answer (fail
 * closed: nothing runs without one). Returns 1 when allowed. */
static int approval_ask(const char *kind, const char *action, const char *label, json_t *input,
			char *note, size_t nn)
{
	char ref[64];
	int allowed;
	unsigned char rnd[8];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	if (fd >= 0)
		close(fd);
	snprintf(ref, sizeof(ref), "chk_%02x%02x%02x%02x%02x%02x%02x%02x%lx", rnd[0], rnd[1], rnd[2],
		 rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], (long)time(NULL));
	pthread_mutex_lock(&lk);
	snprintf(pending_ref, sizeof(pending_ref), "%s", ref);
	pending_decision[0] = pending_note[0] = '\0';
	json_decref(pending_check);
	pending_check = json_pack("{s:s, s:s, s:s, s:s, s:O}", "type", "approval.check", "ref", ref,
				  "kind", kind, "action", action, "input", input);
	if (label && strcmp(label, "none"))
		json_object_set_new(pending_check, "label", json_string(label));
	emit(json_incref(pending_check));
	while (!*pending_decision && !interrupted) {
		pthread_mutex_unlock(&lk);
		pthread_mutex_lock(&lk);
		/* A "working" status turns into "waiting_approval" once the
		 * answer is not immediate. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (pthread_cond_timedwait(&cv, &lk, &ts) == ETIMEDOUT && !*pending_decision &&
		    !interrupted && !json_is_true(json_object_get(pending_check, "announced"))) {
			json_object_set_new(pending_check, "announced", json_true());
			emit_status("waiting_approval", NULL);
		}
	}
	allowed = !strcmp(pending_decision, "allow") || !strcmp(pending_decision, "approve");
	snprintf(note, nn, "%s", *pending_note ? pending_note : interrupted ? "interrupted" : pending_decision);
	/* bureaud shows "waiting_approval" while a person decides. */
	if (strcmp(pending_decision, "allow"))
		emit_status("working", NULL);
	pending_ref[0] = '\0';
	json_decref(pending_check);
	pending_check = NULL;
	pthread_mutex_unlock(&lk);
	return allowed;
}

/* ---- the task ---- */

static json_t *history_find_user(const char *msg_id)
{
	size_t i;
	json_t *item;

	json_array_foreach(history, i, item) {
		const char *id = json_string_value(json_object_get(item, "msgId"));
		if (id && !strcmp(id, msg_id))
			return item;
	}
	return NULL;
}

/* Runs one tool call: validation, approval, execution. Returns the result
 * item for the conversation. */
static json_t *tool_call(const char *reply_to, const struct llm_tool_call *tc)
{
	char action[4096], why[256], note[512];
	const char *label = json_string_value(json_object_get(tc->input, "label"));
	struct tool_result r;
	json_t *item = json_pack("{s:s, s:s}", "id", tc->id, "name", tc->name);

	emit_message("tool_call", reply_to, tc->name,
		     json_pack("{s:s, s:s, s:O}", "tool", tc->name, "callId", tc->id, "input", tc->input));
	if (tool_check(tc->name, tc->input, have_display, action, sizeof(action), why, sizeof(why))) {
		json_object_set_new(item, "output", json_sprintf("invalid tool call: %s", why));
		json_object_set_new(item, "isError", json_true());
	} else if (!approval_ask(tc->name, action, label, tc->input, note, sizeof(note))) {
		json_object_set_new(item, "output",
				    json_sprintf("not done: the action was refused (%s)", note));
		json_object_set_new(item, "isError", json_true());
		json_object_set_new(item, "refused", json_true());
	} else {
		tool_run(tc->name, tc->input, &interrupted, &r);
		json_object_set_new(item, "output", json_stringn(r.out.data ? r.out.data : "", r.out.len));
		json_object_set_new(item, "isError", json_boolean(r.is_error));
		if (r.image_b64)
			json_object_set_new(item, "image", json_string(r.image_b64));
		tool_result_release(&r);
	}
	emit_message("tool_result", reply_to, json_string_value(json_object_get(item, "output")),
		     json_pack("{s:s, s:s, s:b, s:b, s:b}", "tool", tc->name, "callId", tc->id, "isError",
			       json_is_true(json_object_get(item, "isError")), "refused",
			       json_is_true(json_object_get(item, "refused")), "image",
			       json_object_get(item, "image") != NULL));
	return item;
}

/* One model step: returns 1 when the model wants tools run again, 0 when
 * it answered, -1 on an error (reported). */
static int task_step(const struct provider *p, const char *msg_id)
{
	struct llm_turn t;
	char code[64], msg[600];
	enum outcome o = model_call(p, msg_id, &t, code, sizeof(code), msg, sizeof(msg));
	json_t *calls = json_array(), *results;

	if (o == CALL_STOPPED)
		return -2;
	if (o != CALL_OK) {
		emit_message("error", msg_id, msg, json_pack("{s:s, s:s}", "code", code, "provider", p->name));
		json_decref(calls);
		return -1;
	}
	for (int i = 0; i < t.ncalls; i++)
		json_array_append_new(calls, json_pack("{s:s, s:s, s:O}", "id", t.calls[i].id, "name",
						       t.calls[i].name, "input", t.calls[i].input));
	pthread_mutex_lock(&lk);
	json_array_append_new(history, json_pack("{s:s, s:s%, s:o}", "role", "assistant", "text",
						 t.text.data ? t.text.data : "", t.text.len, "toolCalls", calls));
	save_state();
	pthread_mutex_unlock(&lk);
	if (t.text.len)
		emit_message("assistant", msg_id, t.text.data, NULL);
	if (!t.ncalls) {
		llm_turn_release(&t);
		return 0;
	}
	results = json_array();
	for (int i = 0; i < t.ncalls && !interrupted; i++)
		json_array_append_new(results, tool_call(msg_id, &t.calls[i]));
	/* Every call needs its result, even the ones an interrupt skipped. */
	for (int i = (int)json_array_size(results); i < t.ncalls; i++)
		json_array_append_new(results, json_pack("{s:s, s:s, s:s, s:b}", "id", t.calls[i].id, "name",
							 t.calls[i].name, "output", "interrupted", "isError", 1));
	pthread_mutex_lock(&lk);
	json_array_append_new(history, json_pack("{s:s, s:o}", "role", "tool", "results", results));
	history_trim();
	save_state();
	pthread_mutex_unlock(&lk);
	llm_turn_release(&t);
	return interrupted ? -2 : 1;
}

static void task_run(const char *msg_id, const char *text)
{
	struct provider p;
	char why[400];
	int r = 1, steps = 0;

	emit_status("working", text);
	pthread_mutex_lock(&lk);
	if (!history_find_user(msg_id))
		json_array_append_new(history, json_pack("{s:s, s:s, s:s}", "role", "user", "msgId", msg_id,
							 "text", text));
	else if (strcmp(json_string_value(json_object_get(json_array_get(history, json_array_size(history) - 1), "role")) ?: "", "tool") &&
		 strcmp(json_string_value(json_object_get(json_array_get(history, json_array_size(history) - 1), "role")) ?: "", "user")) {
		/* Resumed after a restart, but that task had finished. */
		pthread_mutex_unlock(&lk);
		emit_status("idle", NULL);
		return;
	}
	save_state();
	pthread_mutex_unlock(&lk);
	if (provider_load(&p, why, sizeof(why))) {
		emit_message("error", msg_id, why, json_pack("{s:s}", "code", "not_configured"));
		emit_status("error", NULL);
		return;
	}
	while (r == 1 && steps++ < PILOT_STEPS_MAX && !interrupted)
		r = task_step(&p, msg_id);
	explicit_bzero(p.key, sizeof(p.key));
	if (interrupted || r == -2) {
		emit_message("error", msg_id, "Interrupted: the task was stopped on request.",
			     json_pack("{s:s}", "code", "interrupted"));
		emit_status("idle", NULL);
	} else if (r == 1) {
		emit_message("error", msg_id, "Stopped: the task took more steps than allowed.",
			     json_pack("{s:s}", "code", "too_many_steps"));
		emit_status("error", NULL);
	} else {
		emit_status(r < 0 ? "error" : "idle", NULL);
	}
}

static void *worker(void *arg)
{
	for (;;) {
		json_t *m;
		char *id, *text;

		pthread_mutex_lock(&lk);
		while (!json_array_size(queue))
			pthread_cond_wait(&cv, &lk);
		m = json_array_get(queue, 0);
		id = strdup(json_string_value(json_object_get(m, "msgId")) ?: "");
		text = strdup(json_string_value(json_object_get(m, "message")) ?: "");
		interrupted = 0;
		pthread_mutex_unlock(&lk);
		task_run(id, text);
		pthread_mutex_lock(&lk);
		if (json_array_size(queue) &&
		    !strcmp(json_string_value(json_object_get(json_array_get(queue, 0), "msgId")) ?: "", id))
			json_array_remove(queue, 0);
		interrupted = 0;
		save_state();
		pthread_mutex_unlock(&lk);
		free(id);
		free(text);
	}
	return arg;
}

/* ---- lines from the agent ---- */

static void on_send(json_t *m)
{
	const char *id = json_string_value(json_object_get(m, "msgId"));
	const char *text = json_string_value(json_object_get(m, "message"));
	json_t *reply;

	if (!id || !text) {
		emit(json_pack("{s:s, s:O?, s:s}", "type", "error", "id", json_object_get(m, "id"),
			       "message", "chat.send needs msgId and message"));
		return;
	}
	pthread_mutex_lock(&lk);
	if (!seen_has(id)) {
		json_array_append_new(queue, json_pack("{s:s, s:s}", "msgId", id, "message", text));
		json_array_append_new(seen, json_string(id));
		save_state();
		pthread_cond_broadcast(&cv);
	}
	pthread_mutex_unlock(&lk);
	reply = json_pack("{s:s, s:s}", "type", "chat.accepted", "msgId", id);
	if (json_object_get(m, "id"))
		json_object_set(reply, "id", json_object_get(m, "id"));
	emit(reply);
}

static void on_line(const char *line, size_t len)
{
	json_t *m = json_loadb(line, len, 0, NULL);
	const char *type = json_string_value(json_object_get(m, "type"));

	if (!type) {
		json_decref(m);
		return;
	}
	if (!strcmp(type, "chat.send")) {
		on_send(m);
	} else if (!strcmp(type, "chat.interrupt")) {
		pthread_mutex_lock(&lk);
		interrupted = 1;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&lk);
	} else if (!strcmp(type, "approval.decision")) {
		const char *ref = json_string_value(json_object_get(m, "ref"));
		const char *d = json_string_value(json_object_get(m, "decision"));
		const char *note = json_string_value(json_object_get(m, "note"));

		pthread_mutex_lock(&lk);
		if (ref && d && *pending_ref && !strcmp(ref, pending_ref)) {
			snprintf(pending_decision, sizeof(pending_decision), "%s", d);
			snprintf(pending_note, sizeof(pending_note), "%s", note ? note : "");
			pthread_cond_broadcast(&cv);
		}
		pthread_mutex_unlock(&lk);
	} else if (!strcmp(type, "host.hello")) {
		/* bureaud (re)connected: a question it may not have seen. */
		pthread_mutex_lock(&lk);
		if (pending_check)
			emit(json_incref(pending_check));
		pthread_mutex_unlock(&lk);
		emit(json_pack("{s:s}", "type", "pilot.hello"));
	}
	json_decref(m);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config-dir", required_argument, NULL, 'c'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"display", no_argument, NULL, 'd'},
	    {NULL, 0, NULL, 0},
	};
	pthread_t th;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int c;

	snprintf(state_dir, sizeof(state_dir), "%s/.local/share/bureau/pilot", tool_home());
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'c')
			snprintf(config_dir, sizeof(config_dir), "%s", optarg);
		else if (c == 's')
			snprintf(state_dir, sizeof(state_dir), "%s", optarg);
		else if (c == 'd')
			have_display = 1;
		else {
			fprintf(stderr, "usage: bureau-pilot [--config-dir DIR] [--state-dir DIR] [--display]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	umask(077);
	state_load();
	if (pthread_create(&th, NULL, worker, NULL))
		return 1;
	emit(json_pack("{s:s}", "type", "pilot.hello"));
	pthread_mutex_lock(&lk);
	if (json_array_size(queue))
		pthread_cond_broadcast(&cv);
	else
		emit_status("idle", NULL);
	pthread_mutex_unlock(&lk);
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (n > PILOT_LINE_MAX)
			continue;
		on_line(line, (size_t)n);
	}
	/* The agent went away: so do we (it starts a new pilot). */
	return 0;
}
