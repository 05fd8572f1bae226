/* `bureau login`: a session cookie is used once to create an API key named
 * after this host; the key goes into the config file (0600), the session
 * is logged out. The key is printed only with --show-key. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/xalloc.h"

#define PASSWORD_MAX 1024

/* Reads a password from the terminal without echo, or a line from stdin
 * when there is no terminal. Returns a string the caller wipes and frees. */
static char *password_read(struct err *err)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	FILE *in = fd >= 0 ? fdopen(fd, "r+") : stdin;
	struct termios old, quiet;
	int echo_off = 0;
	char line[PASSWORD_MAX];
	size_t n;

	if (fd >= 0 && !in)
		close(fd);
	if (!in)
		in = stdin;
	if (in != stdin) {
		fputs("Password: ", in);
		fflush(in);
		if (tcgetattr(fileno(in), &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off = tcsetattr(fileno(in), TCSAFLUSH, &quiet) == 0;
		}
	}
	if (!fgets(line, sizeof(line), in))
		line[0] = '\0';
	if (echo_off) {
		tcsetattr(fileno(in), TCSAFLUSH, &old);
		fputc('\n', in);
	}
	if (in != stdin)
		fclose(in);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n == 0) {
		err_set(err, 2, "usage", "no password given");
		return NULL;
	}
	char *pw = xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return pw;
}

static char *host_name(void)
{
	char host[256];

	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		return xstrdup("bureau-cli");
	host[sizeof(host) - 1] = '\0';
	return xstrdup(host);
}

/* Session login, key creation, logout. *key gets the new key object. */
static int login_key(struct cli_ctx *ctx, const char *email, const char *password, json_t **key,
		     json_t **user, struct err *err)
{
	json_t *body = json_pack("{s:s, s:s}", "email", email, "password", password);
	char *host = host_name();
	int rc;

	*key = *user = NULL;
	ctx->use_cookies = 1;
	rc = cli_api(ctx, "POST", "/api/auth/login", body, user, err);
	json_object_clear(body);
	json_decref(body);
	if (rc == 0) {
		body = json_pack("{s:s}", "name", host);
		rc = cli_api(ctx, "POST", "/api/api-keys", body, key, err);
		json_decref(body);
		if (rc)
			err_prefix(err, "create an API key");
		struct err ignored = ERR_INIT;
		cli_api(ctx, "POST", "/api/auth/logout", NULL, NULL, &ignored);
	}
	ctx->use_cookies = 0;
	free(host);
	return rc;
}

int cmd_login(struct cli_ctx *ctx)
{
	struct err err = ERR_INIT;
	struct cli_config cfg = {0};
	char *password = NULL;
	json_t *key = NULL, *user = NULL;
	const char *secret;
	int rc = CLI_EXIT_OK;

	if (!ctx->args->email)
		return cli_usage_error("login needs --email");
	if (!ctx->config_path)
		return cli_usage_error("no config file path: set BUREAU_CONFIG or HOME");
	password = ctx->args->password ? xstrdup(ctx->args->password) : password_read(&err);
	if (!password)
		return cli_fail(&err);
	if (login_key(ctx, ctx->args->email, password, &key, &user, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	secret = json_string_value(json_object_get(key, "key"));
	if (!secret) {
		err_set(&err, 502, "bad_response", "the server sent no key");
		rc = cli_fail(&err);
		goto out;
	}
	/* keep the default workspace of an existing config */
	if (cli_config_load(ctx->config_path, &cfg, &err))
		cli_config_release(&cfg);
	free(cfg.endpoint);
	free(cfg.key);
	cfg.endpoint = xstrdup(ctx->endpoint);
	cfg.key = xstrdup(secret);
	if (cli_config_write(ctx->config_path, &cfg, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	if (ctx->args->json) {
		json_t *u = json_object_get(user, "user") ? json_object_get(user, "user") : user;
		json_t *o = json_pack("{s:O?, s:s?, s:s?, s:s?, s:s}", "user", u, "keyId",
				      json_string_value(json_object_get(key, "id")), "keyName",
				      json_string_value(json_object_get(key, "name")), "keyPrefix",
				      json_string_value(json_object_get(key, "prefix")), "config",
				      ctx->config_path);
		if (ctx->args->show_key)
			json_object_set_new(o, "key", json_string(secret));
		cli_print_json(ctx, o);
		json_decref(o);
	} else {
		fprintf(stderr, "Logged in as %s; API key %s saved to %s\n", ctx->args->email,
			json_string_value(json_object_get(key, "id")) ?: "?", ctx->config_path);
		if (ctx->args->show_key)
			fprintf(ctx->out, "%s\n", secret);
	}
out:
	if (key)
		json_object_clear(key);
	json_decref(key);
	json_decref(user);
	cli_config_release(&cfg);
	explicit_bzero(password, strlen(password));
	free(password);
	return rc;
}
