/* The route table: literal and placeholder matches, 404 against 405 with
 * its Allow list, and what a placeholder refuses to match. */
#include <string.h>

#include "http/http.h"
#include "tap.h"

static const struct route routes[] = {
    {"GET", "/api/desktops", (void *)1},
    {"POST", "/api/desktops", (void *)2},
    {"GET", "/api/desktops/{id}", (void *)3},
    {"DELETE", "/api/desktops/{id}", (void *)4},
    {"POST", "/api/desktops/{id}/start", (void *)5},
    {"GET", "/api/workspaces/{ws}/desktops/{id}/files/{name}", (void *)6},
    {"HEAD", "/api/ping", (void *)7},
    {"GET", "/api/ping", (void *)8},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static int find(const char *method, const char *path, struct route_match *m, char *allow)
{
	return route_find(routes, NROUTES, method, path, m, allow, 128);
}

static void test_literal(void)
{
	struct route_match m;
	char allow[128];

	ok(find("GET", "/api/desktops", &m, allow) == 200 && m.route->handler == (void *)1,
	   "literal GET matches its route");
	ok(find("POST", "/api/desktops", &m, allow) == 200 && m.route->handler == (void *)2,
	   "same path, other method picks the other route");
	ok(m.nparams == 0, "literal match has no params");
	ok(find("GET", "/api/desktopsx", &m, allow) == 404, "longer literal does not match");
	ok(find("GET", "/api/desk", &m, allow) == 404, "prefix does not match");
	ok(find("GET", "/api/desktops/", &m, allow) == 404,
	   "trailing slash is a different path (404)");
	ok(find("GET", "/", &m, allow) == 404, "root is 404");
}

static void test_params(void)
{
	struct route_match m;
	char allow[128];

	ok(find("GET", "/api/desktops/dsk_123", &m, allow) == 200 && m.route->handler == (void *)3,
	   "placeholder matches a segment");
	ok(route_param(&m, "id") && !strcmp(route_param(&m, "id"), "dsk_123"), "param value");
	ok(route_param(&m, "nope") == NULL, "unknown param is NULL");
	ok(find("POST", "/api/desktops/dsk_9/start", &m, allow) == 200 &&
	       !strcmp(route_param(&m, "id"), "dsk_9"),
	   "placeholder followed by a literal");
	ok(find("GET", "/api/workspaces/ws_1/desktops/dsk_2/files/a b.txt", &m, allow) == 200 &&
	       m.nparams == 3,
	   "three params");
	ok(!strcmp(route_param(&m, "ws"), "ws_1") && !strcmp(route_param(&m, "id"), "dsk_2") &&
	       !strcmp(route_param(&m, "name"), "a b.txt"),
	   "three params keep their values");
}

static void test_placeholder_limits(void)
{
	struct route_match m;
	char allow[128], path[512];

	ok(find("GET", "/api/desktops//start", &m, allow) == 404,
	   "placeholder does not match an empty segment");
	ok(find("POST", "/api/desktops//start", &m, allow) == 404, "empty segment, other method");
	ok(find("GET", "/api/desktops/a/b", &m, allow) == 404, "placeholder does not span '/'");
	memset(path, 0, sizeof(path));
	strcpy(path, "/api/desktops/");
	memset(path + strlen(path), 'x', ROUTE_PARAM_MAX);
	ok(find("GET", path, &m, allow) == 404, "segment of ROUTE_PARAM_MAX bytes is rejected");
	path[strlen(path) - 1] = '\0';
	ok(find("GET", path, &m, allow) == 200 &&
	       strlen(route_param(&m, "id")) == ROUTE_PARAM_MAX - 1,
	   "segment of ROUTE_PARAM_MAX-1 bytes fits");
}

static void test_405(void)
{
	struct route_match m;
	char allow[128];

	ok(find("PUT", "/api/desktops", &m, allow) == 405, "known path, unknown method is 405");
	ok(!strcmp(allow, "GET, HEAD, POST"), "allow lists the path's methods (got '%s')", allow);
	ok(find("PATCH", "/api/desktops/dsk_1", &m, allow) == 405 &&
	       !strcmp(allow, "GET, HEAD, DELETE"),
	   "405 for a placeholder route lists its methods (got '%s')", allow);
	ok(find("GET", "/api/desktops/dsk_1/start", &m, allow) == 405 && !strcmp(allow, "POST"),
	   "405 allow with one method");
	ok(route_find(routes, NROUTES, "PUT", "/api/desktops", &m, NULL, 0) == 405,
	   "405 without an allow buffer");
	ok(find("PUT", "/nothing", &m, allow) == 404 && allow[0] == '\0', "404 leaves allow empty");
}

static void test_head(void)
{
	struct route_match m;
	char allow[128];

	ok(find("HEAD", "/api/desktops", &m, allow) == 200 && m.route->handler == (void *)1,
	   "HEAD falls back to the GET route");
	ok(find("HEAD", "/api/ping", &m, allow) == 200 && m.route->handler == (void *)7,
	   "an explicit HEAD route wins");
	ok(find("HEAD", "/api/desktops/x/start", &m, allow) == 405, "HEAD without GET is 405");
}

int main(void)
{
	test_literal();
	test_params();
	test_placeholder_limits();
	test_405();
	test_head();
	return tap_done();
}
