/* Approvals, bureaud's side: the policy that decides what is sensitive,
 * and the life of an approval (created with a screenshot, decided by a
 * person or denied when its timeout passes). See pilot.h. */
#include "core/pilot.h"
#include "core/app.h"
#include "core/core.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "store/store.h"
#include "vm/driver.h"

#include <fnmatch.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#define APPROVAL_ACTION_MAX (16 * 1024) /* the command or action, bytes */
#define APPROVAL_REF_MAX 63
#define APPROVAL_RECENT_MAX 256		/* decisions remembered for pilots that ask again */

/* ---- the policy ---- */

/* Where a shell command starts: the beginning, or after a separator. */
#define CMD_START "(^|[;&|(`\n]|\\$\\()[ \t]*"

static const struct {
	const char *why;
	const char *re; /* POSIX extended */
} shell_rules[] = {
    {"runs a command as root (sudo)", CMD_START "([A-Za-z_]+=[^ ]* +)*sudo([ \t]|$)"},
    {"installs packages (apt)",
     CMD_START "(apt|apt-get|aptitude)[ \t]+([^;&|\n]*[ \t])?(install|reinstall|remove|purge|"
	       "upgrade|dist-upgrade|full-upgrade)([ \t]|$)"},
    {"installs packages (dpkg -i)", CMD_START "dpkg[ \t]+([^;&|\n]*[ \t])?(-i|--install)([ \t]|$)"},
    {"installs packages (pip install)",
     CMD_START "(pip[0-9.]*|python[0-9.]*[ \t]+-m[ \t]+pip)[ \t]+([^;&|\n]*[ \t])?install([ \t]|$)"},
    {"installs packages globally (npm -g)",
     CMD_START "npm[ \t]+(install|i|add)[ \t]+([^;&|\n]*[ \t])?(-g|--global)([ \t]|$)"},
    {"pushes to a git remote (git push)", CMD_START "git[ \t]+([^;&|\n]*[ \t])?push([ \t]|$)"},
    {"pipes a download into a shell",
     "(curl|wget)[^|\n]*\\|[ \t]*(sudo[ \t]+)?(sh|bash|zsh|dash|ksh)([ \t]|$)"},
};

static const char *const home_prefixes[] = {"/home/agent", "/data/home/agent", "/root",
					     "/tmp", "/var/tmp"};

/* Whether a path argument of rm/mv lies outside the home (and scratch)
 * folders. Relative paths stay in the working folder, unless they climb. */
static int path_outside_home(const char *p)
{
	size_t i, l;

	if (!strncmp(p, "~/", 2) || !strcmp(p, "~"))
		return strstr(p, "..") != NULL;
	if (*p != '/')
		return strstr(p, "../") != NULL || !strcmp(p, "..");
	if (strstr(p, "/.."))
		return 1;
	for (i = 0; i < sizeof(home_prefixes) / sizeof(home_prefixes[0]); i++) {
		l = strlen(home_prefixes[i]);
		if (!strncmp(p, home_prefixes[i], l) && (p[l] == '/' || p[l] == '\0'))
			return 0;
	}
	return 1;
}

/* rm or mv with an argument outside the home folder, in any segment of the
 * command line. */
static int shell_deletes_outside(const char *cmd)
{
	char *copy = xstrdup(cmd), *save = NULL, *seg, *w, *save2;
	int found = 0;

	for (seg = strtok_r(copy, ";&|\n", &save); seg && !found; seg = strtok_r(NULL, ";&|\n", &save)) {
		int first = 1, is_rm = 0;

		for (w = strtok_r(seg, " \t", &save2); w && !found; w = strtok_r(NULL, " \t", &save2)) {
			if (first) {
				const char *base = strrchr(w, '/') ? strrchr(w, '/') + 1 : w;
				if (strchr(w, '=') && !is_rm)
					continue; /* VAR=value before the command */
				if (!strcmp(base, "sudo"))
					continue;
				is_rm = !strcmp(base, "rm") || !strcmp(base, "mv");
				first = 0;
				if (!is_rm)
					break;
				continue;
			}
			if (*w == '-')
				continue;
			w[strcspn(w, "\"'")] = '\0';
			if (*w && path_outside_home(w))
				found = 1;
		}
	}
	free(copy);
	return found;
}

static int regex_search(const char *re, const char *text)
{
	regex_t r;
	int hit;

	if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB))
		return 0;
	hit = regexec(&r, text, 0, NULL, 0) == 0;
	regfree(&r);
	return hit;
}

static int labelled_sensitive(const char *label, char *why, size_t n)
{
	static const char *const labels[] = {"purchase", "deployment", "credential_entry"};

	for (size_t i = 0; label && i < sizeof(labels) / sizeof(labels[0]); i++)
		if (!strcmp(label, labels[i])) {
			snprintf(why, n, "the model labelled the action a %s", label);
			return 1;
		}
	return 0;
}

/* A workspace rule: {"pattern": glob on the action, "kind"?: one kind}. */
static int rules_match(const json_t *rules, const char *kind, const char *action, char *why,
		       size_t n)
{
	size_t i;
	json_t *r;

	json_array_foreach((json_t *)rules, i, r) {
		const char *pat = json_string_value(json_object_get(r, "pattern"));
		const char *k = json_string_value(json_object_get(r, "kind"));

		if (!pat || (k && strcmp(k, kind)))
			continue;
		if (!fnmatch(pat, action, 0)) {
			snprintf(why, n, "workspace rule \"%.200s\"", pat);
			return 1;
		}
	}
	return 0;
}

int approval_policy_sensitive(const char *kind, const char *action, const char *label,
			      const json_t *rules, char *why, size_t n)
{
	snprintf(why, n, "not sensitive");
	if (labelled_sensitive(label, why, n))
		return 1;
	if (rules && rules_match(rules, kind, action, why, n))
		return 1;
	if (!strcmp(kind, "shell")) {
		for (size_t i = 0; i < sizeof(shell_rules) / sizeof(shell_rules[0]); i++)
			if (regex_search(shell_rules[i].re, action)) {
				snprintf(why, n, "%s", shell_rules[i].why);
				return 1;
			}
		if (shell_deletes_outside(action)) {
			snprintf(why, n, "deletes or moves files outside the home folder");
			return 1;
		}
	}
	/* files: "write PATH" / "edit PATH" outside the home folder. */
	if (!strcmp(kind, "files") && (!strncmp(action, "write ", 6) || !strncmp(action, "edit ", 5))) {
		const char *p = strchr(action, ' ') + 1;
		if (path_outside_home(p)) {
			snprintf(why, n, "writes a file outside the home folder");
			return 1;
		}
	}
	return 0;
}

int approval_rules_check(const json_t *doc, struct err *err)
{
	json_t *rules = json_object_get(doc, "rules"), *t = json_object_get(doc, "timeoutSeconds"), *r;
	size_t i;

	if (!json_is_array(rules))
		return err_set(err, 400, "invalid_request", "\"rules\" must be an array");
	if (json_array_size(rules) > APPROVAL_RULES_MAX)
		return err_set(err, 413, "too_large", "at most %d rules", APPROVAL_RULES_MAX);
	json_array_foreach(rules, i, r) {
		json_t *pat = json_object_get(r, "pattern"), *k = json_object_get(r, "kind");
		const char *ks = json_string_value(k);

		if (!json_is_object(r) || json_object_size(r) > (k ? 2u : 1u) || !json_is_string(pat) ||
		    !json_string_length(pat) || json_string_length(pat) > APPROVAL_PATTERN_MAX)
			return err_set(err, 400, "invalid_request",
				       "rule %zu: {\"pattern\": non-empty string of at most %d "
				       "bytes, \"kind\"?}", i, APPROVAL_PATTERN_MAX);
		if (k && (!ks || (strcmp(ks, "shell") && strcmp(ks, "computer") && strcmp(ks, "files"))))
			return err_set(err, 400, "invalid_request",
				       "rule %zu: kind must be shell, computer or files", i);
	}
	if (t && (!json_is_integer(t) || json_integer_value(t) < 1 ||
		  json_integer_value(t) > APPROVAL_TIMEOUT_MAX_S))
		return err_set(err, 400, "invalid_request",
			       "timeoutSeconds must be an integer from 1 to %d", APPROVAL_TIMEOUT_MAX_S);
	return 0;
}

json_t *approval_json(const struct approval *a)
{
	char created[32], expires[32], decided[32];
	json_t *input = a->input ? json_loads(a->input, 0, NULL) : NULL;
	json_t *j;

	time_iso(a->created_at, created);
	time_iso(a->expires_at, expires);
	time_iso(a->decided_at, decided);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s}", "id", a->id,
		      "desktopId", a->desktop_id, "workspaceId", a->workspace_id, "kind", a->kind,
		      "action", a->action ? a->action : "", "input", input ? input : json_object(),
		      "reason", a->reason, "status", a->status, "createdAt", created, "expiresAt",
		      expires);
	json_object_set_new(j, "decidedAt", a->decided_at ? json_string(decided) : json_null());
	json_object_set_new(j, "decidedBy", *a->decided_by ? json_string(a->decided_by) : json_null());
	json_object_set_new(j, "note", *a->note ? json_string(a->note) : json_null());
	json_object_set_new(j, "screenshotUrl",
			    a->has_screenshot ? json_sprintf("/api/approvals/%s/screenshot", a->id)
					      : json_null());
	return j;
}

/* ---- pending approvals and their timers (loop thread) ---- */

struct pending {
	struct app *app;
	char id[ID_MAX];
	char desktop_id[ID_MAX];
	char ref[APPROVAL_REF_MAX + 1];
	uv_timer_t timer;
	struct pending *next;
};

struct recent {
	char desktop_id[ID_MAX];
	char ref[APPROVAL_REF_MAX + 1];
	char decision[16];
	char approval_id[ID_MAX];
};

static struct pending *pending_head;
static struct recent recent[APPROVAL_RECENT_MAX];
static unsigned recent_next;

static struct pending *pending_find(const char *id, const char *desktop_id, const char *ref)
{
	for (struct pending *p = pending_head; p; p = p->next)
		if (id ? !strcmp(p->id, id) : !strcmp(p->desktop_id, desktop_id) && !strcmp(p->ref, ref))
			return p;
	return NULL;
}

static void pending_closed(uv_handle_t *h)
{
	free(h->data);
}

static void pending_remove(struct pending *p)
{
	struct pending **pp = &pending_head;

	while (*pp && *pp != p)
		pp = &(*pp)->next;
	if (*pp)
		*pp = p->next;
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, pending_closed);
}

static void decision_send(struct app *app, const char *desktop_id, const char *ref,
			  const char *decision, const char *approval_id, const char *note)
{
	struct vm *vm = core_vm(app, desktop_id);
	json_t *m = json_pack("{s:s, s:s, s:s}", "type", "approval.decision", "ref", ref,
			      "decision", decision);

	if (approval_id)
		json_object_set_new(m, "approvalId", json_string(approval_id));
	if (note && *note)
		json_object_set_new(m, "note", json_string(note));
	if (!vm || vm_agent_send(vm, m))
		log_info("desktop=%s approval decision for %s kept until the pilot asks again",
			 desktop_id, ref);
	json_decref(m);
}

static void recent_put(const char *desktop_id, const char *ref, const char *decision,
		       const char *approval_id)
{
	struct recent *r = &recent[recent_next++ % APPROVAL_RECENT_MAX];

	snprintf(r->desktop_id, sizeof(r->desktop_id), "%s", desktop_id);
	snprintf(r->ref, sizeof(r->ref), "%s", ref);
	snprintf(r->decision, sizeof(r->decision), "%s", decision);
	snprintf(r->approval_id, sizeof(r->approval_id), "%s", approval_id ? approval_id : "");
}

static const struct recent *recent_find(const char *desktop_id, const char *ref)
{
	for (size_t i = 0; i < APPROVAL_RECENT_MAX; i++)
		if (!strcmp(recent[i].desktop_id, desktop_id) && !strcmp(recent[i].ref, ref))
			return &recent[i];
	return NULL;
}

void approval_decided(struct app *app, const struct approval *a)
{
	struct pending *p = pending_find(a->id, NULL, NULL);
	const char *decision = !strcmp(a->status, "approved") ? "approve" : "deny";

	recent_put(a->desktop_id, a->ref, decision, a->id);
	if (p)
		pending_remove(p);
	decision_send(app, a->desktop_id, a->ref, decision, a->id, a->note);
}

/* Expiry: fail closed. */
struct expire {
	struct app *app;
	struct approval a;
	struct event ev;
	int decided;
};

static void expire_work(struct store *s, void *arg)
{
	struct expire *x = arg;
	struct err err = ERR_INIT;
	struct desktop d;
	char id[ID_MAX];
	struct audit_entry au = {0};

	if (store_approval_decide(s, x->a.id, "expired", "", "no decision within the timeout",
				  now_ms(), &err))
		return; /* decided meanwhile */
	x->decided = 1;
	/* store_approval_get clears its output first: not the id it reads. */
	snprintf(id, sizeof(id), "%s", x->a.id);
	if (store_approval_get(s, NULL, id, &x->a, &err) ||
	    store_desktop_get(s, x->a.desktop_id, &d, &err))
		return;
	snprintf(au.workspace_id, sizeof(au.workspace_id), "%s", x->a.workspace_id);
	snprintf(au.action, sizeof(au.action), "approval.expire");
	snprintf(au.target, sizeof(au.target), "%s", x->a.id);
	au.detail = xasprintf("{\"decision\":\"deny\",\"decidedBy\":\"timeout\",\"desktopId\":\"%s\"}",
			      x->a.desktop_id);
	au.created_at = now_ms();
	store_audit_append(s, &au, &err);
	free(au.detail);
	core_store_event(s, &d, "approval.decided", json_pack("{s:o}", "approval", approval_json(&x->a)),
			 &x->ev, &err);
}

static void expire_done(void *arg)
{
	struct expire *x = arg;

	if (x->decided) {
		log_info("approval=%s expired: denied", x->a.id);
		recent_put(x->a.desktop_id, x->a.ref, "deny", x->a.id);
		decision_send(x->app, x->a.desktop_id, x->a.ref, "deny", x->a.id,
			      "no decision within the timeout");
	}
	core_publish(x->app, &x->ev);
	store_approval_release(&x->a);
	free(x);
}

static void pending_fire(uv_timer_t *t)
{
	struct pending *p = t->data;
	struct expire *x = xcalloc(1, sizeof(*x));

	x->app = p->app;
	snprintf(x->a.id, sizeof(x->a.id), "%s", p->id);
	pending_remove(p);
	job_submit(x->app, expire_work, expire_done, x);
}

static void pending_add(struct app *app, const struct approval *a)
{
	struct pending *p = xcalloc(1, sizeof(*p));
	int64_t wait = a->expires_at - now_ms();

	p->app = app;
	snprintf(p->id, sizeof(p->id), "%s", a->id);
	snprintf(p->desktop_id, sizeof(p->desktop_id), "%s", a->desktop_id);
	snprintf(p->ref, sizeof(p->ref), "%s", a->ref);
	uv_timer_init(app->loop, &p->timer);
	p->timer.data = p;
	uv_timer_start(&p->timer, pending_fire, wait > 0 ? (uint64_t)wait : 0, 0);
	p->next = pending_head;
	pending_head = p;
}

/* ---- a check from the pilot ---- */

struct check {
	struct app *app;
	struct desktop d;
	char ref[APPROVAL_REF_MAX + 1];
	char kind[16];
	char *action;
	char label[32];
	json_t *input;
	int sensitive;
	struct approval a;
	struct event ev;
	struct err err;
	int failed;
};

/* The workspace's rules document, or NULL for the defaults. */
static json_t *rules_load(struct store *s, const char *workspace_id)
{
	char *text = NULL;
	struct err err = ERR_INIT;
	json_t *doc = NULL;

	if (!store_workspace_setting_get(s, workspace_id, "approvals", &text, &err))
		doc = json_loads(text, 0, NULL);
	free(text);
	return doc;
}

static void check_work(struct store *s, void *arg)
{
	struct check *c = arg;
	json_t *doc = rules_load(s, c->d.workspace_id);
	json_int_t timeout = json_integer_value(json_object_get(doc, "timeoutSeconds"));
	char why[256];
	struct audit_entry au = {0};

	c->sensitive = approval_policy_sensitive(c->kind, c->action, *c->label ? c->label : NULL,
						 json_object_get(doc, "rules"), why, sizeof(why));
	json_decref(doc);
	if (!c->sensitive)
		return;
	id_new(c->a.id, sizeof(c->a.id), "apr");
	snprintf(c->a.desktop_id, sizeof(c->a.desktop_id), "%s", c->d.id);
	snprintf(c->a.workspace_id, sizeof(c->a.workspace_id), "%s", c->d.workspace_id);
	snprintf(c->a.ref, sizeof(c->a.ref), "%s", c->ref);
	snprintf(c->a.kind, sizeof(c->a.kind), "%s", c->kind);
	snprintf(c->a.reason, sizeof(c->a.reason), "%s", why);
	snprintf(c->a.status, sizeof(c->a.status), "pending");
	c->a.action = xstrdup(c->action);
	c->a.input = json_dumps(c->input ? c->input : json_object(), JSON_COMPACT);
	c->a.created_at = now_ms();
	c->a.expires_at = c->a.created_at + 1000 * (timeout > 0 ? timeout : APPROVAL_TIMEOUT_DEFAULT_S);
	if (store_approval_insert(s, &c->a, &c->err)) {
		c->failed = 1;
		return;
	}
	snprintf(au.workspace_id, sizeof(au.workspace_id), "%s", c->d.workspace_id);
	snprintf(au.action, sizeof(au.action), "approval.create");
	snprintf(au.target, sizeof(au.target), "%s", c->a.id);
	au.detail = json_dumps(json_pack("{s:s, s:s, s:s}", "desktopId", c->d.id, "action",
					 c->action, "reason", why), JSON_COMPACT);
	au.created_at = now_ms();
	store_audit_append(s, &au, &c->err);
	free(au.detail);
	core_store_event(s, &c->d, "approval.created",
			 json_pack("{s:o}", "approval", approval_json(&c->a)), &c->ev, &c->err);
}

struct shot {
	struct app *app;
	char id[ID_MAX];
	uint8_t *png;
	size_t len;
	struct event ev; /* approval.updated: it has its screenshot now */
};

static void shot_work(struct store *s, void *arg)
{
	struct shot *x = arg;
	struct err err = ERR_INIT;
	struct approval a;
	struct desktop d;

	if (store_approval_screenshot_put(s, x->id, x->png, x->len, &err)) {
		log_warnx("approval=%s screenshot not stored: %s", x->id, err.msg);
		return;
	}
	if (store_approval_get(s, NULL, x->id, &a, &err))
		return;
	if (store_desktop_get(s, a.desktop_id, &d, &err) == 0)
		core_store_event(s, &d, "approval.updated",
				 json_pack("{s:o}", "approval", approval_json(&a)), &x->ev, &err);
	store_approval_release(&a);
}

static void shot_done(void *arg)
{
	struct shot *x = arg;

	core_publish(x->app, &x->ev);
	free(x->png);
	free(x);
}

static void shot_taken(const uint8_t *png, size_t len, struct err *err, void *arg)
{
	struct shot *x = arg;

	if (!png) {
		log_warnx("approval=%s no screenshot: %s", x->id, err ? err->msg : "?");
		free(x);
		return;
	}
	x->png = xmalloc(len);
	memcpy(x->png, png, len);
	x->len = len;
	job_submit(x->app, shot_work, shot_done, x);
}

static void check_done(void *arg)
{
	struct check *c = arg;
	struct vm *vm = core_vm(c->app, c->d.id);

	if (c->failed) {
		log_warnx("desktop=%s approval not created: %s", c->d.id, c->err.msg);
		decision_send(c->app, c->d.id, c->ref, "deny", NULL, "approval could not be created");
	} else if (!c->sensitive) {
		decision_send(c->app, c->d.id, c->ref, "allow", NULL, NULL);
	} else {
		log_info("desktop=%s approval=%s pending: %s", c->d.id, c->a.id, c->a.reason);
		chat_agent_status(c->app, &c->d, "waiting_approval");
		pending_add(c->app, &c->a);
		core_publish(c->app, &c->ev);
		if (vm) {
			struct shot *x = xcalloc(1, sizeof(*x));
			x->app = c->app;
			snprintf(x->id, sizeof(x->id), "%s", c->a.id);
			vm_screenshot(vm, 0, shot_taken, x);
		}
	}
	free(c->action);
	json_decref(c->input);
	store_approval_release(&c->a);
	free(c);
}

void approvals_on_check(struct app *app, const struct desktop *d, json_t *msg);

void approvals_on_check(struct app *app, const struct desktop *d, json_t *msg)
{
	const char *ref = json_string_value(json_object_get(msg, "ref"));
	const char *kind = json_string_value(json_object_get(msg, "kind"));
	const char *action = json_string_value(json_object_get(msg, "action"));
	const char *label = json_string_value(json_object_get(msg, "label"));
	json_t *input = json_object_get(msg, "input");
	const struct recent *r;
	struct check *c;

	if (!ref || !*ref || strlen(ref) > APPROVAL_REF_MAX || !kind ||
	    (strcmp(kind, "shell") && strcmp(kind, "computer") && strcmp(kind, "files")) ||
	    !action || strlen(action) > APPROVAL_ACTION_MAX || (label && strlen(label) > 31) ||
	    (input && !json_is_object(input))) {
		log_warnx("desktop=%s malformed approval.check", d->id);
		if (ref && strlen(ref) <= APPROVAL_REF_MAX)
			decision_send(app, d->id, ref, "deny", NULL, "malformed approval check");
		return;
	}
	/* Asked again (the pilot or bureaud restarted): same answer. */
	if (pending_find(NULL, d->id, ref))
		return;
	if ((r = recent_find(d->id, ref))) {
		decision_send(app, d->id, ref, r->decision, *r->approval_id ? r->approval_id : NULL,
			      NULL);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->app = app;
	c->d = *d;
	snprintf(c->ref, sizeof(c->ref), "%s", ref);
	snprintf(c->kind, sizeof(c->kind), "%s", kind);
	snprintf(c->label, sizeof(c->label), "%s", label ? label : "");
	c->action = xstrdup(action);
	c->input = input ? json_deep_copy(input) : NULL;
	job_submit(app, check_work, check_done, c);
}

/* ---- startup ---- */

struct load {
	struct app *app;
	struct approval *list;
	size_t n;
};

static void load_work(struct store *s, void *arg)
{
	struct load *l = arg;
	struct err err = ERR_INIT;

	if (store_approval_list(s, NULL, "pending", 0, &l->list, &l->n, &err))
		log_warnx("pending approvals not loaded: %s", err.msg);
}

static void load_done(void *arg)
{
	struct load *l = arg;

	for (size_t i = 0; i < l->n; i++)
		if (!pending_find(l->list[i].id, NULL, NULL))
			pending_add(l->app, &l->list[i]);
	store_approvals_free(l->list, l->n);
	free(l);
}

void approvals_init(struct app *app);

void approvals_init(struct app *app)
{
	struct load *l = xcalloc(1, sizeof(*l));

	l->app = app;
	job_submit(app, load_work, load_done, l);
}

void pilot_shutdown(struct app *app)
{
	(void)app;
	while (pending_head)
		pending_remove(pending_head);
}
