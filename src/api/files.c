/* Files of a desktop, through its agent (src/agent/files.c holds the path
 * rules): download and upload stream both ways with bounded memory,
 * the rest are requests on the control stream.
 *
 *   GET    /api/desktops/{id}/files?path=P[&user=root]      download
 *   PUT    /api/desktops/{id}/files?path=P[&mode=0644][&user=root]  upload
 *   DELETE /api/desktops/{id}/files?path=P[&recursive=true][&user=root]
 *   GET    /api/desktops/{id}/files/list?path=P[&user=root]
 *   GET    /api/desktops/{id}/files/stat?path=P[&user=root]
 *   POST   /api/desktops/{id}/files/mkdir {"path","parents"?,"mode"?,"user"?}
 *   POST   /api/desktops/{id}/files/move  {"path","to","overwrite"?,"user"?}
 *
 * Checks and the desktop's workspace run on the worker; the loop part talks
 * to the VM. A download's bytes go from the agent's stream to the HTTP
 * stream, pausing the agent while the client's queue is over half the
 * HTTP high mark; an upload's body pieces go to the agent's stream,
 * pausing the socket while the stream's queue is over its high mark. */
#include "api/api.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "core/core.h"
#include "vm/driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILES_PATH_MAX 4095
#define FILES_REQUEST_TIMEOUT_MS 30000
#define FILES_DOWNLOAD_PAUSE (HTTP_STREAM_HIGH_WATER / 2)

/* ---- errors from the agent ---- */

static const struct {
	const char *errnum;
	int status;
	const char *code;
} agent_errnos[] = {
    {"ENOENT", 404, "not_found"},
    {"EACCES", 403, "forbidden"},
    {"EPERM", 403, "forbidden"},
    {"EROFS", 403, "forbidden"},
    {"EXDEV", 403, "forbidden"},
    {"ELOOP", 403, "forbidden"},
    {"EEXIST", 409, "conflict"},
    {"ENOTEMPTY", 409, "conflict"},
    {"EISDIR", 409, "conflict"},
    {"ENOTDIR", 409, "conflict"},
    {"EBUSY", 409, "conflict"},
    {"EINVAL", 400, "invalid_path"},
    {"ENAMETOOLONG", 400, "invalid_path"},
    {"ENOSPC", 507, "insufficient_storage"},
    {"EDQUOT", 507, "insufficient_storage"},
};

/* Turns the agent's {"error"/"message":…, "errno":…} into err. */
void files_agent_err(json_t *j, struct err *err)
{
	const char *e = json_string_value(json_object_get(j, "errno"));
	const char *msg = json_string_value(json_object_get(j, "message"));
	size_t i;

	if (!msg)
		msg = json_string_value(json_object_get(j, "error"));
	for (i = 0; e && i < sizeof(agent_errnos) / sizeof(agent_errnos[0]); i++)
		if (!strcmp(agent_errnos[i].errnum, e)) {
			err_set(err, agent_errnos[i].status, agent_errnos[i].code, "%s",
				msg ? msg : e);
			return;
		}
	err_set(err, 502, "agent_error", "agent: %s", msg ? msg : "unexpected answer");
}

/* ---- checks, on the worker ---- */

/* The query's path and user into c->body as the agent's fields. */
static int files_query(struct api_ctx *c)
{
	char path[FILES_PATH_MAX + 2], user[16];
	int n = http_req_query(c->req, "path", path, sizeof(path));

	if (n < 0)
		return err_set(&c->err, 400, "invalid_path",
			       "query parameter \"path\" is required: an absolute path of at "
			       "most %d bytes without NUL",
			       FILES_PATH_MAX);
	if (n > FILES_PATH_MAX)
		return err_set(&c->err, 400, "invalid_path", "path is longer than %d bytes",
			       FILES_PATH_MAX);
	c->body = json_pack("{s:s}", "path", path);
	if (!c->body)
		return err_set(&c->err, 400, "invalid_path", "path must be UTF-8");
	if (http_req_query(c->req, "user", user, sizeof(user)) >= 0) {
		if (strcmp(user, "agent") && strcmp(user, "root"))
			return err_set(&c->err, 400, "invalid_request",
				       "user must be \"agent\" or \"root\"");
		json_object_set_new(c->body, "user", json_string(user));
	}
	c->audit_detail = json_pack("{s:s}", "path", path);
	return 0;
}

static int flag_query(struct api_ctx *c, const char *key, int *out)
{
	char v[8];

	*out = 0;
	if (http_req_query(c->req, key, v, sizeof(v)) < 0)
		return 0;
	if (!strcmp(v, "true") || !strcmp(v, "1"))
		*out = 1;
	else if (strcmp(v, "false") && strcmp(v, "0"))
		return err_set(&c->err, 400, "invalid_request", "%s must be true or false", key);
	return 0;
}

void files_check(struct api_ctx *c)
{
	desktops_running(c);
	if (c->status >= 400)
		return;
	if (files_query(c))
		api_fail(c, &c->err);
}

void files_delete_check(struct api_ctx *c)
{
	int recursive;

	files_check(c);
	if (c->status >= 400)
		return;
	if (flag_query(c, "recursive", &recursive)) {
		api_fail(c, &c->err);
		return;
	}
	json_object_set_new(c->body, "recursive", json_boolean(recursive));
}

void files_upload_check(struct api_ctx *c)
{
	char mode[8], *end;
	long m;

	files_check(c);
	if (c->status >= 400)
		return;
	if (http_req_query(c->req, "mode", mode, sizeof(mode)) >= 0) {
		m = strtol(mode, &end, 8);
		if (!*mode || *end || m < 0 || m > 07777) {
			err_set(&c->err, 400, "invalid_request", "mode must be octal, 0..7777");
			api_fail(c, &c->err);
			return;
		}
		json_object_set_new(c->body, "mode", json_integer(m));
	}
}

/* The JSON body of mkdir and move: fields checked here, paths by the agent. */
static void files_body_check(struct api_ctx *c, const char *const allowed[], const char *second)
{
	json_t *b;
	const char *path, *user, *to = NULL;
	int flag = 0;

	desktops_running(c);
	if (c->status >= 400)
		return;
	if (!(b = api_body(c, allowed, 0)))
		return;
	c->body = b;
	if (json_get_string(b, "path", 1, &path, &c->err) ||
	    json_get_string(b, "user", 0, &user, &c->err) ||
	    (second && json_get_string(b, second, 1, &to, &c->err))) {
		api_fail(c, &c->err);
		return;
	}
	if (user && strcmp(user, "agent") && strcmp(user, "root")) {
		err_set(&c->err, 400, "invalid_request", "user must be \"agent\" or \"root\"");
		api_fail(c, &c->err);
		return;
	}
	for (const char *const *k = allowed; *k; k++) {
		json_t *v = json_object_get(b, *k);

		if (v && (!strcmp(*k, "parents") || !strcmp(*k, "overwrite")) &&
		    !json_is_boolean(v))
			flag = 1;
		if (v && !strcmp(*k, "mode") &&
		    (!json_is_integer(v) || json_integer_value(v) < 0 ||
		     json_integer_value(v) > 07777))
			flag = 1;
	}
	if (flag) {
		err_set(&c->err, 400, "invalid_type",
			"parents and overwrite must be booleans, mode an integer 0..4095");
		api_fail(c, &c->err);
		return;
	}
	c->audit_detail = json_pack("{s:s, s:s?}", "path", path, "to", to);
}

void files_mkdir_check(struct api_ctx *c)
{
	static const char *const allowed[] = {"path", "parents", "mode", "user", NULL};

	files_body_check(c, allowed, NULL);
}

void files_move_check(struct api_ctx *c)
{
	static const char *const allowed[] = {"path", "to", "overwrite", "user", NULL};

	files_body_check(c, allowed, "to");
}

/* ---- requests on the control stream ---- */

static struct vm *files_vm(struct api_ctx *c)
{
	struct vm *vm = core_vm(c->app, c->d.id);
	struct err err = ERR_INIT;

	if (!vm || !vm_agent_connected(vm)) {
		err_set(&err, 409, "agent_unavailable",
			"the desktop's agent is not connected (is it still booting?)");
		api_respond_err(c, &err);
		return NULL;
	}
	return vm;
}

static void files_reply(json_t *reply, struct err *err, void *arg)
{
	struct api_ctx *c = arg;
	const char *type = reply ? json_string_value(json_object_get(reply, "type")) : NULL;
	struct err e = ERR_INIT;
	json_t *out;

	if (!reply) {
		api_respond_err(c, err);
		return;
	}
	if (!type || !strcmp(type, "error") || strncmp(type, "file.", 5)) {
		files_agent_err(reply, &e);
		api_respond_err(c, &e);
		return;
	}
	if (!strcmp(type, "file.delete.result")) {
		http_respond(c->req, 204, NULL, NULL, 0, NULL);
		api_ctx_free(c);
		return;
	}
	if (!strcmp(type, "file.stat.result")) {
		api_respond_json(c, 200, json_incref(json_object_get(reply, "stat")));
		return;
	}
	out = json_deep_copy(reply);
	json_object_del(out, "type");
	json_object_del(out, "id");
	api_respond_json(c, !strcmp(type, "file.mkdir.result") ? 201 : 200, out);
}

static void files_request(struct api_ctx *c, const char *type)
{
	struct vm *vm = files_vm(c);
	json_t *msg;

	if (!vm)
		return;
	msg = json_deep_copy(c->body);
	json_object_set_new(msg, "type", json_string(type));
	vm_agent_request(vm, msg, FILES_REQUEST_TIMEOUT_MS, files_reply, c);
	json_decref(msg);
}

void files_list(struct api_ctx *c)
{
	files_request(c, "file.list");
}

void files_stat(struct api_ctx *c)
{
	files_request(c, "file.stat");
}

void files_delete(struct api_ctx *c)
{
	files_request(c, "file.delete");
}

void files_mkdir(struct api_ctx *c)
{
	files_request(c, "file.mkdir");
}

void files_move(struct api_ctx *c)
{
	files_request(c, "file.move");
}

/* ---- download ---- */

struct download {
	struct api_ctx *c;
	struct vm_stream *s;
	int begun; /* the HTTP answer's head is out */
	uint64_t size, sent;
};

static void download_http_closed(struct http_req *req, void *arg)
{
	struct download *d = arg;

	/* The client left: the agent stops reading the file. */
	if (d->s)
		vm_stream_close(d->s, "the client went away");
	d->s = NULL;
	d->c->req = NULL;
	api_ctx_free(d->c);
	free(d);
}

static void download_http_drain(struct http_req *req, void *arg)
{
	struct download *d = arg;

	if (d->s)
		vm_stream_resume(d->s);
}

static void download_open(struct vm_stream *s, json_t *info, void *arg)
{
	struct download *d = arg;
	struct api_ctx *c = d->c;
	char hdr[160];

	d->size = (uint64_t)json_integer_value(json_object_get(info, "size"));
	snprintf(hdr, sizeof(hdr), "Content-Length: %llu\r\nCache-Control: no-store\r\n",
		 (unsigned long long)d->size);
	if (http_stream_begin(c->req, 200, "application/octet-stream", hdr, download_http_closed,
			      d)) {
		/* The client is gone already; the request is answered. */
		vm_stream_close(s, "the client went away");
		c->req = NULL;
		api_ctx_free(c);
		free(d);
		return;
	}
	d->begun = 1;
	http_stream_on_drain(c->req, download_http_drain, d);
}

static void download_data(struct vm_stream *s, const uint8_t *data, size_t len, void *arg)
{
	struct download *d = arg;

	if (!d->begun)
		return;
	d->sent += len;
	if (http_stream_write(d->c->req, data, len)) {
		log_warnx("download desktop=%s: client queue over its limit", d->c->d.id);
		return;
	}
	if (http_stream_pending(d->c->req) > FILES_DOWNLOAD_PAUSE)
		vm_stream_pause(s);
}

static void download_close(struct vm_stream *s, json_t *result, const struct err *err, void *arg)
{
	struct download *d = arg;
	struct api_ctx *c = d->c;
	struct err e = ERR_INIT;

	d->s = NULL;
	if (!d->begun) {
		if (err)
			e = *err;
		else
			files_agent_err(result, &e);
		api_respond_err(c, &e);
		free(d);
		return;
	}
	/* Cut short: the client sees fewer bytes than Content-Length. */
	if (err || json_object_get(result, "error") || d->sent != d->size)
		log_warnx("download desktop=%s cut at %llu of %llu bytes: %s", c->d.id,
			  (unsigned long long)d->sent, (unsigned long long)d->size,
			  err ? err->msg : json_string_value(json_object_get(result, "error")) ?: "");
	http_stream_end(c->req);
	c->req = NULL;
	api_ctx_free(c);
	free(d);
}

static const struct vm_stream_callbacks download_cbs = {
    .on_open = download_open,
    .on_data = download_data,
    .on_close = download_close,
};

void files_download(struct api_ctx *c)
{
	struct vm *vm = files_vm(c);
	struct download *d;
	struct err err = ERR_INIT;
	json_t *open;

	if (!vm)
		return;
	d = xcalloc(1, sizeof(*d));
	d->c = c;
	open = json_deep_copy(c->body);
	json_object_set_new(open, "kind", json_string("file.read"));
	d->s = vm_stream_open(vm, open, &download_cbs, d, &err);
	json_decref(open);
	if (!d->s) {
		free(d);
		api_respond_err(c, &err);
	}
}

/* ---- upload ---- */

/* Freed once answered and the agent's stream is gone: after the answer
 * the HTTP layer calls none of the body callbacks any more. */
struct upload {
	struct api_ctx *c;
	struct vm_stream *s;
	int answered; /* the HTTP answer is given (c is gone) */
};

static void upload_answer_err(struct upload *u, const struct err *err)
{
	if (u->answered)
		return;
	u->answered = 1;
	api_respond_err(u->c, err);
}

static void upload_maybe_free(struct upload *u)
{
	if (u->answered && !u->s)
		free(u);
}

static void upload_body_data(struct http_req *req, const char *data, size_t len, void *arg)
{
	struct upload *u = arg;

	if (u->s && vm_stream_write(u->s, data, len) == 1)
		http_req_body_pause(req);
}

static void upload_body_end(struct http_req *req, const struct err *err, void *arg)
{
	struct upload *u = arg;

	if (err) {
		if (u->s)
			vm_stream_close(u->s, "the upload was cut short");
		u->s = NULL;
		upload_answer_err(u, err);
	} else if (u->s) {
		vm_stream_end(u->s);
	}
	upload_maybe_free(u);
}

static const struct http_body_callbacks upload_body_cbs = {
    .on_data = upload_body_data,
    .on_end = upload_body_end,
};

static void upload_open(struct vm_stream *s, json_t *info, void *arg)
{
	struct upload *u = arg;
	struct http_req *req = u->c->req;

	if (http_req_body_streaming(req)) {
		http_req_body_read(req, &upload_body_cbs, u);
		return;
	}
	/* A body small enough to have come whole (or none: an empty file). */
	vm_stream_write(s, req->body, req->body_len);
	vm_stream_end(s);
}

static void upload_drain(struct vm_stream *s, void *arg)
{
	struct upload *u = arg;

	if (!u->answered)
		http_req_body_resume(u->c->req);
}

static void upload_close(struct vm_stream *s, json_t *result, const struct err *err, void *arg)
{
	struct upload *u = arg;
	struct err e = ERR_INIT;

	u->s = NULL;
	if (err) {
		upload_answer_err(u, err);
	} else if (json_object_get(result, "error")) {
		files_agent_err(result, &e);
		upload_answer_err(u, &e);
	} else if (!u->answered) {
		u->answered = 1;
		api_respond_json(u->c, 201,
				 json_pack("{s:O, s:O}", "path",
					   json_object_get(u->c->body, "path"), "size",
					   json_object_get(result, "size")));
	}
	upload_maybe_free(u);
}

static const struct vm_stream_callbacks upload_cbs = {
    .on_open = upload_open,
    .on_drain = upload_drain,
    .on_close = upload_close,
};

void files_upload(struct api_ctx *c)
{
	struct vm *vm = files_vm(c);
	struct upload *u;
	struct err err = ERR_INIT;
	json_t *open;

	if (!vm)
		return;
	u = xcalloc(1, sizeof(*u));
	u->c = c;
	open = json_deep_copy(c->body);
	json_object_set_new(open, "kind", json_string("file.write"));
	u->s = vm_stream_open(vm, open, &upload_cbs, u, &err);
	json_decref(open);
	if (!u->s) {
		free(u);
		api_respond_err(c, &err);
	}
}
