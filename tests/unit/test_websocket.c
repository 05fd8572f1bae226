/* The WebSocket layer's request checks: what counts as an upgrade, which
 * Origins pass, which subprotocol is chosen. The framing itself is
 * exercised end to end by tests/e2e/test_console.py. */
#include <string.h>

#include "http/http.h"
#include "tap.h"

static struct http_header hdrs[8];

static struct http_req req_make(const char *method, const char *const kv[])
{
	struct http_req r;
	size_t n = 0;

	memset(&r, 0, sizeof(r));
	snprintf(r.method, sizeof(r.method), "%s", method);
	for (; kv[2 * n]; n++) {
		hdrs[n].name = (char *)kv[2 * n];
		hdrs[n].value = (char *)kv[2 * n + 1];
	}
	r.headers = hdrs;
	r.nheaders = n;
	return r;
}

#define UPGRADE "upgrade", "websocket", "connection", "keep-alive, Upgrade"
#define KEY "sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="

static int check(const char *method, const char *const kv[], int *status)
{
	struct http_req r = req_make(method, kv);
	struct err err = ERR_INIT;
	int rc = http_ws_check(&r, &err);

	*status = err.status;
	return rc;
}

static void test_check(void)
{
	int st;

	ok(check("GET", (const char *const[]){UPGRADE, KEY, "sec-websocket-version", "13", NULL},
		 &st) == 0,
	   "a browser's upgrade (Connection: keep-alive, Upgrade) passes");
	ok(check("POST", (const char *const[]){UPGRADE, KEY, "sec-websocket-version", "13", NULL},
		 &st) < 0 &&
	       st == 400,
	   "POST: 400");
	ok(check("GET",
		 (const char *const[]){"connection", "upgrade", KEY, "sec-websocket-version", "13",
				       NULL},
		 &st) < 0 &&
	       st == 400,
	   "no Upgrade header: 400");
	ok(check("GET", (const char *const[]){UPGRADE, KEY, "sec-websocket-version", "8", NULL},
		 &st) < 0 &&
	       st == 426,
	   "version 8: 426");
	ok(check("GET", (const char *const[]){UPGRADE, "sec-websocket-version", "13", NULL}, &st) <
		   0 &&
	       st == 400,
	   "no key: 400");
	ok(check("GET",
		 (const char *const[]){UPGRADE, "sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=!",
				       "sec-websocket-version", "13", NULL},
		 &st) < 0 &&
	       st == 400,
	   "a key that is not base64: 400");
	ok(check("GET",
		 (const char *const[]){UPGRADE, "sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				       "sec-websocket-version", "13", NULL},
		 &st) < 0 &&
	       st == 400,
	   "a key of 21 bytes: 400");
}

static int origin(const char *o, const char *host)
{
	const char *kv[5] = {NULL};
	size_t n = 0;
	struct http_req r;

	if (o) {
		kv[n++] = "origin";
		kv[n++] = o;
	}
	if (host) {
		kv[n++] = "host";
		kv[n++] = host;
	}
	r = req_make("GET", kv);
	return http_ws_origin_ok(&r);
}

static void test_origin(void)
{
	ok(origin(NULL, "127.0.0.1:8080"), "no Origin (not a browser): allowed");
	ok(origin("http://127.0.0.1:8080", "127.0.0.1:8080"), "same origin: allowed");
	ok(origin("https://Bureau.example", "bureau.example"), "https, any case: allowed");
	ok(!origin("http://evil.example", "127.0.0.1:8080"), "another site: refused");
	ok(!origin("http://127.0.0.1:8081", "127.0.0.1:8080"), "another port: refused");
	ok(!origin("null", "127.0.0.1:8080"), "Origin null (sandboxed frame): refused");
	ok(!origin("http://127.0.0.1:8080", NULL), "no Host: refused");
	ok(!origin("http://127.0.0.1:8080.evil.example", "127.0.0.1:8080"),
	   "a longer host: refused");
}

static void test_protocols(void)
{
	static const char *const ours[] = {"binary", NULL};
	struct http_req r = req_make(
	    "GET", (const char *const[]){"sec-websocket-protocol", "base64, binary", NULL});

	ok(http_ws_protocol_pick(&r, ours) == ours[0], "\"base64, binary\": binary is chosen");
	r = req_make("GET", (const char *const[]){"sec-websocket-protocol", "base64", NULL});
	ok(http_ws_protocol_pick(&r, ours) == NULL, "only base64 offered: none");
	r = req_make("GET", (const char *const[]){"sec-websocket-protocol", "binaryx, bin", NULL});
	ok(http_ws_protocol_pick(&r, ours) == NULL, "prefixes do not match");
	r = req_make("GET", (const char *const[]){"x", "y", NULL});
	ok(http_ws_protocol_pick(&r, ours) == NULL, "nothing offered: none");
}

int main(void)
{
	test_check();
	test_origin();
	test_protocols();
	return tap_done();
}
