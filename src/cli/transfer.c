/* Commands whose data streams: `bureau exec` prints a command's output as
 * the API sends it (exec?stream=true, one JSON object per line) and exits
 * with the command's exit code; `bureau cp` uploads and downloads files
 * without holding them in memory. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/xalloc.h"

#define EXEC_STDIN_MAX (32 * 1024)  /* the API's limit for "stdin" */
#define EXEC_TIMEOUT_GRACE_S 30	    /* beyond the command's own timeout */
#define EXEC_LINE_MAX (1024 * 1024) /* one line of the answer */
#define EXIT_TIMED_OUT 124	    /* as timeout(1) */
#define ERROR_BODY_MAX 65536

static struct curl_slist *auth_headers(struct cli_ctx *ctx, const char *content_type)
{
	struct curl_slist *h = NULL;

	if (content_type) {
		char *line = xasprintf("Content-Type: %s", content_type);
		h = curl_slist_append(h, line);
		free(line);
	}
	if (ctx->key) {
		char *auth = xasprintf("Authorization: Bearer %s", ctx->key);
		h = curl_slist_append(h, auth);
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	/* No "Expect: 100-continue" pause before uploads. */
	return curl_slist_append(h, "Expect:");
}

/* ---- exec ---- */

struct exec_out {
	struct cli_ctx *ctx;
	long status; /* HTTP status, known once the body starts */
	struct buf line;
	struct buf error_body; /* an error answer, kept for its message */
	int done, exit_code;
	struct err err;
};

static void exec_line(struct exec_out *x, const char *s, size_t len)
{
	json_t *j = json_loadb(s, len, 0, NULL);
	const char *type = json_string_value(json_object_get(j, "type"));
	const char *data = json_string_value(json_object_get(j, "data"));
	json_t *code = json_object_get(j, "exitCode"), *sig = json_object_get(j, "signal");

	if (!type) {
		err_set(&x->err, 502, "bad_response", "unexpected line in the exec answer");
	} else if (!strcmp(type, "stdout") && data) {
		fwrite(data, 1, json_string_length(json_object_get(j, "data")), x->ctx->out);
		fflush(x->ctx->out);
	} else if (!strcmp(type, "stderr") && data) {
		fwrite(data, 1, json_string_length(json_object_get(j, "data")), stderr);
	} else if (!strcmp(type, "exit")) {
		x->done = 1;
		x->exit_code = json_is_true(json_object_get(j, "timedOut")) ? EXIT_TIMED_OUT
			       : json_is_integer(code) ? (int)json_integer_value(code)
			       : json_is_integer(sig)  ? 128 + (int)json_integer_value(sig)
						       : CLI_EXIT_API;
		if (json_is_true(json_object_get(j, "timedOut")))
			fputs("bureau: the command timed out\n", stderr);
	} else if (!strcmp(type, "error")) {
		json_t *e = json_object_get(j, "error");

		err_set(&x->err, 502, json_string_value(json_object_get(e, "code")) ?: "error",
			"%s", json_string_value(json_object_get(e, "message")) ?: "exec failed");
	}
	json_decref(j);
}

static size_t exec_on_body(char *data, size_t size, size_t n, void *arg)
{
	struct exec_out *x = arg;
	size_t len = size * n, i, start = 0;

	if (!x->status)
		curl_easy_getinfo(x->ctx->curl, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status >= 400) {
		if (x->error_body.len + len <= ERROR_BODY_MAX)
			buf_append(&x->error_body, data, len);
		return len;
	}
	for (i = 0; i < len; i++) {
		if (data[i] != '\n')
			continue;
		buf_append(&x->line, data + start, i - start);
		exec_line(x, x->line.data ? x->line.data : "", x->line.len);
		buf_reset(&x->line);
		start = i + 1;
	}
	buf_append(&x->line, data + start, len - start);
	return x->line.len > EXEC_LINE_MAX ? 0 : len;
}

/* The request body: the command, its options, and stdin when asked. */
static json_t *exec_body(struct cli_args *a, struct err *err)
{
	json_t *b = json_pack("{s:[]}", "command"), *cmd = json_object_get(b, "command");
	struct buf in = BUF_INIT;
	char tmp[4096];
	size_t n;

	for (int i = 1; i < a->npos; i++)
		json_array_append_new(cmd, json_string(a->pos[i]));
	if (a->root)
		json_object_set_new(b, "user", json_string("root"));
	if (a->cwd)
		json_object_set_new(b, "cwd", json_string(a->cwd));
	if (a->seen & OPT_TIMEOUT)
		json_object_set_new(b, "timeoutMs", json_integer((json_int_t)a->timeout_s * 1000));
	if (a->stdin_send) {
		while ((n = fread(tmp, 1, sizeof(tmp), stdin)) > 0 && in.len <= EXEC_STDIN_MAX)
			buf_append(&in, tmp, n);
		if (in.len > EXEC_STDIN_MAX) {
			buf_release(&in);
			json_decref(b);
			err_set(err, 2, "usage", "--stdin takes at most %d bytes", EXEC_STDIN_MAX);
			return NULL;
		}
		json_object_set_new(b, "stdin", json_stringn(in.data ? in.data : "", in.len));
		buf_release(&in);
	}
	return b;
}

int cmd_exec(struct cli_ctx *ctx)
{
	struct exec_out x = {.ctx = ctx};
	struct err err = ERR_INIT;
	struct curl_slist *h;
	json_t *body;
	char *path, *url, *json;
	CURLcode rc;

	if (!(body = exec_body(ctx->args, &err)))
		return cli_fail(&err);
	if (cli_desktop_path(ctx, ctx->args->pos[0], &path, &err)) {
		json_decref(body);
		return cli_fail(&err);
	}
	url = xasprintf("%s%s/exec?stream=true", ctx->endpoint, path);
	json = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	h = auth_headers(ctx, "application/json");
	cli_curl_setup(ctx, url);
	curl_easy_setopt(ctx->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ctx->curl, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEFUNCTION, exec_on_body);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEDATA, &x);
	if (ctx->args->seen & OPT_TIMEOUT)
		curl_easy_setopt(ctx->curl, CURLOPT_TIMEOUT,
				 (long)ctx->args->timeout_s + EXEC_TIMEOUT_GRACE_S);
	rc = curl_easy_perform(ctx->curl);
	curl_slist_free_all(h);
	free(json);
	free(path);
	if (!x.status)
		curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &x.status);
	if (x.status >= 400) {
		cli_err_from_reply(x.status, x.error_body.data, x.error_body.len, &err);
	} else if (rc != CURLE_OK && !x.done && !*x.err.code) {
		err_set(&err, 0, x.status ? "interrupted" : "unreachable", "%s %s: %s",
			x.status ? "the exec answer was cut" : "cannot reach", url,
			curl_easy_strerror(rc));
	} else if (*x.err.code) {
		err = x.err;
	} else if (!x.done) {
		err_set(&err, 502, "interrupted", "the exec answer ended without an exit status");
	}
	free(url);
	buf_release(&x.line);
	buf_release(&x.error_body);
	if (*err.code)
		return cli_fail(&err);
	return x.exit_code;
}

/* ---- cp ---- */

/* "ID:/path" names a desktop's file; anything else is local. */
static int remote_split(const char *arg, char *id, size_t n, const char **path)
{
	const char *colon = strchr(arg, ':');

	if (!colon || colon == arg || memchr(arg, '/', (size_t)(colon - arg)) ||
	    (size_t)(colon - arg) >= n)
		return 0;
	memcpy(id, arg, (size_t)(colon - arg));
	id[colon - arg] = '\0';
	*path = colon + 1;
	return 1;
}

static char *files_url(struct cli_ctx *ctx, const char *desktop_path, const char *file, int mode)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s%s/files?path=", ctx->endpoint, desktop_path);
	cli_url_escape(&b, file);
	if (ctx->args->root)
		buf_puts(&b, "&user=root");
	if (mode >= 0)
		buf_printf(&b, "&mode=%o", mode);
	return buf_detach(&b, NULL);
}

struct sink {
	FILE *f;
	long status;
	struct cli_ctx *ctx;
	struct buf error_body;
};

static size_t sink_write(char *data, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;

	if (!s->status)
		curl_easy_getinfo(s->ctx->curl, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status >= 400 || !s->f) {
		if (s->error_body.len + len <= ERROR_BODY_MAX)
			buf_append(&s->error_body, data, len);
		return len;
	}
	return fwrite(data, 1, len, s->f);
}

/* Runs the prepared transfer; err says what went wrong. */
static int transfer_run(struct cli_ctx *ctx, struct sink *s, const char *what, struct err *err)
{
	CURLcode rc = curl_easy_perform(ctx->curl);

	if (!s->status)
		curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status >= 400) {
		cli_err_from_reply(s->status, s->error_body.data, s->error_body.len, err);
		return -1;
	}
	if (rc != CURLE_OK) {
		err_set(err, 0, s->status ? "interrupted" : "unreachable", "%s: %s", what,
			curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

static int cp_upload(struct cli_ctx *ctx, const char *local, const char *ref, const char *file)
{
	struct sink s = {.ctx = ctx};
	struct err err = ERR_INIT;
	struct curl_slist *h;
	struct stat st;
	char *path, *url, *target = NULL, *copy;
	FILE *f = strcmp(local, "-") ? fopen(local, "rb") : stdin;
	int rc;

	if (!f || fstat(fileno(f), &st)) {
		err_sys(&err, errno, "open %s", local);
		return cli_fail(&err);
	}
	if (cli_desktop_path(ctx, ref, &path, &err)) {
		if (f != stdin)
			fclose(f);
		return cli_fail(&err);
	}
	/* "ID:/dir/" takes the local file's name. */
	if (file[0] && file[strlen(file) - 1] == '/' && f != stdin) {
		copy = xstrdup(local);
		target = xasprintf("%s%s", file, basename(copy));
		free(copy);
	}
	url = files_url(ctx, path, target ? target : file,
			S_ISREG(st.st_mode) ? (int)(st.st_mode & 0777) : -1);
	h = auth_headers(ctx, "application/octet-stream");
	cli_curl_setup(ctx, url);
	curl_easy_setopt(ctx->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ctx->curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(ctx->curl, CURLOPT_READDATA, f);
	if (S_ISREG(st.st_mode))
		curl_easy_setopt(ctx->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEDATA, &s);
	rc = transfer_run(ctx, &s, "upload", &err);
	curl_slist_free_all(h);
	if (f != stdin)
		fclose(f);
	free(url);
	free(path);
	free(target);
	buf_release(&s.error_body);
	if (rc)
		return cli_fail(&err);
	return CLI_EXIT_OK;
}

static int cp_download(struct cli_ctx *ctx, const char *ref, const char *file, const char *local)
{
	struct sink s = {.ctx = ctx};
	struct err err = ERR_INIT;
	struct curl_slist *h;
	struct stat st;
	char *path, *url, *dest, *tmp = NULL, *copy;
	int rc;

	if (cli_desktop_path(ctx, ref, &path, &err))
		return cli_fail(&err);
	/* Into a folder: under the remote file's name. */
	if (strcmp(local, "-") && !stat(local, &st) && S_ISDIR(st.st_mode)) {
		copy = xstrdup(file);
		dest = xasprintf("%s/%s", local, basename(copy));
		free(copy);
	} else {
		dest = xstrdup(local);
	}
	/* A temporary beside the destination: a failed copy leaves nothing. */
	if (strcmp(dest, "-")) {
		tmp = xasprintf("%s.bureau-part", dest);
		s.f = fopen(tmp, "wb");
		if (!s.f) {
			err_sys(&err, errno, "create %s", tmp);
			free(tmp);
			free(dest);
			free(path);
			return cli_fail(&err);
		}
	} else {
		s.f = ctx->out;
	}
	url = files_url(ctx, path, file, -1);
	h = auth_headers(ctx, NULL);
	cli_curl_setup(ctx, url);
	curl_easy_setopt(ctx->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEDATA, &s);
	rc = transfer_run(ctx, &s, "download", &err);
	curl_slist_free_all(h);
	if (tmp) {
		if (fclose(s.f) && !rc)
			rc = err_sys(&err, errno, "write %s", tmp);
		if (!rc && rename(tmp, dest))
			rc = err_sys(&err, errno, "rename %s", tmp);
		if (rc)
			unlink(tmp);
	}
	free(tmp);
	free(dest);
	free(url);
	free(path);
	buf_release(&s.error_body);
	if (rc)
		return cli_fail(&err);
	return CLI_EXIT_OK;
}

int cmd_cp(struct cli_ctx *ctx)
{
	const char *src = ctx->args->pos[0], *dst = ctx->args->pos[1], *sfile, *dfile;
	char sid[128], did[128];
	int sr = remote_split(src, sid, sizeof(sid), &sfile);
	int dr = remote_split(dst, did, sizeof(did), &dfile);

	if (dr && !sr)
		return cp_upload(ctx, src, did, dfile);
	if (sr && !dr)
		return cp_download(ctx, sid, sfile, dst);
	return cli_usage_error("cp wants LOCAL ID:/PATH or ID:/PATH LOCAL");
}
