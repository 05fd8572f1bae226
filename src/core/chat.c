/* The conversation with a desktop's pilot, bureaud's side. See pilot.h. */
#include "core/pilot.h"
#include "core/app.h"
#include "core/core.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "store/store.h"
#include "vm/driver.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CHAT_SEND_TIMEOUT_MS 15000
#define CHAT_DELTA_MAX 8192	/* one streamed piece of a reply, bytes */
#define AGENT_TASK_MAX 512	/* what the desktop JSON shows of the task */

/* The agents' statuses by desktop, for desktop_json on any thread. */
struct agent_entry {
	char id[ID_MAX];
	json_t *agent; /* {"task","status","lastActivityAt"} */
	struct agent_entry *next;
};

static pthread_mutex_t agent_lock = PTHREAD_MUTEX_INITIALIZER;
static struct agent_entry *agent_head;

static void agent_cache_put(const char *desktop_id, json_t *agent)
{
	struct agent_entry *e;

	pthread_mutex_lock(&agent_lock);
	for (e = agent_head; e && strcmp(e->id, desktop_id); e = e->next)
		;
	if (!e) {
		e = xcalloc(1, sizeof(*e));
		snprintf(e->id, sizeof(e->id), "%s", desktop_id);
		e->next = agent_head;
		agent_head = e;
	}
	json_decref(e->agent);
	e->agent = json_deep_copy(agent);
	pthread_mutex_unlock(&agent_lock);
}

json_t *chat_agent_json(const char *desktop_id)
{
	struct agent_entry *e;
	json_t *j = NULL;

	pthread_mutex_lock(&agent_lock);
	for (e = agent_head; e && strcmp(e->id, desktop_id); e = e->next)
		;
	if (e && e->agent)
		j = json_deep_copy(e->agent);
	pthread_mutex_unlock(&agent_lock);
	if (!j)
		j = json_pack("{s:n, s:s, s:n}", "task", "status", "idle", "lastActivityAt");
	return j;
}

json_t *chat_msg_json(const struct chat_msg *m)
{
	char created[32];
	json_t *j, *data = m->data ? json_loads(m->data, 0, NULL) : NULL;

	time_iso(m->created_at, created);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", m->id, "desktopId", m->desktop_id,
		      "role", m->role, "content", m->content ? m->content : "", "createdAt",
		      created, "data", data ? data : json_null());
	json_object_set_new(j, "status", *m->status ? json_string(m->status) : json_null());
	json_object_set_new(j, "replyTo", *m->reply_to ? json_string(m->reply_to) : json_null());
	json_object_set_new(j, "userId", *m->user_id ? json_string(m->user_id) : json_null());
	return j;
}

int chat_store_message(struct store *s, const struct desktop *d, struct chat_msg *m,
		       struct event *ev, struct err *err)
{
	const char *type = !strcmp(m->role, "tool_call") || !strcmp(m->role, "tool_result")
			       ? "chat.tool"
			       : "chat.message";
	struct audit_entry a = {0};

	if (!*m->id)
		id_new(m->id, sizeof(m->id), "msg");
	snprintf(m->desktop_id, sizeof(m->desktop_id), "%s", d->id);
	snprintf(m->workspace_id, sizeof(m->workspace_id), "%s", d->workspace_id);
	if (!m->created_at)
		m->created_at = now_ms();
	if (store_chat_insert(s, m, err))
		return -1;
	/* User messages are audited with their request; the pilot's here. */
	if (strcmp(m->role, "user")) {
		snprintf(a.workspace_id, sizeof(a.workspace_id), "%s", d->workspace_id);
		snprintf(a.action, sizeof(a.action), "chat.agent.%s", m->role);
		snprintf(a.target, sizeof(a.target), "%s", d->id);
		a.detail = json_dumps(json_pack("{s:s}", "messageId", m->id), JSON_COMPACT);
		a.created_at = m->created_at;
		store_audit_append(s, &a, err);
		free(a.detail);
	}
	return core_store_event(s, d, type, json_pack("{s:o}", "message", chat_msg_json(m)), ev,
				err);
}

/* Work on one desktop's row, then publish: the shape of every handler of a
 * pilot message. */
struct pjob {
	struct app *app;
	struct desktop d;
	json_t *msg;
	struct event ev[2];
	int nev;
	struct err err;
	void (*fn)(struct store *s, struct pjob *j);
	struct pjob *next;
};

/* Pilot messages are stored one at a time, in the order they arrived:
 * worker threads would otherwise let a reply overtake its tool call. */
static struct pjob *pjob_head, *pjob_tail;
static int pjob_running;

static void pjob_work(struct store *s, void *arg);
static void pjob_done(void *arg);

static void pjob_next(struct app *app)
{
	struct pjob *j = pjob_head;

	if (pjob_running || !j)
		return;
	pjob_head = j->next;
	if (!pjob_head)
		pjob_tail = NULL;
	pjob_running = 1;
	job_submit(app, pjob_work, pjob_done, j);
}

static void pjob_work(struct store *s, void *arg)
{
	struct pjob *j = arg;

	j->fn(s, j);
}

static void pjob_done(void *arg)
{
	struct pjob *j = arg;
	struct app *app = j->app;

	for (int i = 0; i < j->nev; i++)
		core_publish(app, &j->ev[i]);
	json_decref(j->msg);
	free(j);
	pjob_running = 0;
	pjob_next(app);
}

static void pjob_submit(struct app *app, const struct desktop *d, json_t *msg,
			void (*fn)(struct store *s, struct pjob *j))
{
	struct pjob *j = xcalloc(1, sizeof(*j));

	j->app = app;
	j->d = *d;
	j->msg = json_incref(msg);
	j->fn = fn;
	if (pjob_tail)
		pjob_tail->next = j;
	else
		pjob_head = j;
	pjob_tail = j;
	pjob_next(app);
}

static const char *str_field(json_t *msg, const char *name)
{
	const char *v = json_string_value(json_object_get(msg, name));
	return v ? v : "";
}

/* Stores the agent's status (and the task it works on). */
static void status_store(struct store *s, struct pjob *j)
{
	char at[32], *text, *old = NULL;
	const char *status = str_field(j->msg, "status");
	json_t *prev = NULL, *agent, *task = json_object_get(j->msg, "task");
	struct err err = ERR_INIT;

	if (!store_desktop_setting_get(s, j->d.id, "agent", &old, &err))
		prev = json_loads(old, 0, NULL);
	free(old);
	time_iso(now_ms(), at);
	agent = json_pack("{s:O?, s:s, s:s}", "task",
			  json_is_string(task) ? task : json_object_get(prev, "task"), "status",
			  status, "lastActivityAt", at);
	if (!json_object_get(agent, "task"))
		json_object_set_new(agent, "task", json_null());
	json_decref(prev);
	text = json_dumps(agent, JSON_COMPACT);
	if (store_desktop_setting_put(s, j->d.id, "agent", text, now_ms(), &j->err))
		log_warnx("desktop=%s agent status not stored: %s", j->d.id, j->err.msg);
	agent_cache_put(j->d.id, agent);
	if (!core_store_event(s, &j->d, "agent.status", json_pack("{s:O}", "agent", agent),
			      &j->ev[j->nev], &j->err))
		j->nev++;
	free(text);
	json_decref(agent);
}

static int status_valid(const char *s)
{
	static const char *const ok[] = {"idle", "working", "waiting_approval", "error"};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!strcmp(ok[i], s))
			return 1;
	return 0;
}

static void on_status(struct app *app, const struct desktop *d, json_t *msg)
{
	json_t *task = json_object_get(msg, "task");

	if (!status_valid(str_field(msg, "status")) || (task && !json_is_string(task)) ||
	    (task && json_string_length(task) > AGENT_TASK_MAX)) {
		log_warnx("desktop=%s malformed pilot.status", d->id);
		return;
	}
	pjob_submit(app, d, msg, status_store);
}

void chat_agent_status(struct app *app, const struct desktop *d, const char *status)
{
	json_t *msg = json_pack("{s:s, s:s}", "type", "pilot.status", "status", status);

	pjob_submit(app, d, msg, status_store);
	json_decref(msg);
}

static void message_store(struct store *s, struct pjob *j)
{
	struct chat_msg m = {0};
	json_t *data = json_object_get(j->msg, "data");
	const char *content = str_field(j->msg, "content");
	size_t len = strlen(content);

	snprintf(m.role, sizeof(m.role), "%s", str_field(j->msg, "role"));
	snprintf(m.reply_to, sizeof(m.reply_to), "%s", str_field(j->msg, "replyTo"));
	m.content = xstrndup(content, len > CHAT_CONTENT_MAX ? CHAT_CONTENT_MAX : len);
	m.data = json_is_object(data) ? json_dumps(data, JSON_COMPACT) : NULL;
	if (m.data && strlen(m.data) > CHAT_CONTENT_MAX) {
		free(m.data);
		m.data = xstrdup("{\"truncated\":true}");
	}
	if (chat_store_message(s, &j->d, &m, &j->ev[j->nev], &j->err))
		log_warnx("desktop=%s chat message not stored: %s", j->d.id, j->err.msg);
	else
		j->nev++;
	free(m.content);
	free(m.data);
}

static void on_message(struct app *app, const struct desktop *d, json_t *msg)
{
	static const char *const roles[] = {"assistant", "tool_call", "tool_result", "error"};
	const char *role = str_field(msg, "role");
	size_t i;

	for (i = 0; i < sizeof(roles) / sizeof(roles[0]) && strcmp(roles[i], role); i++)
		;
	if (i == sizeof(roles) / sizeof(roles[0]) || !json_is_string(json_object_get(msg, "content"))) {
		log_warnx("desktop=%s malformed chat.message", d->id);
		return;
	}
	pjob_submit(app, d, msg, message_store);
}

static void delta_store(struct store *s, struct pjob *j)
{
	if (!core_store_event(s, &j->d, "chat.delta",
			      json_pack("{s:s, s:s}", "replyTo", str_field(j->msg, "replyTo"),
					"text", str_field(j->msg, "text")),
			      &j->ev[j->nev], &j->err))
		j->nev++;
}

static void on_delta(struct app *app, const struct desktop *d, json_t *msg)
{
	json_t *text = json_object_get(msg, "text");

	if (!json_is_string(text) || json_string_length(text) > CHAT_DELTA_MAX)
		return;
	pjob_submit(app, d, msg, delta_store);
}

static void usage_store(struct store *s, struct pjob *j)
{
	json_int_t in = json_integer_value(json_object_get(j->msg, "inputTokens"));
	json_int_t out = json_integer_value(json_object_get(j->msg, "outputTokens"));

	if (store_llm_usage_add(s, j->d.id, j->d.workspace_id, str_field(j->msg, "provider"),
				str_field(j->msg, "model"), in, out, now_ms(), &j->err))
		log_warnx("desktop=%s usage not stored: %s", j->d.id, j->err.msg);
}

static void on_usage(struct app *app, const struct desktop *d, json_t *msg)
{
	json_t *in = json_object_get(msg, "inputTokens"), *out = json_object_get(msg, "outputTokens");

	if (!json_is_integer(in) || !json_is_integer(out) || json_integer_value(in) < 0 ||
	    json_integer_value(out) < 0) {
		log_warnx("desktop=%s malformed pilot.usage", d->id);
		return;
	}
	pjob_submit(app, d, msg, usage_store);
}

void approvals_on_check(struct app *app, const struct desktop *d, json_t *msg);

static const struct {
	const char *type;
	void (*fn)(struct app *app, const struct desktop *d, json_t *msg);
} pilot_handlers[] = {
    {"chat.delta", on_delta},
    {"chat.message", on_message},
    {"pilot.status", on_status},
    {"pilot.usage", on_usage},
    {"approval.check", approvals_on_check},
};

int pilot_agent_msg(struct app *app, const struct desktop *d, struct vm *vm, json_t *msg)
{
	const char *type = json_string_value(json_object_get(msg, "type"));

	(void)vm;
	if (!type)
		return 0;
	for (size_t i = 0; i < sizeof(pilot_handlers) / sizeof(pilot_handlers[0]); i++)
		if (!strcmp(pilot_handlers[i].type, type)) {
			pilot_handlers[i].fn(app, d, msg);
			return 1;
		}
	/* The pilot (re)started: whatever was queued meanwhile goes now. */
	if (!strcmp(type, "pilot.hello")) {
		chat_push(app, d->id);
		return 1;
	}
	return 0;
}

/* Delivery */

struct push {
	struct app *app;
	char id[ID_MAX];
	struct chat_msg *list;
	size_t n;
	struct err err;
	int failed;
};

struct sent {
	struct app *app;
	char msg_id[ID_MAX];
	struct err err;
};

static void delivered_work(struct store *s, void *arg)
{
	struct sent *x = arg;

	if (store_chat_delivered(s, x->msg_id, now_ms(), &x->err))
		log_warnx("message=%s not marked delivered: %s", x->msg_id, x->err.msg);
}

static void delivered_done(void *arg)
{
	free(arg);
}

static void send_reply(json_t *reply, struct err *err, void *arg)
{
	struct sent *x = arg;
	const char *type = reply ? json_string_value(json_object_get(reply, "type")) : NULL;

	if (type && !strcmp(type, "chat.accepted")) {
		job_submit(x->app, delivered_work, delivered_done, x);
		return;
	}
	/* Stays queued: sent again when the pilot says hello or the agent
	 * is ready again. */
	log_info("message=%s not delivered yet: %s", x->msg_id,
		 reply ? str_field(reply, "message") : err->msg);
	free(x);
}

static void push_work(struct store *s, void *arg)
{
	struct push *p = arg;

	p->failed = store_chat_queued(s, p->id, &p->list, &p->n, &p->err) != 0;
}

static void push_done(void *arg)
{
	struct push *p = arg;
	struct vm *vm = core_vm(p->app, p->id);

	if (p->failed)
		log_warnx("desktop=%s queued messages not loaded: %s", p->id, p->err.msg);
	for (size_t i = 0; !p->failed && vm && vm_agent_connected(vm) && i < p->n; i++) {
		struct sent *x = xcalloc(1, sizeof(*x));
		json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "type", "chat.send", "msgId",
				      p->list[i].id, "message", p->list[i].content, "from",
				      p->list[i].user_id);

		x->app = p->app;
		snprintf(x->msg_id, sizeof(x->msg_id), "%s", p->list[i].id);
		vm_agent_request(vm, m, CHAT_SEND_TIMEOUT_MS, send_reply, x);
		json_decref(m);
	}
	store_chat_free(p->list, p->n);
	free(p);
}

void chat_push(struct app *app, const char *desktop_id)
{
	struct push *p = xcalloc(1, sizeof(*p));

	p->app = app;
	snprintf(p->id, sizeof(p->id), "%s", desktop_id);
	job_submit(app, push_work, push_done, p);
}

/* Startup: the statuses the desktops' agents last reported. */
struct agents_load {
	struct desktop_setting *v;
	size_t n;
};

static void agents_work(struct store *s, void *arg)
{
	struct agents_load *l = arg;
	struct err err = ERR_INIT;

	if (store_desktop_setting_all(s, "agent", &l->v, &l->n, &err))
		log_warnx("agent statuses not loaded: %s", err.msg);
}

static void agents_done(void *arg)
{
	struct agents_load *l = arg;

	for (size_t i = 0; i < l->n; i++) {
		json_t *a = json_loads(l->v[i].value ? l->v[i].value : "", 0, NULL);

		if (a)
			agent_cache_put(l->v[i].desktop_id, a);
		json_decref(a);
	}
	store_desktop_settings_free(l->v, l->n);
	free(l);
}

void approvals_init(struct app *app);

void pilot_init(struct app *app)
{
	job_submit(app, agents_work, agents_done, xcalloc(1, sizeof(struct agents_load)));
	approvals_init(app);
}
