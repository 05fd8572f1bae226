/* Puts a parsed command line together with the environment and the config
 * file, in that order of precedence: flags, environment, config, default. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/xalloc.h"

static const char *first(const char *a, const char *b, const char *c)
{
	if (a && *a)
		return a;
	if (b && *b)
		return b;
	return c && *c ? c : NULL;
}

/* Checks an endpoint URL and drops trailing slashes. */
static char *endpoint_clean(const char *s, struct err *err)
{
	char *e;
	size_t n;

	if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
		err_set(err, 2, "usage", "endpoint \"%s\" is not an http:// or https:// URL", s);
		return NULL;
	}
	if (strpbrk(s, " \t\r\n?#")) {
		err_set(err, 2, "usage", "endpoint \"%s\" must be a plain URL", s);
		return NULL;
	}
	e = xstrdup(s);
	n = strlen(e);
	while (n > 0 && e[n - 1] == '/')
		e[--n] = '\0';
	return e;
}

int cli_run(struct cli_args *a, const struct cli_command *cmd)
{
	struct cli_config cfg = {0};
	struct cli_ctx ctx = {.args = a, .out = stdout};
	struct err err = ERR_INIT;
	const char *endpoint, *key, *ws;
	int rc;

	ctx.config_path = a->config ? xstrdup(a->config) : cli_config_path();
	if (ctx.config_path && cli_config_load(ctx.config_path, &cfg, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	endpoint = first(a->endpoint, getenv("BUREAU_ENDPOINT"), cfg.endpoint);
	key = first(a->key, getenv("BUREAU_API_KEY"), cfg.key);
	ws = first(getenv("BUREAU_WORKSPACE"), cfg.workspace, NULL);
	ctx.endpoint = endpoint_clean(endpoint ? endpoint : CLI_DEFAULT_ENDPOINT, &err);
	if (!ctx.endpoint) {
		rc = cli_fail(&err);
		goto out;
	}
	ctx.key = key ? xstrdup(key) : NULL;
	ctx.workspace = ws ? xstrdup(ws) : NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(ctx.curl = curl_easy_init())) {
		fputs("bureau: cannot initialise libcurl\n", stderr);
		rc = CLI_EXIT_API;
		goto out;
	}
	rc = cmd->fn(&ctx);
	if (fflush(stdout) != 0 && rc == CLI_EXIT_OK) {
		perror("bureau: stdout");
		rc = CLI_EXIT_API;
	}
	curl_easy_cleanup(ctx.curl);
	curl_global_cleanup();
out:
	if (ctx.key) {
		explicit_bzero(ctx.key, strlen(ctx.key));
		free(ctx.key);
	}
	if (ctx.session) {
		explicit_bzero(ctx.session, strlen(ctx.session));
		free(ctx.session);
	}
	free(ctx.endpoint);
	free(ctx.workspace);
	free(ctx.config_path);
	cli_config_release(&cfg);
	return rc;
}
