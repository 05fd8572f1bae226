/* One egress proxy per running desktop (core/egress.c does the tunnels):
 * its policy is the desktop's LLM provider host plus its workspace's
 * allowlist, held in memory because the proxy decides on the loop; every
 * decision goes to the store's egress log. See pilot.h. */
#include "core/pilot.h"
#include "core/app.h"
#include "core/egress.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#define EGRESS_PATTERN_MAX 255

/* The hosts each provider's API lives on, when no base URL is set. */
static const struct {
	const char *provider;
	const char *host;
} provider_hosts[] = {
    {"anthropic", "api.anthropic.com"},
    {"openai", "api.openai.com"},
    {"openrouter", "openrouter.ai"},
};

struct edesk {
	struct app *app;
	char id[ID_MAX];
	char workspace_id[ID_MAX];
	struct egress *proxy;
	json_t *allow; /* array of patterns, provider host first */
	int closed;
	struct edesk *next;
};

static struct edesk *edesk_head;

int egress_provider_host(const char *provider, const char *base_url, char *host, size_t n,
			 int *port)
{
	const char *p, *end;
	size_t len;

	*port = 443;
	host[0] = '\0';
	if (base_url && *base_url) {
		p = strstr(base_url, "://");
		if (!p)
			return -1;
		if (!strncmp(base_url, "http://", 7))
			*port = 80;
		p += 3;
		end = p + strcspn(p, "/?#");
		len = (size_t)(end - p);
		if (!len || len >= n)
			return -1;
		memcpy(host, p, len);
		host[len] = '\0';
		if (host[0] != '[' && strchr(host, ':')) {
			*port = atoi(strchr(host, ':') + 1);
			*strchr(host, ':') = '\0';
		}
		return *port > 0 && *port < 65536 ? 0 : -1;
	}
	for (size_t i = 0; provider && i < sizeof(provider_hosts) / sizeof(provider_hosts[0]); i++)
		if (!strcmp(provider, provider_hosts[i].provider)) {
			snprintf(host, n, "%s", provider_hosts[i].host);
			return 0;
		}
	return -1;
}

int egress_allow_check(const json_t *doc, struct err *err)
{
	json_t *allow = json_object_get(doc, "allow"), *v;
	size_t i;

	if (!json_is_array(allow))
		return err_set(err, 400, "invalid_request", "\"allow\" must be an array of hosts");
	if (json_array_size(allow) > EGRESS_ALLOW_MAX)
		return err_set(err, 413, "too_large", "at most %d allowlist entries", EGRESS_ALLOW_MAX);
	json_array_foreach(allow, i, v) {
		const char *s = json_string_value(v);
		size_t l = s ? strlen(s) : 0;

		if (!s || !l || l > EGRESS_PATTERN_MAX || strspn(s, "abcdefghijklmnopqrstuvwxyz"
							       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
							       "0123456789.-*:[]_") != l ||
		    !strcmp(s, "*") || (strchr(s, '*') && strncmp(s, "*.", 2)) ||
		    strchr(s + 1, '*'))
			return err_set(err, 400, "invalid_request",
				       "allow[%zu]: a host, \"*.domain\" or \"host:port\"", i);
	}
	return 0;
}

static int edesk_allow(const char *host, int port, char *why, size_t n, void *arg)
{
	struct edesk *e = arg;
	size_t i;
	json_t *v;

	json_array_foreach(e->allow, i, v) {
		if (egress_match(json_string_value(v), host, port)) {
			snprintf(why, n, "allowlist %s", json_string_value(v));
			return 1;
		}
	}
	snprintf(why, n, "not in the allowlist");
	return 0;
}

struct logjob {
	struct egress_entry e;
};

static void log_work(struct store *s, void *arg)
{
	struct logjob *l = arg;
	struct err err = ERR_INIT;

	if (store_egress_append(s, &l->e, &err))
		log_warnx("desktop=%s egress log: %s", l->e.desktop_id, err.msg);
}

static void log_done(void *arg)
{
	free(arg);
}

static void edesk_log(const char *host, int port, int allowed, const char *why, uint64_t up,
		      uint64_t down, void *arg)
{
	struct edesk *e = arg;
	struct logjob *l = xcalloc(1, sizeof(*l));

	log_info("desktop=%s egress host=%s port=%d allowed=%d why=\"%s\"", e->id, host, port,
		 allowed, why);
	snprintf(l->e.desktop_id, sizeof(l->e.desktop_id), "%s", e->id);
	snprintf(l->e.workspace_id, sizeof(l->e.workspace_id), "%s", e->workspace_id);
	snprintf(l->e.host, sizeof(l->e.host), "%s", host);
	l->e.port = port;
	l->e.allowed = allowed;
	snprintf(l->e.reason, sizeof(l->e.reason), "%s", why);
	l->e.bytes_up = (int64_t)up;
	l->e.bytes_down = (int64_t)down;
	l->e.created_at = now_ms();
	job_submit(e->app, log_work, log_done, l);
}

/* Loading the policy */

struct pload {
	struct app *app;
	char id[ID_MAX];
	json_t *allow;
};

static void pload_work(struct store *s, void *arg)
{
	struct pload *p = arg;
	struct err err = ERR_INIT;
	struct desktop d;
	char *text = NULL, host[256];
	json_t *doc;
	int port;

	p->allow = json_array();
	if (store_desktop_get(s, p->id, &d, &err))
		return;
	if (!store_desktop_setting_get(s, p->id, "provider", &text, &err) &&
	    (doc = json_loads(text, 0, NULL))) {
		if (!egress_provider_host(json_string_value(json_object_get(doc, "provider")),
					  json_string_value(json_object_get(doc, "baseUrl")), host,
					  sizeof(host), &port))
			json_array_append_new(p->allow, port == 443 ? json_string(host)
								    : json_sprintf("%s:%d", host, port));
		json_decref(doc);
	}
	free(text);
	text = NULL;
	if (!store_workspace_setting_get(s, d.workspace_id, "egress", &text, &err) &&
	    (doc = json_loads(text, 0, NULL))) {
		json_array_extend(p->allow, json_object_get(doc, "allow"));
		json_decref(doc);
	}
	free(text);
}

static struct edesk *edesk_find(const char *id)
{
	for (struct edesk *e = edesk_head; e; e = e->next)
		if (!strcmp(e->id, id))
			return e;
	return NULL;
}

static void pload_done(void *arg)
{
	struct pload *p = arg;
	struct edesk *e = edesk_find(p->id);

	if (e) {
		json_decref(e->allow);
		e->allow = p->allow;
	} else {
		json_decref(p->allow);
	}
	free(p);
}

static void policy_reload(struct app *app, const char *id)
{
	struct pload *p = xcalloc(1, sizeof(*p));

	p->app = app;
	snprintf(p->id, sizeof(p->id), "%s", id);
	job_submit(app, pload_work, pload_done, p);
}

void egress_desktop_open(struct app *app, const struct desktop *d)
{
	struct edesk *e = edesk_find(d->id);
	struct err err = ERR_INIT;
	char path[2048];

	if (e && e->proxy) {
		policy_reload(app, d->id);
		return;
	}
	if (!e) {
		e = xcalloc(1, sizeof(*e));
		e->app = app;
		snprintf(e->id, sizeof(e->id), "%s", d->id);
		e->allow = json_array();
		e->next = edesk_head;
		edesk_head = e;
	}
	snprintf(e->workspace_id, sizeof(e->workspace_id), "%s", d->workspace_id);
	snprintf(path, sizeof(path), "%s/desktops/%s/egress.sock", app->cfg.state_dir, d->id);
	e->proxy = egress_listen(app->loop, path, edesk_allow, edesk_log, e, &err);
	if (!e->proxy)
		log_warnx("desktop=%s egress proxy not started: %s", d->id, err.msg);
	policy_reload(app, d->id);
}

void egress_desktop_close(struct app *app, const char *desktop_id)
{
	struct edesk **pp = &edesk_head, *e;

	(void)app;
	while (*pp && strcmp((*pp)->id, desktop_id))
		pp = &(*pp)->next;
	if (!(e = *pp))
		return;
	*pp = e->next;
	/* The proxy's log callback may still run while its tunnels end:
	 * the record stays allocated (a few bytes per desktop boot). */
	if (e->proxy)
		egress_close(e->proxy);
	e->proxy = NULL;
	e->closed = 1;
}

void egress_workspace_changed(struct app *app, const char *workspace_id)
{
	for (struct edesk *e = edesk_head; e; e = e->next)
		if (!strcmp(e->workspace_id, workspace_id))
			policy_reload(app, e->id);
}

void egress_desktop_close_all(struct app *app)
{
	while (edesk_head)
		egress_desktop_close(app, edesk_head->id);
}
