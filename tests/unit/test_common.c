/* Common helpers: buffers, ids, tokens, names, times, strict JSON. */
#include "common/buf.h"
#include "common/json.h"
#include "common/util.h"
#include "tap.h"

#include <sodium.h>
#include <string.h>

static void test_buf(void)
{
	struct buf b = BUF_INIT;
	char *p;
	size_t len;

	buf_puts(&b, "hello");
	buf_printf(&b, " %d", 42);
	ok(b.len == 8 && !strcmp(b.data, "hello 42"), "buf append and printf");
	buf_consume(&b, 6);
	ok(b.len == 2 && !strcmp(b.data, "42"), "buf consume");
	p = buf_detach(&b, &len);
	ok(len == 2 && !strcmp(p, "42") && b.data == NULL, "buf detach");
	free(p);
	for (int i = 0; i < 10000; i++)
		buf_append(&b, "x", 1);
	ok(b.len == 10000, "buf grows");
	buf_release(&b);
}

static void test_ids(void)
{
	char a[ID_MAX], b[ID_MAX], t[TOKEN_MAX], h[HASH_HEX_LEN + 1];

	id_new(a, sizeof(a), "dsk");
	id_new(b, sizeof(b), "dsk");
	ok(!strncmp(a, "dsk_", 4) && strlen(a) == 24, "id has prefix and length");
	ok(strcmp(a, b), "ids differ");
	token_new(t, sizeof(t), "bk");
	ok(!strncmp(t, "bk_", 3) && strlen(t) == 46, "token has prefix and 256 bits");
	token_hash(t, h);
	ok(strlen(h) == 64, "token hash is sha-256 hex");
	ok(secret_equal("abc", "abc") && !secret_equal("abc", "abd") && !secret_equal("a", "ab"),
	   "constant-time compare");
}

static void test_names(void)
{
	struct err err;

	ok(name_check("name", "ci-agent", &err) == 0, "seed name accepted");
	ok(name_check("name", "dev_agent.01", &err) == 0, "dots and underscores");
	ok(name_check("name", "", &err) == -1 && err.status == 400, "empty name");
	ok(name_check("name", "../etc", &err) == -1, "path characters refused");
	ok(name_check("name", "a/b", &err) == -1, "slash refused");
	ok(name_check("name", "-rf", &err) == -1, "leading dash refused");
	ok(name_check("name", "a b", &err) == -1, "space refused");
	ok(name_check("name",
		      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &err) == -1,
	   "64 characters refused");
}

static void test_times(void)
{
	char s[32];
	int64_t ms;

	time_iso(1795357469123LL, s);
	ok(!strcmp(s, "2026-11-22T14:24:29.123Z"), "iso format");
	ok(time_parse_iso(s, &ms) == 0 && ms == 1795357469123LL, "iso round trip");
	ok(time_parse_iso("2026-11-01", &ms) == 0 && ms == 1793491200000LL, "date only");
	ok(time_parse_iso("2026-13-01", &ms) == -1, "bad month");
	ok(time_parse_iso("yesterday", &ms) == -1, "garbage");
	ok(time_parse_iso("2026-11-01T00:00:00Zjunk", &ms) == -1, "trailing junk");
}

static void test_json(void)
{
	struct err err;
	const char *const allowed[] = {"name", "tier", NULL};
	const char *s;
	json_t *j;

	ok(!json_parse_object("{", 1, &err) && err.status == 400, "malformed JSON: 400");
	ok(!json_parse_object("[]", 2, &err) && !strcmp(err.code, "invalid_json"), "array refused");
	ok(!json_parse_object("{\"a\":1,\"a\":2}", 13, &err), "duplicate keys refused");
	j = json_parse_object("{\"name\":\"x\",\"extra\":1}", 22, &err);
	ok(j && json_only_fields(j, allowed, &err) == -1 && !strcmp(err.code, "unknown_field"),
	   "unknown field refused");
	json_decref(j);
	j = json_parse_object("{\"name\":5}", 10, &err);
	ok(j && json_get_string(j, "name", 1, &s, &err) == -1 && !strcmp(err.code, "invalid_type"),
	   "wrong type refused");
	ok(json_get_string(j, "tier", 0, &s, &err) == 0 && s == NULL, "optional absent");
	ok(json_get_string(j, "tier", 1, &s, &err) == -1, "required absent");
	json_decref(j);
	j = json_parse_object("{\"name\":\"a\\u0000b\"}", 19, &err);
	ok(!j || json_get_string(j, "name", 1, &s, &err) == -1, "NUL inside a string refused");
	json_decref(j);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_buf();
	test_ids();
	test_names();
	test_times();
	test_json();
	return tap_done();
}
