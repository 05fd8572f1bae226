/* The HTTP side of the CLI: one libcurl easy handle per run, JSON in and
 * out, and API errors turned into struct err and exit codes. */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "common/xalloc.h"

#define CLI_MAX_BODY (64L * 1024 * 1024)
#define CLI_CONNECT_TIMEOUT_S 10L
#define CLI_REQUEST_TIMEOUT_S 300L

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct cli_reply *r = arg;
	size_t len = size * n;

	if (r->body.len + len > (size_t)CLI_MAX_BODY)
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	buf_append(&r->body, data, len);
	return len;
}

/* Keeps the session cookie of a login answer (curl's cookie engine does
 * not survive curl_easy_reset() without leaking). */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	static const char name[] = "set-cookie:";
	struct cli_ctx *ctx = arg;
	size_t len = size * n, vlen;
	const char *v = data + sizeof(name) - 1, *end = data + len;

	if (len < sizeof(name) - 1 || strncasecmp(data, name, sizeof(name) - 1) != 0)
		return len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	for (vlen = 0; v + vlen < end && !strchr(";\r\n", v[vlen]); vlen++)
		;
	if (vlen > 15 && strncmp(v, "bureau_session=", 15) == 0) {
		if (ctx->session) {
			explicit_bzero(ctx->session, strlen(ctx->session));
			free(ctx->session);
		}
		ctx->session = xstrndup(v, vlen);
	}
	return len;
}

/* The Origin a browser would send for this endpoint: scheme://host[:port]. */
static char *endpoint_origin(const char *endpoint)
{
	const char *host = strstr(endpoint, "://");
	const char *slash = host ? strchr(host + 3, '/') : NULL;

	if (!host)
		return xstrdup(endpoint);
	return slash ? xstrndup(endpoint, (size_t)(slash - endpoint)) : xstrdup(endpoint);
}

static struct curl_slist *headers_new(struct cli_ctx *ctx, int has_body)
{
	struct curl_slist *h = NULL;

	if (has_body)
		h = curl_slist_append(h, "Content-Type: application/json");
	if (ctx->key && !ctx->use_cookies) {
		char *auth = xasprintf("Authorization: Bearer %s", ctx->key);
		h = curl_slist_append(h, auth);
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (ctx->use_cookies && ctx->session) {
		char *cookie = xasprintf("Cookie: %s", ctx->session);
		h = curl_slist_append(h, cookie);
		explicit_bzero(cookie, strlen(cookie));
		free(cookie);
	}
	if (ctx->use_cookies) {
		char *origin = endpoint_origin(ctx->endpoint);
		char *line = xasprintf("Origin: %s", origin);
		h = curl_slist_append(h, line);
		free(line);
		free(origin);
	}
	return h;
}

void cli_curl_setup(struct cli_ctx *ctx, const char *url)
{
	CURL *c = ctx->curl;

	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CLI_CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "bureau-cli/" BUREAU_VERSION);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
}

int cli_http(struct cli_ctx *ctx, const char *method, const char *path, json_t *body,
	     struct cli_reply *r, struct err *err)
{
	char *url = xasprintf("%s%s", ctx->endpoint, path), *json = NULL;
	struct curl_slist *h = headers_new(ctx, body != NULL);
	char *ctype = NULL;
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	cli_curl_setup(ctx, url);
	curl_easy_setopt(ctx->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ctx->curl, CURLOPT_TIMEOUT, CLI_REQUEST_TIMEOUT_S);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(ctx->curl, CURLOPT_WRITEDATA, r);
	if (ctx->use_cookies) {
		curl_easy_setopt(ctx->curl, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(ctx->curl, CURLOPT_HEADERDATA, ctx);
	}
	if (body) {
		json = json_dumps(body, JSON_COMPACT);
		curl_easy_setopt(ctx->curl, CURLOPT_POSTFIELDS, json);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(ctx->curl, CURLOPT_POSTFIELDS, "");
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		curl_easy_setopt(ctx->curl, CURLOPT_CUSTOMREQUEST, method);
	rc = curl_easy_perform(ctx->curl);
	curl_slist_free_all(h);
	if (json) {
		explicit_bzero(json, strlen(json)); /* may hold a password */
		free(json);
	}
	if (rc != CURLE_OK) {
		err_set(err, 0, "unreachable", "cannot reach %s: %s", url, curl_easy_strerror(rc));
		free(url);
		cli_reply_release(r);
		return -1;
	}
	free(url);
	curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (curl_easy_getinfo(ctx->curl, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK && ctype)
		snprintf(r->content_type, sizeof(r->content_type), "%s", ctype);
	return 0;
}

void cli_err_from_reply(long status, const char *body, size_t len, struct err *err)
{
	json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *e = j ? json_object_get(j, "error") : NULL;
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));

	err_set(err, (int)status, code ? code : "http_error", "%s",
		msg ? msg : "the server answered an error");
	if (!msg)
		snprintf(err->msg, sizeof(err->msg), "the server answered HTTP %ld", status);
	json_decref(j);
}

int cli_api(struct cli_ctx *ctx, const char *method, const char *path, json_t *body, json_t **out,
	    struct err *err)
{
	struct cli_reply r;
	json_error_t jerr;
	json_t *j = NULL;

	if (out)
		*out = NULL;
	if (cli_http(ctx, method, path, body, &r, err))
		return -1;
	if (r.status >= 400) {
		cli_err_from_reply(r.status, r.body.data, r.body.len, err);
		cli_reply_release(&r);
		return -1;
	}
	if (r.body.len > 0) {
		j = json_loadb(r.body.data, r.body.len, 0, &jerr);
		if (!j) {
			err_set(err, (int)r.status, "bad_response",
				"the server's answer is not JSON: %s", jerr.text);
			cli_reply_release(&r);
			return -1;
		}
	}
	cli_reply_release(&r);
	if (out)
		*out = j;
	else
		json_decref(j);
	return 0;
}

void cli_reply_release(struct cli_reply *r)
{
	buf_release(&r->body);
}

int cli_exit_code(const struct err *err)
{
	if (strcmp(err->code, "usage") == 0 || strcmp(err->code, "config") == 0)
		return CLI_EXIT_USAGE;
	if (strcmp(err->code, "unreachable") == 0)
		return CLI_EXIT_UNREACHABLE;
	if (err->status == 404)
		return CLI_EXIT_NOT_FOUND;
	return CLI_EXIT_API;
}

int cli_fail(const struct err *err)
{
	if (err->status >= 400 && err->code[0])
		fprintf(stderr, "bureau: %s [%s]\n", err->msg, err->code);
	else
		fprintf(stderr, "bureau: %s\n", err->msg);
	return cli_exit_code(err);
}

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("bureau: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_USAGE;
}

void cli_print_json(struct cli_ctx *ctx, json_t *v)
{
	if (!v)
		return;
	json_dumpf(v, ctx->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	fputc('\n', ctx->out);
}

int cli_wait_check(json_t *desktop, const char *target, const char *since, struct err *err)
{
	const char *state = json_string_value(json_object_get(desktop, "state"));
	const char *changed = json_string_value(json_object_get(desktop, "stateChangedAt"));
	const char *reason = json_string_value(json_object_get(desktop, "reason"));

	if (!state)
		return err_set(err, 502, "bad_response", "the desktop has no state");
	if (strcmp(state, "error") == 0)
		return err_set(err, 409, "desktop_error", "the desktop went to error: %s",
			       reason ? reason : "no reason given");
	if (strcmp(target, "gone") == 0)
		return strcmp(state, "destroyed") == 0;
	if (strcmp(state, "destroying") == 0 || strcmp(state, "destroyed") == 0)
		return err_set(err, 409, "conflict", "the desktop is being destroyed");
	if (strcmp(state, target) != 0)
		return 0;
	if (since && changed && strcmp(since, changed) == 0)
		return 0;
	return 1;
}
