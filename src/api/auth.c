/* Logins, sessions, users, and the first start's administrator. */
#include "api/api.h"
#include "common/json.h"
#include "common/log.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PASSWORD_MIN 8
#define PASSWORD_MAX 256
#define EMAIL_MAX 254

static json_t *user_json(const struct user *u)
{
	char created[32];

	time_iso(u->created_at, created);
	return json_pack("{s:s, s:s, s:b, s:s}", "id", u->id, "email", u->email, "isAdmin",
			 u->is_admin, "createdAt", created);
}

static int email_check(const char *email, struct err *err)
{
	const char *at = strchr(email, '@');

	if (strlen(email) > EMAIL_MAX)
		return err_set(err, 400, "invalid_request", "email is too long");
	if (!at || at == email || !at[1] || strchr(at + 1, '@'))
		return err_set(err, 400, "invalid_request", "email must look like name@host");
	for (const char *p = email; *p; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return err_set(err, 400, "invalid_request", "email must not contain spaces");
	return 0;
}

static int password_hash(const char *password, char out[192], struct err *err)
{
	if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE))
		return err_set(err, 500, "internal", "password hashing failed (out of memory)");
	return 0;
}

/* Creates a user with a workspace of their own (they own it). */
static int user_create(struct store *s, const char *email, const char *password, int is_admin,
		       const char *ws_name, int plan_limit, struct user *u, struct err *err)
{
	struct workspace w = {0};

	memset(u, 0, sizeof(*u));
	id_new(u->id, sizeof(u->id), "usr");
	snprintf(u->email, sizeof(u->email), "%s", email);
	u->is_admin = is_admin;
	u->created_at = now_ms();
	if (password_hash(password, u->password_hash, err))
		return -1;
	id_new(w.id, sizeof(w.id), "ws");
	snprintf(w.name, sizeof(w.name), "%s", ws_name);
	w.plan_limit = plan_limit;
	w.created_at = u->created_at;
	if (store_begin(s, err))
		return -1;
	if (store_user_insert(s, u, err) || store_workspace_insert(s, &w, err) ||
	    store_member_insert(s, w.id, u->id, "owner", u->created_at, err) ||
	    store_commit(s, err)) {
		store_rollback(s);
		if (err->status == 409)
			snprintf(err->msg, sizeof(err->msg), "a user with this email exists");
		return -1;
	}
	return 0;
}

int api_bootstrap(struct store *s, const struct config *cfg, struct err *err)
{
	const char *email = getenv("BUREAU_ADMIN_EMAIL");
	const char *password = getenv("BUREAU_ADMIN_PASSWORD");
	char generated[TOKEN_MAX];
	struct user u;
	int64_t n;

	if (store_user_count(s, &n, err))
		return -1;
	if (n > 0)
		return 0;
	if (!email || !*email)
		email = "admin@localhost";
	if (email_check(email, err))
		return -1;
	if (!password || !*password) {
		token_new(generated, sizeof(generated), "pw");
		generated[20] = '\0';
		password = generated;
	}
	if (user_create(s, email, password, 1, "default", cfg->plan_limit, &u, err))
		return -1;
	if (password == generated) {
		printf("bureau: first start: administrator %s, password %s (shown once; "
		       "change it by setting BUREAU_ADMIN_PASSWORD on a new state folder)\n",
		       email, generated);
		fflush(stdout);
	}
	log_info("first start: created administrator %s and workspace \"default\"", email);
	sodium_memzero(generated, sizeof(generated));
	return 0;
}

void auth_login(struct api_ctx *c)
{
	static const char *const allowed[] = {"email", "password", NULL};
	char dummy[192];
	const char *email, *password;
	char token[TOKEN_MAX], hash[HASH_HEX_LEN + 1];
	struct err err = ERR_INIT;
	int64_t now = now_ms(), ttl;
	json_t *b = api_body(c, allowed, 0);

	if (!b)
		return;
	c->body = b;
	if (json_get_string(b, "email", 1, &email, &c->err) ||
	    json_get_string(b, "password", 1, &password, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	if (strlen(password) > PASSWORD_MAX || strlen(email) > EMAIL_MAX) {
		err_set(&c->err, 401, "invalid_credentials", "wrong email or password");
		api_fail(c, &c->err);
		return;
	}
	if (store_user_get_by_email(c->s, email, &c->user, &err)) {
		/* Spend the same time as a real check, so timing tells nothing. */
		password_hash(password, dummy, &err);
		err_set(&c->err, 401, "invalid_credentials", "wrong email or password");
		api_fail(c, &c->err);
		return;
	}
	if (crypto_pwhash_str_verify(c->user.password_hash, password, strlen(password))) {
		err_set(&c->err, 401, "invalid_credentials", "wrong email or password");
		api_fail(c, &c->err);
		return;
	}
	token_new(token, sizeof(token), "bs");
	token_hash(token, hash);
	ttl = (int64_t)c->app->cfg.session_ttl_h * 3600 * 1000;
	if (store_session_insert(c->s, hash, c->user.id, now, now + ttl, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	c->authed = 1;
	snprintf(c->extra_headers, sizeof(c->extra_headers),
		 "Set-Cookie: bureau_session=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld\r\n",
		 token, (long long)(ttl / 1000));
	sodium_memzero(token, sizeof(token));
	api_ok(c, 200, json_pack("{s:o}", "user", user_json(&c->user)));
}

void auth_logout(struct api_ctx *c)
{
	char hash[HASH_HEX_LEN + 1];

	if (*c->cookie) {
		token_hash(c->cookie, hash);
		store_session_delete(c->s, hash, &c->err);
	}
	snprintf(c->extra_headers, sizeof(c->extra_headers),
		 "Set-Cookie: bureau_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0\r\n");
	api_ok(c, 204, NULL);
}

/* Like auth_me, but answers {"user": null} rather than 401 without a
 * valid login, so a page can ask whether it has a session without an
 * error in the browser's console. */
void auth_session(struct api_ctx *c)
{
	if (!c->authed) {
		c->err = (struct err)ERR_INIT;
		api_ok(c, 200, json_pack("{s:n, s:[]}", "user", "workspaces"));
		return;
	}
	auth_me(c);
}

void auth_me(struct api_ctx *c)
{
	struct workspace *ws;
	size_t n;
	json_t *list;

	if (store_workspace_list(c->s, c->user.id, &ws, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "id", ws[i].id, "name",
						      ws[i].name, "role", ws[i].role));
	free(ws);
	api_ok(c, 200, json_pack("{s:o, s:o}", "user", user_json(&c->user), "workspaces", list));
}

/* Every user, for administrators (the route is API_ADMIN). */
void users_list(struct api_ctx *c)
{
	struct user *u;
	size_t n;
	json_t *list;

	if (store_user_list(c->s, &u, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, user_json(&u[i]));
	if (u)
		sodium_memzero(u, n * sizeof(*u));
	free(u);
	api_ok(c, 200, json_pack("{s:o}", "users", list));
}

void users_create(struct api_ctx *c)
{
	static const char *const allowed[] = {"email", "password", "isAdmin", NULL};
	const char *email, *password;
	char ws_name[64];
	int is_admin = 0;
	struct user u;
	json_t *b = api_body(c, allowed, 0);

	if (!b)
		return;
	c->body = b;
	if (json_get_string(b, "email", 1, &email, &c->err) ||
	    json_get_string(b, "password", 1, &password, &c->err) ||
	    json_get_bool(b, "isAdmin", 0, &is_admin, &c->err) || email_check(email, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	if (strlen(password) < PASSWORD_MIN || strlen(password) > PASSWORD_MAX) {
		err_set(&c->err, 400, "invalid_request", "password must have %d to %d characters",
			PASSWORD_MIN, PASSWORD_MAX);
		api_fail(c, &c->err);
		return;
	}
	snprintf(ws_name, sizeof(ws_name), "%.*s", (int)(strchr(email, '@') - email), email);
	if (user_create(c->s, email, password, is_admin, ws_name, c->app->cfg.plan_limit, &u,
			&c->err)) {
		api_fail(c, &c->err);
		return;
	}
	api_ok(c, 201, user_json(&u));
}
