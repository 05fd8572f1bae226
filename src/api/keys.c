/* API keys: random secrets shown once, stored hashed. */
#include "api/api.h"
#include "common/json.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *time_or_null(int64_t ms)
{
	char s[32];

	if (!ms)
		return json_null();
	time_iso(ms, s);
	return json_string(s);
}

static json_t *key_json(const struct api_key *k)
{
	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "id", k->id, "name", k->name, "prefix",
			 k->prefix, "createdAt", time_or_null(k->created_at), "lastUsedAt",
			 time_or_null(k->last_used_at), "revokedAt", time_or_null(k->revoked_at));
}

void keys_list(struct api_ctx *c)
{
	struct api_key *keys;
	size_t n;
	json_t *list;

	if (store_key_list(c->s, c->user.id, &keys, &n, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, key_json(&keys[i]));
	free(keys);
	api_ok(c, 200, json_pack("{s:o}", "apiKeys", list));
}

void keys_create(struct api_ctx *c)
{
	static const char *const allowed[] = {"name", NULL};
	struct api_key k = {0};
	char token[TOKEN_MAX], hash[HASH_HEX_LEN + 1];
	const char *name;
	json_t *b = api_body(c, allowed, 0), *out;

	if (!b)
		return;
	c->body = b;
	if (json_get_string(b, "name", 1, &name, &c->err) ||
	    name_check("key name", name, &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	id_new(k.id, sizeof(k.id), "key");
	snprintf(k.user_id, sizeof(k.user_id), "%s", c->user.id);
	snprintf(k.name, sizeof(k.name), "%s", name);
	token_new(token, sizeof(token), "bk");
	snprintf(k.prefix, sizeof(k.prefix), "%.10s", token);
	token_hash(token, hash);
	k.created_at = now_ms();
	if (store_key_insert(c->s, &k, hash, &c->err)) {
		sodium_memzero(token, sizeof(token));
		api_fail(c, &c->err);
		return;
	}
	out = key_json(&k);
	json_object_set_new(out, "key", json_string(token));
	sodium_memzero(token, sizeof(token));
	c->audit_detail = json_pack("{s:s}", "keyId", k.id);
	api_ok(c, 201, out);
}

void keys_revoke(struct api_ctx *c)
{
	if (store_key_revoke(c->s, c->user.id, api_param(c, "id"), now_ms(), &c->err)) {
		api_fail(c, &c->err);
		return;
	}
	api_ok(c, 204, NULL);
}
