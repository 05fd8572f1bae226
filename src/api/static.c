/* The pages bureaud serves besides the API: web/ (the console pages and
 * their scripts) and the browser libraries the deps step installed from
 * npm (node_modules/), under fixed prefixes. Nothing else of the disk is
 * reachable: one table maps URL prefixes to folders, no segment may start
 * with a dot, and the resolved file must stay inside its folder (no
 * symlink escapes). Files are read on a worker thread; answers carry a
 * content type from a table, an ETag and a cache policy per prefix.
 *
 * The web folder is BUREAU_WEB_DIR, else ../web beside the bureaud
 * binary (the build folder), else ./web; node_modules is beside it. */
#include "api/api.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATIC_MAX_FILE (8 * 1024 * 1024)
#define CACHE_PAGE "Cache-Control: no-cache\r\n"
#define CACHE_VENDOR "Cache-Control: public, max-age=86400\r\n"
/* Pages load only from here: scripts, styles, and the console sockets. */
#define PAGE_HEADERS                                                                               \
	"X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"                      \
	"Content-Security-Policy: default-src 'self'; img-src 'self' data: blob:; "                \
	"style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; "                \
	"base-uri 'none'\r\n"

enum static_root { ROOT_WEB, ROOT_NODE };

/* A URL prefix ("/static/") or a whole pattern ("/desktops/{id}/screen")
 * and where its files are. For a pattern, file is the one file served. */
struct static_map {
	const char *url;
	int pattern;
	enum static_root root;
	const char *dir; /* under the root; for a pattern, the file */
	const char *cache;
};

static const struct static_map static_maps[] = {
    {"/", 1, ROOT_WEB, "index.html", CACHE_PAGE},
    {"/desktops/{id}/screen", 1, ROOT_WEB, "screen.html", CACHE_PAGE},
    {"/desktops/{id}/terminal", 1, ROOT_WEB, "terminal.html", CACHE_PAGE},
    {"/static/", 0, ROOT_WEB, "", CACHE_PAGE},
    {"/vendor/novnc/", 0, ROOT_NODE, "@novnc/novnc/", CACHE_VENDOR},
    {"/vendor/xterm/", 0, ROOT_NODE, "@xterm/xterm/", CACHE_VENDOR},
    {"/vendor/xterm-addon-fit/", 0, ROOT_NODE, "@xterm/addon-fit/", CACHE_VENDOR},
};

static const struct {
	const char *ext;
	const char *type;
} static_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *static_type(const char *path)
{
	const char *dot = strrchr(path, '.');

	for (size_t i = 0; dot && i < sizeof(static_types) / sizeof(static_types[0]); i++)
		if (!strcmp(dot, static_types[i].ext))
			return static_types[i].type;
	return NULL;
}

/* ---- where the files are ---- */

static char web_dir[PATH_MAX], node_dir[PATH_MAX + 32];

static void static_dirs_find(void)
{
	const char *env = getenv("BUREAU_WEB_DIR");
	char exe[PATH_MAX], try[PATH_MAX + 32];
	ssize_t n;

	if (env && realpath(env, web_dir))
		goto found;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(try, sizeof(try), "%s/../web", exe);
		if (realpath(try, web_dir))
			goto found;
	}
	if (!realpath("web", web_dir))
		snprintf(web_dir, sizeof(web_dir), "web");
found:
	snprintf(try, sizeof(try), "%s/../node_modules", web_dir);
	if (!realpath(try, node_dir))
		snprintf(node_dir, sizeof(node_dir), "%s", try);
	log_info("static files web=%s vendor=%s", web_dir, node_dir);
}

/* Whether every segment of rel is a plain name (no "", ".", "..",
 * dotfiles or backslashes). */
static int static_rel_ok(const char *rel)
{
	const char *s = rel;

	if (!*rel || strchr(rel, '\\'))
		return 0;
	while (*s) {
		if (*s == '.' || *s == '/')
			return 0;
		s += strcspn(s, "/");
		if (*s == '/')
			s++;
	}
	return 1;
}

/* The file a path names, or 0 when the path is not one of ours. */
static int static_resolve(const char *path, char *file, size_t n, const char **cache)
{
	struct route_match m;

	for (size_t i = 0; i < sizeof(static_maps) / sizeof(static_maps[0]); i++) {
		const struct static_map *sm = &static_maps[i];
		const char *root = sm->root == ROOT_WEB ? web_dir : node_dir;
		size_t plen = strlen(sm->url);

		if (sm->pattern) {
			struct route page = {"GET", sm->url, NULL};

			if (route_find(&page, 1, "GET", path, &m, NULL, 0) != 200)
				continue;
			snprintf(file, n, "%s/%s", root, sm->dir);
		} else {
			if (strncmp(path, sm->url, plen) || !static_rel_ok(path + plen))
				continue;
			snprintf(file, n, "%s/%s%s", root, sm->dir, path + plen);
		}
		*cache = sm->cache;
		return 1;
	}
	return 0;
}

/* ---- reading, on a worker ---- */

struct static_read {
	uv_work_t work;
	struct http_req *req;
	char file[PATH_MAX + 64];
	const char *cache;
	char etag[64];
	char *data;
	size_t len;
	int status; /* 200, 304, 404, 500 */
};

/* The file, if it is a regular file inside web_dir or node_dir. */
static int static_open(const char *file, struct stat *st)
{
	char real[PATH_MAX];
	size_t wl = strlen(web_dir), nl = strlen(node_dir);
	int fd;

	if (!realpath(file, real))
		return -1;
	if (!((!strncmp(real, web_dir, wl) && real[wl] == '/') ||
	      (!strncmp(real, node_dir, nl) && real[nl] == '/')))
		return -1;
	fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) || !S_ISREG(st->st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void static_read_work(uv_work_t *w)
{
	struct static_read *sr = w->data;
	const char *inm = http_req_header(sr->req, "if-none-match");
	struct stat st;
	ssize_t got;
	int fd = static_open(sr->file, &st);

	sr->status = 404;
	if (fd < 0)
		return;
	snprintf(sr->etag, sizeof(sr->etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
		 (unsigned long long)st.st_mtim.tv_sec * 1000000000ull + st.st_mtim.tv_nsec);
	sr->status = 500;
	if (inm && !strcmp(inm, sr->etag)) {
		sr->status = 304;
	} else if (st.st_size <= STATIC_MAX_FILE) {
		sr->data = xmalloc((size_t)st.st_size + 1);
		for (sr->len = 0; sr->len < (size_t)st.st_size; sr->len += (size_t)got) {
			got = read(fd, sr->data + sr->len, (size_t)st.st_size - sr->len);
			if (got <= 0)
				break;
		}
		if (sr->len == (size_t)st.st_size)
			sr->status = 200;
	}
	close(fd);
}

static void static_read_done(uv_work_t *w, int status)
{
	struct static_read *sr = w->data;
	const char *type = static_type(sr->file);
	char headers[1024];

	snprintf(headers, sizeof(headers), "%sETag: %s\r\n%s", sr->cache, sr->etag,
		 type && !strncmp(type, "text/html", 9) ? PAGE_HEADERS
							: "X-Content-Type-Options: nosniff\r\n");
	if (sr->status == 200)
		http_respond(sr->req, 200, type ? type : "application/octet-stream", sr->data,
			     sr->len, headers);
	else if (sr->status == 304)
		http_respond(sr->req, 304, NULL, NULL, 0, headers);
	else if (sr->status == 404)
		http_respond_error(sr->req, 404, "not_found", "no such file");
	else
		http_respond_error(sr->req, 500, "internal", "could not read the file");
	free(sr->data);
	free(sr);
}

int static_serve(struct app *app, struct http_req *req)
{
	static uv_once_t once = UV_ONCE_INIT;
	struct static_read *sr;
	char file[PATH_MAX + 64];
	const char *cache;

	if (!strncmp(req->path, "/api/", 5) || !strcmp(req->path, "/api"))
		return 0;
	uv_once(&once, static_dirs_find);
	if (!static_resolve(req->path, file, sizeof(file), &cache))
		return 0;
	if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
		http_respond_json(req, 405,
				  json_pack("{s:{s:s, s:s}}", "error", "code", "method_not_allowed",
					    "message", "method not allowed"),
				  "Allow: GET, HEAD\r\n");
		return 1;
	}
	if (!static_type(file)) {
		http_respond_error(req, 404, "not_found", "no such file");
		return 1;
	}
	sr = xcalloc(1, sizeof(*sr));
	sr->req = req;
	sr->cache = cache;
	snprintf(sr->file, sizeof(sr->file), "%s", file);
	sr->work.data = sr;
	uv_queue_work(app->loop, &sr->work, static_read_work, static_read_done);
	return 1;
}
